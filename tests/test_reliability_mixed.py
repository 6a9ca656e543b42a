"""The entry points run together: charges, refunds, refund orders, reconcile and the queue at once.

Issue 11's mixed harness (``billing_core.testing.mixed``): on the same payments, 1 charge worker,
5 refund workers (partial and full ``refund_transaction``, ``refund_order``, replays of their own
keys), a ``reconcile()`` loop and a ``process_refund_queue()`` loop, each with its own engine, a
gateway answering after 1-40 ms and the sandbox's faults (decline, not sent, timeout before and
after sending, pending, duplicate answer; failed lookups). Worker processes on SQLite and
PostgreSQL, threads on the memory store. After the run, a fault-free reconcile and six days of
the queue; then, payment by payment, the store and the gateway agree to the cent (captured,
refunded, voided), nothing is ``unknown``/``pending`` or left in the queue, no key is
``in_progress``, nothing is over-refunded or left reserved, and no worker met an unexpected error.

``BILLING_CORE_MIXED_OPS`` sets the operations of the charge and refund workers per SQL store
(default 10,000; the loops' runs come on top); the memory store does a fifth of it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from billing_core import BillingEngine, Customer
from billing_core.plugins.manager import Plugins
from billing_core.plugins.sql_store import SqlStore
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock
from billing_core.testing.mixed import (
    CUSTOMER,
    FAULT_RATES,
    LOOKUP_FAULT_RATES,
    START,
    check_books,
    close_rigs,
    converge,
    fault_counts,
    mixed_task,
    now_of,
)
from billing_core.testing.shared_gateway import SharedGateway
from billing_core.testing.workers import ProcessWorkers, ThreadWorkers

OPS = int(os.environ.get("BILLING_CORE_MIXED_OPS", "10000"))
ROLES = ["reconcile", "queue", "charge"] + ["refund"] * 5
LEASE = 3600  # simulated seconds: 1 s of wall time at SPEED
SPEED = 3600.0  # a simulated hour per wall second: a day of retries every 24 s
ADMIN = Actor(id="ada", role="admin")
Figure = Callable[[str], None]


@pytest.fixture(scope="module")
def processes() -> Iterator[ProcessWorkers]:
    with ProcessWorkers(len(ROLES), timeout=1800) as workers:
        yield workers


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres"])
def test_entry_points_run_together_agree_with_the_gateway(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, figure: Figure
) -> None:
    ops = OPS // 5 if backend == "memory" else OPS
    gateway_url = f"sqlite:///{tmp_path / 'gateway.sqlite3'}"
    if backend == "memory":
        store_url = "memory://"
    elif backend == "sqlite":
        store_url = gateway_url = f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    else:
        store_url = gateway_url = request.getfixturevalue("postgres_schema_url")
    report = _run(backend, store_url, gateway_url, ops, tmp_path, request)
    figure(report.pop("figure"))
    assert report["worker_errors"] == []
    assert report["converge_failed"] == []
    assert report["keys_after_reconcile"] == ()
    books = report["books"]
    assert books.disagreements == ()
    assert books.stuck == ()
    assert books.unconverged_keys == ()
    assert books.over_refunded == ()
    assert report["ops"] >= ops


def _run(
    backend: str,
    store_url: str,
    gateway_url: str,
    ops: int,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> dict[str, Any]:
    clock = ManualClock(START)
    store: Any = SqlStore(store_url) if backend != "memory" else None
    gateway = SharedGateway(
        gateway_url if store is None else store.engine, clock=clock, settle_after=None
    )
    engine = BillingEngine(
        store=store if store is not None else store_url,
        gateway=gateway,
        clock=clock,
        plugins=Plugins(clock=clock, entry_points=False),
        lease_seconds=LEASE,
    )
    engine.add_customer(Customer(id=CUSTOMER, company="Mixed"), actor=ADMIN)
    shared = tmp_path / "shared"
    shared.mkdir()
    workers_of_ops = sum(1 for r in ROLES if r in ("charge", "refund"))
    spec: dict[str, Any] = {
        "run": uuid.uuid4().hex,
        "roles": ROLES,
        "store": store_url,
        "gateway": gateway_url,
        "dir": str(shared),
        "start": START,
        "t0": time.time(),
        "speed": SPEED,
        "settle_after": timedelta(minutes=10),
        "lease_seconds": LEASE,
        "latency": (0.001, 0.040),
        "stall_rate": 0.03,
        "stall": 1.5 * LEASE / SPEED,  # a stalled call outlives its lease
        "fault_rates": FAULT_RATES,
        "lookup_fault_rates": LOOKUP_FAULT_RATES,
        "seed": 11,
        "ops_per_worker": -(-ops // workers_of_ops),
        "charge_amounts": ["100.00", "150.00", "200.00"],
        "window": 24,
        "replay_rate": 0.1,
        "loop_pause": 0.05,
        "timeout": 1500,
    }
    started = time.perf_counter()
    workers: ProcessWorkers | ThreadWorkers
    if backend == "memory":
        spec["store_object"] = engine.store
        workers = ThreadWorkers(len(ROLES), timeout=1800)
        try:
            answers = workers.run(mixed_task, spec)
        finally:
            close_rigs()
    else:
        workers = request.getfixturevalue("processes")
        answers = workers.run(mixed_task, spec)
    wall = time.perf_counter() - started

    # the workers have stopped: past every lease, reconcile; then days of reconcile and queue
    clock.set(now_of(spec) + timedelta(seconds=LEASE + 1))
    first = engine.reconcile()
    with engine.store.session() as s:
        keys = tuple(
            r.key
            for op in ("charge", "refund_transaction", "refund_order")
            for r in s.unresolved_idempotency(op)
        )
    failed = [f"reconcile: {who}: {why}" for who, why in first.failed]
    failed += converge(engine, clock)
    books = check_books(engine.store, gateway)

    counts: Counter[str] = Counter()
    for answer in answers:
        counts.update(answer.get("counts", {}))
    total = sum(counts.values())
    worker_ops = sum(n for name, n in counts.items() if not name.startswith(("reconcile", "queue")))
    faults = fault_counts(answers)
    errors = [e for a in answers for e in a.get("errors", [])]
    errors += [
        a["error"] + ": " + a.get("message", "") for a in answers if a.get("outcome") == "error"
    ]
    outcomes: Counter[str] = Counter()
    for name, n in counts.items():
        outcomes[name.split(":", 1)[-1] if ":" in name else name] += n
    line = (
        f"{backend}: {total:,} operations ({worker_ops:,} charges and refunds, "
        f"{counts['reconcile']:,} reconcile runs, {counts['queue']:,} queue runs) in {wall:.1f} s "
        f"({total / wall:.0f} ops/s), {len(ROLES)} workers; {books.payments:,} payments; "
        f"disagreements {len(books.disagreements)}, stuck {len(books.stuck)}, unconverged keys "
        f"{len(books.unconverged_keys) + len(keys)}, over-refunded {len(books.over_refunded)}; "
        f"faults {dict(sorted(faults.items()))}; outcomes {dict(outcomes.most_common(12))}"
    )
    gateway.close()
    if store is not None:
        store.close()
    return {
        "figure": line,
        "worker_errors": errors,
        "converge_failed": failed,
        "keys_after_reconcile": keys,
        "books": books,
        "ops": worker_ops,
    }
