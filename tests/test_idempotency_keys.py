"""Stuck idempotency keys: taken over once the owner's lease has run out, never refunding twice.

A call that dies mid-way (``Crash``, raised by a ``HookedGateway`` hook, is what a killed process
does: nothing after it runs) leaves its key ``in_progress``. The cells of the rule
(docs/engine.md, "Idempotency keys: stuck keys"), on memory, SQLite and PostgreSQL:

| lease      | what the call wrote ahead          | the next caller with the key                     |
|------------|------------------------------------|--------------------------------------------------|
| running    | anything                           | ``OperationInProgressError`` (lease runs until)  |
| expired    | nothing                            | takes the key over and runs the call             |
| expired    | a record still unknown             | ``OperationInProgressError``: run reconcile()    |
| expired    | records all reconciled             | the answer built from them; the key completed    |
| expired    | resolved, but not a charge/refund  | ``OperationInProgressError``: an operator        |

and the fence: a call that outlives its lease after another caller took the key over is refused
at its write-ahead, so it sends nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_core import BillingEngine, Customer, Money, OperationInProgressError, Period
from billing_core import TransactionStatus as S
from billing_core.engine import ChargeOutcome, RefundOutcome, RefundResult
from billing_core.plugins.manager import Plugins
from billing_core.plugins.records import IdempotencyRecord, IdempotencyState
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock
from billing_core.testing.hooked_gateway import Crash, HookedGateway

ADMIN = Actor(id="ada", role="admin")
START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
LEASE = 300
USD = "USD"
FORTY = Money("40.00", USD)


def crash(*_: object) -> None:
    raise Crash


@attrs.define
class Rig:
    engine: BillingEngine
    gateway: SandboxGateway
    hooked: HookedGateway
    clock: ManualClock

    def settled_payment(self) -> str:
        sale = self.engine.charge("c1", Money("100.00", USD), idempotency_key="p", actor=ADMIN)
        assert sale.transaction_id is not None
        self.clock.advance(days=2)
        return sale.transaction_id

    def refund(self, payment: str, key: str = "r") -> RefundResult:
        return self.engine.refund_transaction(
            payment, amount=FORTY, idempotency_key=key, actor=ADMIN
        )

    def crashed_refund(self, payment: str, hook: str, when: str = "before") -> None:
        (self.hooked.before if when == "before" else self.hooked.after)[hook] = crash
        with pytest.raises(Crash):
            self.refund(payment)
        assert self.key("r").state is IdempotencyState.IN_PROGRESS

    def key(self, key: str) -> IdempotencyRecord:
        with self.engine.store.session() as s:
            record = s.get_idempotency(key)
        assert record is not None
        return record

    def gateway_refunds(self) -> int:
        return sum(1 for e in self.gateway.ledger() if e.operation == "refund")

    def taken_over(self) -> list[str]:
        return [
            str(e.detail["how"])
            for e in self.engine.audit_log()
            if e.action == "idempotency.taken_over"
        ]


def _rig(store_url: str) -> Rig:
    clock = ManualClock(START)
    gateway = SandboxGateway(clock=clock, settle_after=timedelta(days=1))
    hooked = HookedGateway(gateway)
    engine = BillingEngine(
        store=store_url,
        clock=clock,
        gateway=hooked,
        plugins=Plugins(clock=clock, entry_points=False),
        lease_seconds=LEASE,
        worker_id="w1",
    )
    engine.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
    return Rig(engine=engine, gateway=gateway, hooked=hooked, clock=clock)


@pytest.fixture
def rig(store_url: str) -> Iterator[Rig]:
    url = store_url
    made = _rig(url)
    yield made
    made.engine.store.close()


def _books(rig: Rig, payment: str) -> tuple[Money, Money]:
    t = rig.engine.transaction(payment)
    return t.refunded, t.reserved


# -- the cells ---------------------------------------------------------------------------------
def test_a_running_lease_keeps_the_key(rig: Rig) -> None:
    payment = rig.settled_payment()
    rig.crashed_refund(payment, "lookup")  # died before writing anything ahead
    rig.clock.advance(seconds=LEASE - 1)
    with pytest.raises(OperationInProgressError, match="lease runs until 2026-11-23T12:05:00"):
        rig.refund(payment)
    assert rig.gateway_refunds() == 0


def test_expired_with_nothing_written_ahead_is_rerun(rig: Rig) -> None:
    payment = rig.settled_payment()
    rig.crashed_refund(payment, "lookup")
    rig.clock.advance(seconds=LEASE)

    result = rig.refund(payment)

    assert result.outcome is RefundOutcome.REFUNDED
    assert rig.gateway_refunds() == 1
    assert _books(rig, payment) == (FORTY, Money("0.00", USD))
    assert rig.taken_over() == ["rerun"]
    assert rig.refund(payment) == result  # a replay now
    assert rig.gateway_refunds() == 1


def test_expired_with_an_unknown_write_ahead_asks_to_reconcile(rig: Rig) -> None:
    payment = rig.settled_payment()
    rig.crashed_refund(payment, "refund", when="after")  # refunded, but the answer was lost
    (record,) = [t for t in rig.engine.transactions() if t.status is S.UNKNOWN]
    rig.clock.advance(seconds=LEASE)

    with pytest.raises(OperationInProgressError, match=f"{record.id}.*run reconcile"):
        rig.refund(payment)
    assert rig.taken_over() == []
    assert rig.key("r").state is IdempotencyState.IN_PROGRESS


@pytest.mark.parametrize("when", ["before", "after"])
def test_expired_and_reconciled_answers_from_the_records(rig: Rig, when: str) -> None:
    """Died before the request left (reconcile finds nothing at the gateway: queued for a
    retry) or after (reconcile finds it refunded): the answer is told from the records, and
    the gateway is not called again."""
    payment = rig.settled_payment()
    rig.crashed_refund(payment, "refund", when=when)
    rig.clock.advance(seconds=LEASE)  # reconcile leaves a call alone while its lease runs
    assert rig.engine.reconcile().resolved == 1
    received = rig.gateway.received["refund"]

    result = rig.refund(payment)

    assert rig.gateway.received["refund"] == received  # nothing sent again
    assert rig.taken_over() == ["recorded"]
    assert "recorded after its call ended without answering" in result.explanation
    if when == "after":
        assert result.outcome is RefundOutcome.REFUNDED
        assert _books(rig, payment) == (FORTY, Money("0.00", USD))
    else:
        assert result.outcome is RefundOutcome.QUEUED
        assert _books(rig, payment) == (Money("0.00", USD), FORTY)
    assert rig.gateway_refunds() == (1 if when == "after" else 0)
    assert rig.refund(payment) == result  # the key is completed with that answer


def test_a_stuck_charge_is_answered_from_its_reconciled_sale(rig: Rig) -> None:
    rig.hooked.after["sale"] = crash
    with pytest.raises(Crash):
        rig.engine.charge("c1", Money("12.00", USD), idempotency_key="c", actor=ADMIN)
    rig.clock.advance(seconds=LEASE)  # reconcile leaves a call alone while its lease runs
    rig.engine.reconcile()

    result = rig.engine.charge("c1", Money("12.00", USD), idempotency_key="c", actor=ADMIN)

    assert result.outcome is ChargeOutcome.CHARGED
    assert sum(1 for e in rig.gateway.ledger() if e.operation == "sale") == 1
    assert rig.engine.transaction(result.transaction_id or "").status is S.COMPLETED


def test_a_stuck_subscription_waits_for_an_operator(rig: Rig) -> None:
    rig.hooked.after["sale"] = crash
    params = {
        "term": Period.years(1),
        "inventory": {"dv": 1},
        "unit_prices": {"dv": Money("50.00", USD)},
        "idempotency_key": "s",
        "actor": ADMIN,
    }
    with pytest.raises(Crash):
        rig.engine.add_subscription("c1", **params)  # type: ignore[arg-type]
    rig.clock.advance(seconds=LEASE)  # reconcile leaves a call alone while its lease runs
    rig.engine.reconcile()
    with pytest.raises(OperationInProgressError, match="an operator must finish it"):
        rig.engine.add_subscription("c1", **params)  # type: ignore[arg-type]
    assert sum(1 for e in rig.gateway.ledger() if e.operation == "sale") == 1


def test_a_call_that_outlives_its_lease_sends_nothing_after_a_takeover(rig: Rig) -> None:
    """Call 1 is held before its write-ahead (a slow settlement lookup) past its lease; call 2
    with the same key takes the key over and refunds. Call 1 then reaches its write-ahead and
    is refused there: one refund at the gateway, and the key keeps call 2's answer."""
    payment = rig.settled_payment()
    second: list[RefundResult] = []

    def meanwhile() -> None:
        rig.clock.advance(seconds=LEASE)
        second.append(rig.refund(payment))

    rig.hooked.before["lookup"] = meanwhile
    with pytest.raises(OperationInProgressError, match="took the key over; nothing was sent"):
        rig.refund(payment)

    assert second[0].outcome is RefundOutcome.REFUNDED
    assert rig.gateway_refunds() == 1
    assert _books(rig, payment) == (FORTY, Money("0.00", USD))
    assert rig.refund(payment) == second[0]


def test_a_dead_calls_write_ahead_blocks_other_refunds_once_its_lease_runs_out(rig: Rig) -> None:
    """While the lease runs, the crashed call's refund is in flight (reserved, other refunds go
    on); once it has run out the call is taken for dead and its record is in doubt."""
    payment = rig.settled_payment()
    rig.crashed_refund(payment, "refund", when="after")
    other = rig.refund(payment, key="other")
    assert other.outcome is RefundOutcome.REFUNDED  # 40.00 in flight, 40.00 refunded
    rig.clock.advance(seconds=LEASE)
    blocked = rig.engine.refund_transaction(
        payment, amount=Money("10.00", USD), idempotency_key="third", actor=ADMIN
    )
    assert (blocked.outcome, blocked.reason) == (RefundOutcome.DENIED, "outcome_unknown")
    with pytest.raises(OperationInProgressError, match="unresolved under idempotency key 'r'"):
        rig.refund(payment, key="fourth")  # the dead call's own request: its key answers it
    rig.engine.reconcile()
    assert _books(rig, payment) == (Money("80.00", USD), Money("0.00", USD))


# -- the property ------------------------------------------------------------------------------
STEP = st.sampled_from(["wait", "wait_long", "reconcile", "ask"])


@settings(max_examples=40, deadline=None)
@given(
    crash_at=st.sampled_from([("lookup", "before"), ("refund", "before"), ("refund", "after")]),
    steps=st.lists(STEP, min_size=1, max_size=8),
)
def test_a_stuck_key_never_refunds_twice(crash_at: tuple[str, str], steps: list[str]) -> None:
    """Whatever the crash point and whatever callers, clocks and reconciliations follow: at
    most one refund at the gateway; the books count it or hold it reserved until reconciled,
    and agree with it after ``reconcile()``; every answer given is the same one."""
    rig = _rig("memory://")
    payment = rig.settled_payment()
    hook, when = crash_at
    (rig.hooked.before if when == "before" else rig.hooked.after)[hook] = crash
    with pytest.raises(Crash):
        rig.refund(payment)
    answers = []
    for step in steps:
        if step == "wait":
            rig.clock.advance(seconds=LEASE // 2)
        elif step == "wait_long":
            rig.clock.advance(days=1)
        elif step == "reconcile":
            rig.engine.reconcile()
        else:
            with contextlib.suppress(OperationInProgressError):
                answers.append(rig.refund(payment))
    refunds = rig.gateway_refunds()
    assert refunds <= 1
    given_back = FORTY if refunds else Money("0.00", USD)
    refunded, reserved = _books(rig, payment)
    assert refunded <= given_back <= refunded + reserved  # counted, or reserved until reconciled
    assert refunded + reserved <= FORTY  # one request of 40.00, written ahead once
    assert len(set(map(repr, answers))) <= 1
    rig.clock.advance(seconds=LEASE)  # reconcile acts on a dead call once its lease has run out
    rig.engine.reconcile()
    assert _books(rig, payment)[0] == given_back
