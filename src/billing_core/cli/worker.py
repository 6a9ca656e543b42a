"""``billing-core worker`` and ``billing-core reconcile``: the engine's recurring work.

The worker runs passes of steps (``steps.DEFAULT_STEPS``: renewals, the refund queue,
reconcile) every ``--interval`` seconds, or one pass with ``--once``. It acts as the actor
``Actor(id="worker:<host>:<pid>", role="admin")``, which is also the engine's ``worker_id`` (the
name on queue claims, step leases and audit entries). SIGTERM or SIGINT asks it to stop: the
step running finishes (the refund queue at the end of its batch), the rest of the pass is
skipped, and it exits 0; a second SIGINT interrupts at once. A step that raises is logged and
reported, and the next step runs; ``--once`` then exits 3.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import TextIO

from ..engine import BillingEngine
from ..rules.permissions import Actor
from .leases import StepLeases
from .runtime import Exit, add_command, open_engine
from .steps import CHARGES_LEASE, DEFAULT_STEPS, Step, StepContext, choose_steps

__all__ = ["Worker", "register", "worker_actor"]

_log = logging.getLogger("billing_core.cli.worker")


def worker_actor() -> Actor:
    """The actor a worker acts as: ``worker:<host>:<pid>``, an admin."""
    return Actor(id=f"worker:{socket.gethostname()}:{os.getpid()}", role="admin")


def counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in counts.items())


class Worker:
    """Runs passes of ``steps`` on ``engine`` as ``actor``; see the module docstring."""

    def __init__(
        self,
        engine: BillingEngine,
        *,
        actor: Actor,
        steps: Sequence[Step] = DEFAULT_STEPS,
        interval: float = 60.0,
        lease_seconds: float = 300.0,
        out: TextIO | None = None,
    ) -> None:
        self.engine = engine
        self.actor = actor
        self.steps = tuple(steps)
        self.interval = interval
        self.leases = StepLeases(
            engine.store, owner=actor.id, seconds=lease_seconds, clock=engine.clock
        )
        self.out = out or sys.stdout
        self.failures = 0
        self._stop = threading.Event()
        self.stop_reason = ""

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def stop(self, reason: str) -> None:
        """Ask the worker to stop after the step it is running."""
        if not self._stop.is_set():
            self.stop_reason = reason
            self.say(f"stopping ({reason}): finishing the current step")
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, *, once: bool = False) -> int:
        """Run passes until stopped (or one, with ``once``); the number of passes run."""
        passes = 0
        while not self.stopping:
            passes += 1
            self.run_pass(passes)
            if once or self._stop.wait(self.interval):
                break
        self.say(f"stopped after {passes} pass{'es' if passes != 1 else ''}")
        return passes

    def run_pass(self, number: int = 1) -> None:
        for step in self.steps:
            if self.stopping:
                return
            self._run_step(step, f"pass {number} {step.name}")

    def _run_step(self, step: Step, label: str) -> None:
        context = StepContext(
            engine=self.engine,
            actor=self.actor,
            stopping=lambda: self.stopping,
            progress=lambda counts: self.say(f"{label}: so far {counts_text(counts)}"),
        )
        started = time.perf_counter()
        try:
            with self._lease(step) as holder:
                if holder is not None:
                    self.say(f"{label}: skipped, {holder} holds the lease")
                    return
                counts = step.run(context)
        except Exception as error:
            self.failures += 1
            _log.exception("step %s failed", step.name)
            self.say(f"{label}: failed: {type(error).__name__}: {error}")
            return
        elapsed = time.perf_counter() - started
        self.say(f"{label}: {counts_text(counts)} ({elapsed:.2f} s)")

    @contextmanager
    def _lease(self, step: Step) -> Iterator[str | None]:
        """``None`` while this worker may run ``step``; else the holder's name."""
        if step.lease is None:
            yield None
            return
        with self.leases.holding(step.lease) as lease:
            if lease is not None:
                yield None
                return
            held = self.leases.holder(step.lease)
            yield held.owner if held is not None else "another worker"


@contextmanager
def stop_on_signals(worker: Worker) -> Iterator[None]:
    """SIGTERM and SIGINT stop ``worker`` gracefully; a second SIGINT interrupts at once."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        if worker.stopping and signum == signal.SIGINT:
            raise KeyboardInterrupt
        worker.stop(signal.Signals(signum).name)

    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {
        sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _worker(args: argparse.Namespace) -> int:
    actor = worker_actor()
    steps = choose_steps(args.steps.split(",") if args.steps else None, batch=args.batch)
    engine = open_engine(args, gateway_required=True, worker_id=actor.id)
    try:
        worker = Worker(
            engine,
            actor=actor,
            steps=steps,
            interval=args.interval,
            lease_seconds=args.lease_seconds,
        )
        worker.say(
            f"worker {actor.id}: gateway {engine.gateway.name} ({engine.gateway_mode}), "
            f"steps {', '.join(s.name for s in steps)}, "
            + ("one pass" if args.once else f"every {args.interval:g} s")
        )
        with stop_on_signals(worker):
            worker.run(once=args.once)
    finally:
        engine.store.close()
    return Exit.FAILED if args.once and worker.failures else Exit.OK


def _reconcile(args: argparse.Namespace) -> int:
    """One reconcile pass, under the workers' ``charges`` lease (never beside their renewals or
    their reconcile)."""
    owner = f"cli:{socket.gethostname()}:{os.getpid()}"
    engine = open_engine(args, gateway_required=True, worker_id=owner)
    try:
        leases = StepLeases(engine.store, owner=owner, seconds=300.0, clock=engine.clock)
        with leases.holding(CHARGES_LEASE) as lease:
            if lease is None:
                held = leases.holder(CHARGES_LEASE)
                print(f"reconcile: skipped, {held.owner if held else 'a worker'} holds the lease")
                return Exit.DENIED
            result = engine.reconcile()
    finally:
        engine.store.close()
    print(
        f"reconcile: checked {result.checked}, resolved {result.resolved}, "
        f"still unknown {len(result.still_unknown)}"
    )
    for transaction_id in result.still_unknown:
        print(f"  still unknown: {transaction_id}")
    return Exit.OK


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = add_command(
        commands,
        "worker",
        summary="Run renewals, the refund queue and reconcile on an interval (needs --gateway).",
    )
    worker.add_argument("--once", action="store_true", help="run one pass and exit")
    worker.add_argument(
        "--interval",
        type=_positive,
        default=60.0,
        metavar="SECONDS",
        help="pause between passes (default 60)",
    )
    worker.add_argument(
        "--steps",
        metavar="A,B",
        help=f"only these steps (default: {','.join(s.name for s in DEFAULT_STEPS)})",
    )
    worker.add_argument(
        "--batch",
        type=_positive_int,
        default=100,
        help="refunds claimed per batch (default 100)",
    )
    worker.add_argument(
        "--lease-seconds",
        type=_positive,
        default=300.0,
        metavar="SECONDS",
        help="step lease time; a dead worker's lease is taken over after it (default 300)",
    )
    worker.set_defaults(handler=_worker)
    reconcile = add_command(
        commands,
        "reconcile",
        summary="Ask the gateway about every transaction whose outcome is unknown (one pass).",
    )
    reconcile.set_defaults(handler=_reconcile)
