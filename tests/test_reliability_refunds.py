"""Nothing refunded twice, nothing over-refunded: many workers refunding one payment at once.

Promise 1 (concurrent partial refunds): a settled payment of 100.00; 50 workers each ask to
refund 7.00 at the same moment (a barrier). Exactly 14 succeed, 36 are denied with
``exceeds_refundable``, 98.00 is refunded and the gateway saw exactly 14 refunds. On SQLite
with 50 threads and with 50 processes, on PostgreSQL with 50 processes; 50 rounds each in CI,
500 with ``BILLING_CORE_SOAK=1``.

Promise 2 (double full refunds): 200 payments (half settled, refunded; half unsettled, voided),
each fully refunded by two workers at the same moment: exactly 200 succeed, 200 are denied,
and every payment's books agree with the gateway's (2,000 payments with ``BILLING_CORE_SOAK=1``).

The workers are real processes (``forkserver``) or threads, each with its own ``BillingEngine``
on one database and one ``SharedGateway`` (a sandbox gateway whose ledger is in that database).
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing_core import BillingEngine, Customer, Money, TransactionKind, TransactionStatus
from billing_core.engine import ChargeOutcome
from billing_core.plugins.manager import Plugins
from billing_core.plugins.sql_store import SqlStore
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock
from billing_core.testing.shared_gateway import SharedGateway
from billing_core.testing.workers import (
    ProcessWorkers,
    ThreadWorkers,
    refund_many_task,
    refund_task,
)

SOAK = os.environ.get("BILLING_CORE_SOAK") == "1"
ROUNDS = 500 if SOAK else 50
WORKERS = 50
PAYMENTS = 2000 if SOAK else 200
ADMIN = Actor(id="ada", role="admin")
START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
USD = "USD"
Figure = Callable[[str], None]


class Books:
    """The test's own engine on the shared database, to set up payments and read results."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.clock = ManualClock(START)
        self.store = SqlStore(url)
        self.gateway = SharedGateway(self.store.engine, clock=self.clock, settle_after=timedelta(0))
        self.unsettling = SharedGateway(
            self.store.engine, clock=self.clock, settle_after=None, create=False
        )
        self.engine = self._engine(self.gateway)
        self.engine.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)

    def _engine(self, gateway: SharedGateway) -> BillingEngine:
        return BillingEngine(
            store=self.store,
            gateway=gateway,
            clock=self.clock,
            plugins=Plugins(clock=self.clock, entry_points=False),
        )

    def pay(self, amount: str, key: str, *, settled: bool = True) -> str:
        engine = self.engine if settled else self._engine(self.unsettling)
        result = engine.charge("c1", Money(amount, USD), idempotency_key=key, actor=ADMIN)
        assert result.outcome is ChargeOutcome.CHARGED, result.explanation
        assert result.transaction_id is not None
        assert self.engine.transaction(result.transaction_id).settled is settled
        return result.transaction_id

    def close(self) -> None:
        self.gateway.close()
        self.store.close()


@pytest.fixture(scope="module")
def processes() -> Iterator[ProcessWorkers]:
    with ProcessWorkers(WORKERS) as workers:
        yield workers


@pytest.fixture(params=["sqlite-threads", "sqlite-processes", "postgres-processes"])
def setup(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, Books, ProcessWorkers | ThreadWorkers]]:
    backend, kind = str(request.param).split("-")
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_schema_url")
    books = Books(url)
    workers: ProcessWorkers | ThreadWorkers = (
        request.getfixturevalue("processes") if kind == "processes" else ThreadWorkers(WORKERS)
    )
    yield str(request.param), books, workers
    books.close()


def _refunds_at_gateway(books: Books, reference: str) -> list[Money]:
    return [
        e.amount
        for e in books.gateway.ledger()
        if e.operation == "refund" and e.parent_reference == reference
    ]


def test_concurrent_partial_refunds_never_exceed_the_capture(
    setup: tuple[str, Books, ProcessWorkers | ThreadWorkers], figure: Figure
) -> None:
    name, books, workers = setup
    started = time.perf_counter()
    round_times: list[float] = []
    for r in range(ROUNDS):
        books.clock.set(START + timedelta(minutes=r))
        tx = books.pay("100.00", f"capture-{r}")
        refunds_before = books.gateway.calls["refund"]
        t0 = time.perf_counter()
        answers = workers.run(
            refund_task,
            {
                "store": books.url,
                "transaction_id": tx,
                "amount": "7.00",
                "currency": USD,
                "key": f"round-{r}-worker-{{worker}}",
                "now": books.clock() + timedelta(hours=1),
            },
        )
        round_times.append(time.perf_counter() - t0)
        outcomes = Counter((a["outcome"], a.get("reason")) for a in answers)
        assert outcomes == {("refunded", None): 14, ("denied", "exceeds_refundable"): 36}, (
            f"round {r}: {outcomes}; errors: {[a for a in answers if a['outcome'] == 'error'][:3]}"
        )
        stored = books.engine.transaction(tx)
        assert stored.refunded == Money("98.00", USD), f"round {r}"
        assert stored.reserved == Money("0.00", USD)
        assert stored.status is TransactionStatus.PARTIALLY_REFUNDED
        children = books.engine.transactions(parent_id=tx)
        assert len(children) == 14
        assert {c.status for c in children} == {TransactionStatus.COMPLETED}
        assert books.gateway.calls["refund"] - refunds_before == 14
        assert stored.gateway_reference is not None
        assert sum(m.amount for m in _refunds_at_gateway(books, stored.gateway_reference)) == (
            Decimal("98.00")
        )
    elapsed = time.perf_counter() - started
    figure(
        f"{name}: {ROUNDS} rounds x {WORKERS} workers refunding 7.00 of 100.00 at once: "
        f"14 refunded / 36 exceeds_refundable every round, 98.00 refunded, 14 gateway refunds "
        f"per round ({ROUNDS * 14} refunds, {ROUNDS * 36} denials); {elapsed:.1f} s, "
        f"median round {statistics.median(round_times) * 1000:.0f} ms, "
        f"max {max(round_times) * 1000:.0f} ms"
    )


def test_double_full_refunds_succeed_once(
    setup: tuple[str, Books, ProcessWorkers | ThreadWorkers], figure: Figure
) -> None:
    name, books, workers = setup
    half = PAYMENTS // 2
    settled = [books.pay("25.00", f"settled-{i}") for i in range(half)]
    unsettled = [books.pay("25.00", f"unsettled-{i}", settled=False) for i in range(half)]
    # each group is worked through by two workers in the same order: the pair collides on
    # every payment; settled and unsettled payments alternate
    payments = [p for pair in zip(settled, unsettled, strict=True) for p in pair]
    groups = [payments[g :: WORKERS // 2] for g in range(WORKERS // 2)]
    started = time.perf_counter()
    answers = workers.run(
        refund_many_task,
        {"store": books.url, "groups": groups, "now": books.clock() + timedelta(hours=1)},
    )
    elapsed = time.perf_counter() - started
    errors = [e for a in answers for e in a.get("errors", [a.get("message")]) if e]
    assert errors == []
    outcomes: Counter[str] = Counter()
    for a in answers:
        outcomes.update(a["outcomes"])
    succeeded = Counter(t for a in answers for t in a["refunded"])
    assert sum(succeeded.values()) == PAYMENTS, outcomes
    assert set(succeeded) == set(payments) and set(succeeded.values()) == {1}
    denied = sum(n for k, n in outcomes.items() if k.startswith("denied:"))
    assert denied == PAYMENTS, outcomes
    assert {k.split(":")[1] for k in outcomes if k.startswith("denied:")} <= {
        "nothing_to_refund",
        "exceeds_refundable",
    }
    moves: dict[str, list[Any]] = {}
    for entry in books.gateway.ledger():
        if entry.parent_reference is not None:
            moves.setdefault(entry.parent_reference, []).append(entry)
    for tx in payments:
        stored = books.engine.transaction(tx)
        is_settled = tx in settled
        assert stored.status is (
            TransactionStatus.REFUNDED if is_settled else TransactionStatus.VOIDED
        )
        assert (stored.refunded, stored.reserved) == (Money("25.00", USD), Money("0.00", USD))
        [child] = books.engine.transactions(parent_id=tx)
        assert child.kind is (TransactionKind.REFUND if is_settled else TransactionKind.VOID)
        assert (child.status, child.amount) == (TransactionStatus.COMPLETED, Money("25.00", USD))
        assert stored.gateway_reference is not None
        [move] = moves[stored.gateway_reference]
        assert move.amount == Money("25.00", USD) and move.reference == child.gateway_reference
        state = books.gateway.charge(stored.gateway_reference)
        assert state.voided is not is_settled
        assert state.refunded == (Money("25.00", USD) if is_settled else Money("0.00", USD))
    figure(
        f"{name}: {PAYMENTS} payments ({half} settled, {half} unsettled) each fully refunded "
        f"by 2 of {WORKERS} workers at once: {PAYMENTS} succeeded ({half} refunds, {half} "
        f"voids), {denied} denied ({dict(sorted(outcomes.items()))}); books match the "
        f"gateway; {elapsed:.1f} s"
    )
