"""Workers for reliability tests: many engines on one database, started together.

``ProcessWorkers(n)`` starts ``n`` worker processes once (``forkserver`` by default, whose
server imports billing_core once and forks clean children; ``spawn`` works too; never plain
``fork`` of a process holding SQLAlchemy engines and threads) and reuses them round after round;
``ThreadWorkers(n)`` does the same with threads in this process. ``workers.run(task, spec)``
sends one task to every worker; each waits at a shared barrier, so they really start together,
and its answer comes back as a dict (``ProcessWorkers`` keeps them in worker order)::

    with ProcessWorkers(50) as workers:
        for round in range(50):
            answers = workers.run(refund_task, {"store": url, "gateway": url, ...})

A task is a module-level function ``task(worker, wait, spec) -> dict`` (picklable by name);
it calls ``wait()`` at the moment the workers should collide. The tasks below build, once per
process and database, a ``BillingEngine`` on a ``SqlStore`` and a ``SharedGateway`` (sharing one
connection pool), with its own ``ManualClock``, set from ``spec["now"]`` before each task.

``queue_worker_main`` is a worker process of its own for the crash test: it processes the refund
retry queue in a loop until told to stop, and may be killed with SIGKILL at any moment.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ..engine.engine import BillingEngine
from ..errors import BillingError
from ..money import Money
from ..plugins.manager import Plugins
from ..plugins.sql_store import SqlStore
from ..rules.permissions import Actor
from .clock import ManualClock
from .shared_gateway import SharedGateway

__all__ = [
    "AGENT",
    "ProcessWorkers",
    "Task",
    "ThreadWorkers",
    "charge_task",
    "collect_task",
    "engine_for",
    "failing_refunds_task",
    "issue_invoices_task",
    "queue_worker_main",
    "refund_many_task",
    "refund_task",
]

AGENT = Actor(id="worker", role="admin")

Answer = dict[str, Any]


class Task(Protocol):
    def __call__(
        self, worker: int, wait: Callable[[], None], spec: Mapping[str, Any]
    ) -> Answer: ...


# -- engines, once per process -------------------------------------------------------------------
_engines: dict[tuple[str, str, str], tuple[BillingEngine, ManualClock]] = {}
_engines_lock = threading.Lock()


def engine_for(
    store_url: str,
    gateway_url: str | None = None,
    *,
    worker_id: str = "",
    pool_size: int | None = None,
) -> tuple[BillingEngine, ManualClock]:
    """This process's engine for ``store_url`` (and a ``SharedGateway`` at ``gateway_url``,
    default: the store's database and connection pool), made once and kept. ``pool_size``
    caps the PostgreSQL pool (many processes on a server with few connections)."""
    cache_key = (store_url, gateway_url or store_url, worker_id)
    with _engines_lock:
        if cache_key not in _engines:
            for stale in list(_engines):  # one database at a time: release the last one's pool
                old, _ = _engines.pop(stale)
                old.store.close()
            clock = ManualClock(datetime(2026, 11, 21, 12, tzinfo=UTC))
            store = SqlStore(store_url, create=False, pool_size=pool_size)
            target = store.engine if gateway_url in (None, store_url) else gateway_url
            assert target is not None
            gateway = SharedGateway(target, clock=clock, create=False, settle_after=timedelta(0))
            engine = BillingEngine(
                store=store,
                gateway=gateway,
                clock=clock,
                plugins=Plugins(clock=clock, entry_points=False),
                worker_id=worker_id or f"pid-{os.getpid()}",
                notify_emails=["billing@example.com"],
            )
            _engines[cache_key] = (engine, clock)
        return _engines[cache_key]


def _error(exc: BaseException) -> Answer:
    return {
        "outcome": "error",
        "error": type(exc).__name__,
        "message": str(exc),
        "billing_error": isinstance(exc, BillingError),
    }


# -- tasks -----------------------------------------------------------------------------------------
def refund_task(worker: int, wait: Callable[[], None], spec: Mapping[str, Any]) -> Answer:
    """Refund ``spec["amount"]`` (or everything left, when None) of ``spec["transaction_id"]``
    with the key ``spec["key"].format(worker=worker)``."""
    engine, clock = engine_for(spec["store"], spec.get("gateway"))
    clock.set(spec["now"])
    amount = Money(spec["amount"], spec["currency"]) if spec.get("amount") else None
    key = str(spec["key"]).format(worker=worker)
    wait()
    started = time.perf_counter()
    try:
        result = engine.refund_transaction(
            spec["transaction_id"], amount=amount, idempotency_key=key, actor=AGENT
        )
    except Exception as exc:
        return _error(exc)
    return {
        "outcome": result.outcome.value,
        "reason": result.reason,
        "refund_id": result.refund_transaction_id,
        "seconds": time.perf_counter() - started,
    }


def refund_many_task(worker: int, wait: Callable[[], None], spec: Mapping[str, Any]) -> Answer:
    """Fully refund (or void, while unsettled) each transaction of
    ``spec["groups"][worker % len(groups)]`` in turn: with twice as many workers as groups, two
    workers share each group and refund every transaction at about the same time. Answers the
    outcome counts, the transactions this worker refunded and any exception."""
    engine, clock = engine_for(spec["store"], spec.get("gateway"))
    clock.set(spec["now"])
    groups = spec["groups"]
    ids = groups[worker % len(groups)]
    outcomes: dict[str, int] = {}
    refunded: list[str] = []
    errors: list[str] = []
    wait()
    for transaction_id in ids:
        try:
            result = engine.refund_transaction(
                transaction_id, idempotency_key=f"full-{transaction_id}-w{worker}", actor=AGENT
            )
        except Exception as exc:
            errors.append(f"{transaction_id}: {type(exc).__name__}: {exc}")
            continue
        name = f"{result.outcome.value}:{result.reason or ''}"
        outcomes[name] = outcomes.get(name, 0) + 1
        if result.outcome.value in ("refunded", "voided"):
            refunded.append(transaction_id)
    return {"outcomes": outcomes, "refunded": refunded, "errors": errors}


def charge_task(worker: int, wait: Callable[[], None], spec: Mapping[str, Any]) -> Answer:
    """Charge ``spec["amount"]`` with the one key ``spec["key"]`` (every worker the same)."""
    engine, clock = engine_for(spec["store"], spec.get("gateway"))
    clock.set(spec["now"])
    amount = Money(spec["amount"], spec["currency"])
    wait()
    try:
        result = engine.charge(
            spec["customer_id"], amount, idempotency_key=spec["key"], actor=AGENT
        )
    except Exception as exc:
        return _error(exc)
    return {
        "outcome": result.outcome.value,
        "transaction_id": result.transaction_id,
        "explanation": result.explanation,
    }


def failing_refunds_task(worker: int, wait: Callable[[], None], spec: Mapping[str, Any]) -> Answer:
    """The crash test's set-up, shared by the workers: for each index ``i`` of
    ``range(worker, spec["count"], spec["workers"])``, charge ``spec["amount"]`` to
    ``spec["customer_id"]`` (key ``p{i}``) and refund ``spec["refund"]`` of it (key ``r{i}``)
    through a gateway that declines every refund, so the refund waits in the retry queue.
    Answers how many were made and any refund that was not queued."""
    from ..plugins.sandbox_gateway import Fault

    store = SqlStore(spec["store"], create=False)
    clock = ManualClock(spec["now"])
    gateway = SharedGateway(store.engine, clock=clock, create=False, settle_after=timedelta(0))
    failing = SharedGateway(
        store.engine, clock=clock, create=False, settle_after=timedelta(0), seed=worker
    )
    failing.fault_rates("refund", {Fault.DECLINE: 1.0})
    plugins = Plugins(clock=clock, entry_points=False)
    common: dict[str, Any] = {"store": store, "clock": clock, "plugins": plugins}
    engine = BillingEngine(gateway=gateway, worker_id=f"setup-{worker}", **common)
    declining = BillingEngine(
        gateway=failing,
        worker_id=f"setup-{worker}",
        notify_emails=list(spec["notify"]),
        **common,
    )
    currency = spec["currency"]
    made, not_queued = 0, []
    wait()
    try:
        for i in range(worker, spec["count"], spec["workers"]):
            sale = engine.charge(
                spec["customer_id"],
                Money(spec["amount"], currency),
                idempotency_key=f"p{i}",
                actor=AGENT,
            )
            assert sale.transaction_id is not None, sale.explanation
            first = declining.refund_transaction(
                sale.transaction_id,
                amount=Money(spec["refund"], currency),
                idempotency_key=f"r{i}",
                actor=AGENT,
            )
            if first.outcome.value != "queued":
                not_queued.append(f"r{i}: {first.outcome.value}: {first.explanation}")
            made += 1
    finally:
        gateway.close()
        failing.close()
        store.close()
    return {"made": made, "not_queued": not_queued}


def issue_invoices_task(worker: int, wait: Callable[[], None], spec: Mapping[str, Any]) -> Answer:
    """Run ``issue_due_invoices`` at ``spec["now"]`` (every worker at once, over every
    customer, as a cron job on many hosts would). Answers the numbers this worker issued."""
    engine, clock = engine_for(spec["store"], spec.get("gateway"))
    clock.set(spec["now"])
    wait()
    started = time.perf_counter()
    try:
        run = engine.issue_due_invoices(spec["now"])
    except Exception as exc:
        return _error(exc)
    return {
        "outcome": run.outcome.value,
        "numbers": [i.number for i in run.invoices],
        "skipped": [list(s) for s in run.skipped],
        "seconds": time.perf_counter() - started,
    }


def collect_task(worker: int, wait: Callable[[], None], spec: Mapping[str, Any]) -> Answer:
    """Run ``collect_due`` at ``spec["now"]`` (every worker at once, over every due invoice, as
    a cron job on many hosts would), on a pool of ``spec["pool_size"]`` connections (default
    1). Answers the invoices this worker collected and how its run ended for the others."""
    engine, clock = engine_for(
        spec["store"], spec.get("gateway"), pool_size=spec.get("pool_size", 1)
    )
    clock.set(spec["now"])
    wait()
    started = time.perf_counter()
    try:
        run = engine.collect_due(spec["now"])
    except Exception as exc:
        return _error(exc)
    return {
        "outcome": run.outcome.value,
        "collected": [c.invoice_id for c in run.collections if c.outcome == "collected"],
        "others": [
            [c.invoice_id, c.outcome.value] for c in run.collections if c.outcome != "collected"
        ],
        "seconds": time.perf_counter() - started,
    }


# -- the pools -------------------------------------------------------------------------------------
def _process_main(
    worker: int,
    tasks: Any,
    answers: Any,
    barrier: Any,
) -> None:
    while True:
        item = tasks.get()
        if item is None:
            return
        task, spec = item
        try:
            if worker >= spec.get("workers", worker + 1):  # not in this round: just line up
                barrier.wait()
                answer: Answer = {"outcome": "idle"}
            else:
                answer = task(worker, barrier.wait, spec)
        except BaseException as exc:  # report, keep serving
            answer = _error(exc)
            answer["traceback"] = traceback.format_exc()
        answers.put((worker, answer))


class ProcessWorkers:
    """``n`` worker processes, started once, running each round's task together."""

    def __init__(self, n: int, *, start_method: str = "forkserver", timeout: float = 300) -> None:
        ctx: Any = multiprocessing.get_context(start_method)
        if start_method == "forkserver":  # the server imports billing_core once, then forks
            ctx.set_forkserver_preload([__name__])
        self.n = n
        self.timeout = timeout
        self._barrier = ctx.Barrier(n, timeout=timeout)
        self._answers: Any = ctx.Queue()
        self._tasks: list[Any] = [ctx.Queue() for _ in range(n)]
        self._procs = [
            ctx.Process(
                target=_process_main,
                args=(i, self._tasks[i], self._answers, self._barrier),
                daemon=True,
                name=f"billing-worker-{i}",
            )
            for i in range(n)
        ]
        for p in self._procs:
            p.start()

    def run(self, task: Task, spec: Mapping[str, Any]) -> list[Answer]:
        for q in self._tasks:
            q.put((task, dict(spec)))
        got: dict[int, Answer] = {}
        deadline = time.monotonic() + self.timeout
        while len(got) < self.n:
            try:
                worker, answer = self._answers.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                dead = [p.name for p in self._procs if not p.is_alive()]
                raise TimeoutError(
                    f"workers did not answer in {self.timeout}s (dead: {dead})"
                ) from None
            got[worker] = answer
        return [got[i] for i in range(min(self.n, spec.get("workers", self.n)))]

    def close(self) -> None:
        for q in self._tasks:
            q.put(None)
        for p in self._procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()

    def __enter__(self) -> ProcessWorkers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class ThreadWorkers:
    """``n`` threads of this process, running each round's task together."""

    def __init__(self, n: int, *, timeout: float = 300) -> None:
        self.n = n
        self.timeout = timeout
        self._barrier = threading.Barrier(n, timeout=timeout)

    def run(self, task: Task, spec: Mapping[str, Any]) -> list[Answer]:
        answers: list[Answer] = [{} for _ in range(self.n)]

        def wait() -> None:
            self._barrier.wait()

        def one(i: int) -> None:
            try:
                answers[i] = task(i, wait, spec)
            except BaseException as exc:
                answers[i] = _error(exc)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(self.n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.timeout)
        return answers

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> ThreadWorkers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# -- the crash test's queue worker ----------------------------------------------------------------
def queue_worker_main(
    store_url: str,
    worker_id: str,
    clock_seconds: Any,
    stop: Any,
    decline_rate: float,
    seed: int,
    lease_seconds: int,
    progress: Any,
) -> None:
    """Process the refund queue until ``stop`` is set. ``clock_seconds`` (a shared double) is
    the simulated time, as seconds since the epoch, set by the test; the gateway declines a
    retry with probability ``decline_rate``. Each pass adds the entries it handled to
    ``progress`` (a shared int). Meant to be killed at any moment."""
    from ..plugins.sandbox_gateway import Fault

    store = SqlStore(store_url, create=False)
    clock = ManualClock(datetime.fromtimestamp(clock_seconds.value, UTC))
    gateway = SharedGateway(store.engine, clock=clock, create=False, seed=seed)
    gateway.fault_rates("refund", {Fault.DECLINE: decline_rate})
    engine = BillingEngine(
        store=store,
        gateway=gateway,
        clock=clock,
        plugins=Plugins(clock=clock, entry_points=False),
        worker_id=worker_id,
        notify_emails=["billing@example.com"],
        lease_seconds=lease_seconds,
    )
    while not stop.is_set():
        clock.set(datetime.fromtimestamp(clock_seconds.value, UTC))
        run = engine.process_refund_queue(limit=5)
        with progress.get_lock():
            progress.value += run.claimed
        if run.claimed == 0:
            time.sleep(0.02)
