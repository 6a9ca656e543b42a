"""Promise 5: every gateway fault ends in its documented state, and reconciliation leaves nothing
unknown unless the gateway itself cannot tell (then ``still_unknown`` names it and an
``OutcomeUnknown`` event was emitted).

The matrix: each fault of the sandbox gateway (timeout before sending, timeout after sending,
decline, duplicate response, slow response, not sent, pending) on a refund and on a charge, on
the memory store, a SQLite file and PostgreSQL. For each: the caller's answer, the stored status
right after the call, and the books after ``reconcile()`` and one day of the retry queue. The
table below is the documentation (``docs/reliability.md`` repeats it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from billing_core import BillingEngine, Customer, Money, TransactionStatus
from billing_core.engine import RefundOutcome
from billing_core.plugins.events import OutcomeReconciled, OutcomeUnknown
from billing_core.plugins.manager import Plugins
from billing_core.plugins.records import QueueState
from billing_core.plugins.sandbox_gateway import Fault, SandboxGateway
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock

ADMIN = Actor(id="ada", role="admin")
START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
USD = "USD"
Figure = Callable[[str], None]
S = TransactionStatus


@attrs.frozen
class Expect:
    answer: str  # the RefundOutcome / ChargeOutcome the caller gets
    stored: TransactionStatus  # the refund's (or sale's) status right after the call
    reconciled: TransactionStatus  # its status after reconcile() and a day of retries
    queued: bool = False  # it went through the retry queue
    received: int = 1  # deliveries that reached the gateway's ledger


REFUND: dict[Fault | None, Expect] = {
    None: Expect("refunded", S.COMPLETED, S.COMPLETED),
    Fault.TIMEOUT_BEFORE_SEND: Expect("unknown", S.UNKNOWN, S.COMPLETED, queued=True, received=1),
    Fault.TIMEOUT_AFTER_SEND: Expect("unknown", S.UNKNOWN, S.COMPLETED),
    Fault.DECLINE: Expect("queued", S.FAILED, S.COMPLETED, queued=True, received=2),
    Fault.DUPLICATE_RESPONSE: Expect("refunded", S.COMPLETED, S.COMPLETED, received=2),
    Fault.SLOW: Expect("refunded", S.COMPLETED, S.COMPLETED),
    Fault.NOT_SENT: Expect("queued", S.FAILED, S.COMPLETED, queued=True, received=1),
    Fault.PENDING: Expect("unknown", S.PENDING, S.COMPLETED),
}
"""A refund of 20.00 of a settled 200.00 payment. Whatever the fault, 20.00 ends refunded
exactly once: a lost or refused call goes to the retry queue (reconciliation puts a call that
never left there), a call that did happen is recorded as done by reconciliation."""

CHARGE: dict[Fault | None, Expect] = {
    None: Expect("charged", S.COMPLETED, S.COMPLETED),
    Fault.TIMEOUT_BEFORE_SEND: Expect("unknown", S.UNKNOWN, S.FAILED, received=0),
    Fault.TIMEOUT_AFTER_SEND: Expect("unknown", S.UNKNOWN, S.COMPLETED),
    Fault.DECLINE: Expect("declined", S.FAILED, S.FAILED),
    Fault.DUPLICATE_RESPONSE: Expect("charged", S.COMPLETED, S.COMPLETED, received=2),
    Fault.SLOW: Expect("charged", S.COMPLETED, S.COMPLETED),
    Fault.NOT_SENT: Expect("failed", S.FAILED, S.FAILED, received=0),
    Fault.PENDING: Expect("unknown", S.PENDING, S.COMPLETED),
}
"""A one-off charge of 30.00. A charge is never retried by the engine: one that never reached
the gateway ends ``failed`` (ask again with a new key), one that did ends ``completed``."""

_FAULTS = list(REFUND)
_IDS = [str(f) if f else "no_fault" for f in _FAULTS]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def rig(store_url: str) -> Iterator[tuple[BillingEngine, SandboxGateway, ManualClock]]:
    clock = ManualClock(START)
    gateway = SandboxGateway(clock=clock, settle_after=timedelta(days=1))
    engine = BillingEngine(
        store=store_url,
        clock=clock,
        gateway=gateway,
        plugins=Plugins(clock=clock, entry_points=False),
        notify_emails=["billing@example.com"],
    )
    engine.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
    yield engine, gateway, clock
    engine.store.close()


def _no_doubt(engine: BillingEngine) -> list[str]:
    return [t.id for t in engine.transactions() if t.status in (S.UNKNOWN, S.PENDING)]


@pytest.mark.parametrize("fault", _FAULTS, ids=_IDS)
def test_refund_fault_ends_in_its_documented_state(
    rig: tuple[BillingEngine, SandboxGateway, ManualClock], fault: Fault | None
) -> None:
    engine, gateway, clock = rig
    expect = REFUND[fault]
    sale = engine.charge("c1", Money("200.00", USD), idempotency_key="sale", actor=ADMIN)
    assert sale.transaction_id is not None
    tx = sale.transaction_id
    clock.advance(days=2)  # settled
    gateway.script("refund", [fault])
    before = clock()
    result = engine.refund_transaction(
        tx, amount=Money("20.00", USD), idempotency_key="r", actor=ADMIN
    )
    assert result.outcome == expect.answer, result.explanation
    assert result.refund_transaction_id is not None
    refund_id = result.refund_transaction_id
    assert engine.transaction(refund_id).status is expect.stored
    assert engine.transaction(tx).reserved + engine.transaction(tx).refunded == Money("20.00", USD)
    unknown = [e for e in engine.events if isinstance(e, OutcomeUnknown)]
    assert [e.transaction.id for e in unknown] == (
        [refund_id] if expect.answer == "unknown" else []
    )
    if fault is Fault.SLOW:
        assert clock() - before == gateway.slow
    report = engine.reconcile()
    assert report.still_unknown == ()
    assert report.resolved == (1 if expect.answer == "unknown" else 0)
    assert _no_doubt(engine) == []
    clock.advance(days=1)
    engine.process_refund_queue()
    assert engine.transaction(refund_id).status is expect.reconciled
    stored = engine.transaction(tx)
    assert (stored.refunded, stored.reserved) == (Money("20.00", USD), Money("0.00", USD))
    assert stored.status is S.PARTIALLY_REFUNDED
    refunds = [e for e in gateway.ledger() if e.operation == "refund"]
    assert [e.amount for e in refunds] == [Money("20.00", USD)], "refunded exactly once"
    assert gateway.received["refund"] == expect.received
    entries = engine.refund_queue()
    assert [e.state for e in entries] == ([QueueState.SUCCEEDED] if expect.queued else [])
    assert [e.idempotency_key for e in entries] == (["r:refund"] if expect.queued else [])


@pytest.mark.parametrize("fault", _FAULTS, ids=_IDS)
def test_charge_fault_ends_in_its_documented_state(
    rig: tuple[BillingEngine, SandboxGateway, ManualClock], fault: Fault | None
) -> None:
    engine, gateway, _ = rig
    expect = CHARGE[fault]
    gateway.script("sale", [fault])
    result = engine.charge("c1", Money("30.00", USD), idempotency_key="c", actor=ADMIN)
    assert result.outcome == expect.answer, result.explanation
    assert result.transaction_id is not None
    assert engine.transaction(result.transaction_id).status is expect.stored
    report = engine.reconcile()
    assert report.still_unknown == ()
    assert _no_doubt(engine) == []
    assert engine.transaction(result.transaction_id).status is expect.reconciled
    sales = [e for e in gateway.ledger() if e.operation == "sale"]
    moved = expect.reconciled is S.COMPLETED
    assert [e.amount for e in sales] == ([Money("30.00", USD)] if moved else [])
    assert gateway.received["sale"] == expect.received
    replay = engine.charge("c1", Money("30.00", USD), idempotency_key="c", actor=ADMIN)
    assert replay == result, "a replay answers the stored result, never charges again"
    assert gateway.calls["sale"] == 1


def test_what_the_gateway_cannot_tell_stays_unknown_and_is_reported(
    rig: tuple[BillingEngine, SandboxGateway, ManualClock],
) -> None:
    engine, gateway, clock = rig
    sale = engine.charge("c1", Money("200.00", USD), idempotency_key="sale", actor=ADMIN)
    assert sale.transaction_id is not None
    clock.advance(days=2)
    gateway.script("refund", [Fault.TIMEOUT_AFTER_SEND])
    lost = engine.refund_transaction(
        sale.transaction_id, amount=Money("20.00", USD), idempotency_key="r", actor=ADMIN
    )
    assert lost.outcome is RefundOutcome.UNKNOWN and lost.refund_transaction_id is not None
    assert [e.transaction.id for e in engine.events if isinstance(e, OutcomeUnknown)] == [
        lost.refund_transaction_id
    ]
    gateway.script("lookup", [Fault.TIMEOUT_AFTER_SEND, Fault.NOT_SENT])  # lookups fail twice
    for attempt in range(2):
        report = engine.reconcile()
        assert report.still_unknown == (lost.refund_transaction_id,)
        assert engine.transaction(lost.refund_transaction_id).status is S.UNKNOWN
        blocked = engine.refund_transaction(
            sale.transaction_id,
            amount=Money("1.00", USD),
            idempotency_key=f"more-{attempt}",
            actor=ADMIN,
        )
        assert blocked.reason == "outcome_unknown"
    report = engine.reconcile()  # the gateway answers again
    assert (report.resolved, report.still_unknown) == (1, ())
    assert any(isinstance(e, OutcomeReconciled) for e in engine.events)
    assert engine.transaction(sale.transaction_id).refunded == Money("20.00", USD)
    assert sum(e.amount.amount for e in gateway.ledger() if e.operation == "refund") == Decimal(
        "20.00"
    )


def test_fault_matrix_figure(figure: Figure) -> None:
    """The matrix's size, for the docs (the cases themselves are the parametrized tests)."""
    figure(
        f"fault matrix: {len(REFUND)} refund and {len(CHARGE)} charge cases ({', '.join(_IDS)})"
        " x 3 stores (memory, sqlite, postgres), plus the lookup-cannot-tell case per store"
    )
