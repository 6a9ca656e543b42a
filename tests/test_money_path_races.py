"""Entry points run together on the money path (issue 11, observations 1 to 4).

Each test is a deterministic reproduction: worker A's gateway is a ``HookedGateway`` whose hook
runs another entry point (``reconcile``, an agent's void, the refund queue) of worker B *during*
A's gateway call, on one store and one sandbox gateway. Before the compare-and-set rule
(``engine.recording``) and the in-flight rule of ``reconcile`` (docs/engine.md, "Recording a
gateway answer"), each ended with the store and the gateway disagreeing, or with an exception.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_core import BillingEngine, Customer, Money, Period, TransactionStatus
from billing_core.engine import RefundOutcome
from billing_core.engine.results import ChargeOutcome
from billing_core.model import TransactionStatus as S
from billing_core.plugins.manager import Plugins
from billing_core.plugins.protocols import GatewayOutcome
from billing_core.plugins.sandbox_gateway import Fault, SandboxGateway
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock
from billing_core.testing.hooked_gateway import Crash, HookedGateway

ADMIN = Actor(id="ada", role="admin")
START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
LEASE = 300
USD = "USD"


@attrs.define
class Rig:
    a: BillingEngine  # calls the gateway through ``hooked``
    b: BillingEngine  # the other entry points: reconcile, agents, the queue
    gateway: SandboxGateway
    hooked: HookedGateway
    clock: ManualClock

    def payment(self, key: str, amount: str = "100.00", *, settled: bool = True) -> str:
        sale = self.b.charge("c1", Money(amount, USD), idempotency_key=key, actor=ADMIN)
        assert sale.transaction_id is not None
        if settled:
            self.clock.advance(days=2)
        return sale.transaction_id

    def late(self) -> None:
        """A's lease runs out during its call: its call is taken for dead from now on."""
        self.clock.advance(seconds=LEASE + 1)

    def gateway_moved(self, operation: str, transaction_id: str) -> Money:
        return sum(
            (
                e.amount
                for e in self.gateway.ledger()
                if e.operation == operation and e.transaction_id == transaction_id
            ),
            Money("0.00", USD),
        )

    def actions(self, subject: str) -> list[str]:
        return [e.action for e in self.a.audit_log(subject_id=subject)]


def _rig(url: str) -> Rig:
    clock = ManualClock(START)
    gateway = SandboxGateway(clock=clock, settle_after=timedelta(days=1))
    hooked = HookedGateway(gateway)
    common: dict[str, Any] = {
        "clock": clock,
        "plugins": Plugins(clock=clock, entry_points=False),
        "lease_seconds": LEASE,
    }
    a = BillingEngine(store=url, gateway=hooked, worker_id="worker-a", **common)
    b = BillingEngine(store=a.store, gateway=gateway, worker_id="worker-b", **common)
    a.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
    return Rig(a=a, b=b, gateway=gateway, hooked=hooked, clock=clock)


def _memory_rig() -> Rig:
    return _rig("memory://")


@pytest.fixture
def rig(store_url: str) -> Iterator[Rig]:
    url = store_url
    made = _rig(url)
    yield made
    made.a.store.close()


# -- observation 1: reconcile acted on a call still in flight -------------------------------------
def test_reconcile_skips_a_void_still_in_flight(rig: Rig) -> None:
    payment = rig.payment("p1", settled=False)
    runs = []
    rig.hooked.before["void"] = lambda: runs.append(rig.b.reconcile())

    result = rig.a.refund_transaction(payment, idempotency_key="v1", actor=ADMIN)

    # before: reconcile heard not_sent, released the void; the void then raised
    # ExceedsRefundableError and the store said completed, 0.00 refunded
    assert (runs[0].checked, runs[0].resolved, runs[0].failed) == (0, 0, ())
    assert result.outcome is RefundOutcome.VOIDED, result.explanation
    stored = rig.a.transaction(payment)
    assert (stored.status, stored.refunded, stored.reserved) == (
        TransactionStatus.VOIDED,
        Money("100.00", USD),
        Money("0.00", USD),
    )
    assert rig.gateway_moved("void", result.refund_transaction_id or "") == Money("100.00", USD)


def test_a_late_void_success_after_reconcile_failed_it_is_recorded_once(rig: Rig) -> None:
    payment = rig.payment("p1", settled=False)

    def during() -> None:
        rig.late()  # A's lease ran out: reconcile now takes the void for dead
        run = rig.b.reconcile()
        assert (run.checked, run.resolved) == (1, 1)  # not_sent: void failed, released

    rig.hooked.before["void"] = during
    result = rig.a.refund_transaction(payment, idempotency_key="v1", actor=ADMIN)

    assert result.outcome is RefundOutcome.VOIDED, result.explanation
    void_id = result.refund_transaction_id or ""
    stored = rig.a.transaction(payment)
    assert (stored.status, stored.refunded, stored.reserved) == (
        TransactionStatus.VOIDED,
        Money("100.00", USD),
        Money("0.00", USD),
    )
    assert rig.a.transaction(void_id).status is TransactionStatus.COMPLETED
    assert "void.late_answer" in rig.actions(void_id)
    assert rig.b.reconcile().checked == 0


# -- observation 2: a late unknown written over what reconcile recorded ---------------------------
def test_a_late_unknown_does_not_overwrite_what_reconcile_recorded(rig: Rig) -> None:
    payment = rig.payment("p1")
    rig.gateway.script("refund", [Fault.TIMEOUT_BEFORE_SEND])  # answers unknown, nothing moved

    def after(_: GatewayOutcome) -> None:
        rig.late()
        run = rig.b.reconcile()  # not_sent: the refund is queued for a retry
        assert (run.checked, run.resolved) == (1, 1)

    rig.hooked.after["refund"] = after
    result = rig.a.refund_transaction(
        payment, amount=Money("30.00", USD), idempotency_key="r1", actor=ADMIN
    )

    # before: A wrote ``unknown`` over the queued refund, blocking the payment
    assert result.outcome is RefundOutcome.QUEUED, result.explanation
    refund_id = result.refund_transaction_id or ""
    assert rig.a.transaction(refund_id).status is TransactionStatus.FAILED
    assert "refund.late_answer" in rig.actions(refund_id)
    assert rig.a.transaction(payment).reserved == Money("30.00", USD)
    assert rig.b.reconcile().checked == 0
    rig.clock.advance(days=1, minutes=1)
    assert rig.b.process_refund_queue().succeeded == 1
    stored = rig.a.transaction(payment)
    assert (stored.refunded, stored.reserved) == (Money("30.00", USD), Money("0.00", USD))
    assert rig.gateway_moved("refund", refund_id) == Money("30.00", USD)


def test_a_late_unknown_after_reconcile_completed_counts_the_refund_once(rig: Rig) -> None:
    payment = rig.payment("p1")
    rig.gateway.script("refund", [Fault.TIMEOUT_AFTER_SEND])  # refunded, answered unknown

    def after(_: GatewayOutcome) -> None:
        rig.late()
        assert rig.b.reconcile().resolved == 1

    rig.hooked.after["refund"] = after
    result = rig.a.refund_transaction(
        payment, amount=Money("30.00", USD), idempotency_key="r1", actor=ADMIN
    )

    assert result.outcome is RefundOutcome.REFUNDED, result.explanation
    refund_id = result.refund_transaction_id or ""
    for _ in range(2):  # later runs find nothing to count again
        assert rig.b.reconcile().checked == 0
    stored = rig.a.transaction(payment)
    assert (stored.refunded, stored.reserved) == (Money("30.00", USD), Money("0.00", USD))
    assert rig.gateway_moved("refund", refund_id) == Money("30.00", USD)
    more = rig.b.refund_transaction(
        payment, amount=Money("10.00", USD), idempotency_key="r2", actor=ADMIN
    )
    assert more.outcome is RefundOutcome.REFUNDED, more.explanation


# -- observation 3: one record that raises blocks every other ------------------------------------
def _on_a_retired_gateway(rig: Rig, fault: Fault) -> str:
    """A refund of 20.00 answered with ``fault`` by a gateway worker A no longer has configured:
    A raises ``PluginError`` on it (one bad record); returns its payment."""
    retired = SandboxGateway(clock=rig.clock, name="retired", settle_after=timedelta(days=1))
    c = BillingEngine(
        store=rig.a.store,
        gateway=retired,
        clock=rig.clock,
        plugins=Plugins(clock=rig.clock, entry_points=False),
        lease_seconds=LEASE,
    )
    sale = c.charge("c1", Money("100.00", USD), idempotency_key="old", actor=ADMIN)
    payment = sale.transaction_id or ""
    rig.clock.advance(days=2)
    retired.script("refund", [fault])
    c.refund_transaction(payment, amount=Money("20.00", USD), idempotency_key="old-r", actor=ADMIN)
    return payment


def test_reconcile_reports_a_failing_record_and_goes_on(rig: Rig) -> None:
    bad = _on_a_retired_gateway(rig, Fault.TIMEOUT_AFTER_SEND)
    good = rig.payment("p1")
    rig.gateway.script("refund", [Fault.TIMEOUT_AFTER_SEND])
    answer = rig.a.refund_transaction(
        good, amount=Money("20.00", USD), idempotency_key="r1", actor=ADMIN
    )
    assert answer.outcome is RefundOutcome.UNKNOWN

    run = rig.a.reconcile()  # before: raised PluginError; the good record waited behind it

    assert (run.checked, run.resolved, run.still_unknown) == (2, 1, ())
    ((failed_id, error),) = run.failed
    assert rig.a.transaction(failed_id).parent_id == bad
    assert "no payment gateway named 'retired'" in error
    assert "1 failed" in run.explanation
    assert rig.a.transaction(good).refunded == Money("20.00", USD)
    assert rig.a.transaction(bad).reserved == Money("20.00", USD)  # untouched, still unknown


def test_the_queue_reports_a_failing_entry_and_goes_on(rig: Rig) -> None:
    bad = _on_a_retired_gateway(rig, Fault.DECLINE)
    good = rig.payment("p1")
    rig.gateway.script("refund", [Fault.DECLINE])
    answer = rig.a.refund_transaction(
        good, amount=Money("20.00", USD), idempotency_key="r1", actor=ADMIN
    )
    assert answer.outcome is RefundOutcome.QUEUED
    rig.clock.advance(days=1, minutes=1)

    run = rig.a.process_refund_queue()  # before: raised PluginError

    assert (run.claimed, run.succeeded, len(run.failed)) == (2, 1, 1)
    ((entry_id, error),) = run.failed
    assert entry_id.startswith("q-") and "'retired'" in error
    assert "1 failed (q-" in run.explanation
    assert rig.a.transaction(good).refunded == Money("20.00", USD)
    assert rig.a.transaction(bad).reserved == Money("20.00", USD)


# -- observation 4: a slow charge answer wrote its stale copy of the sale -------------------------
def test_a_slow_charge_answer_does_not_erase_a_void(rig: Rig) -> None:
    voided: list[str] = []

    def after(_: GatewayOutcome) -> None:
        rig.late()
        assert rig.b.reconcile().resolved == 1  # the sale: completed
        (sale,) = rig.b.transactions(customer_id="c1")
        void = rig.b.refund_transaction(sale.id, idempotency_key="agent-void", actor=ADMIN)
        assert void.outcome is RefundOutcome.VOIDED
        voided.append(sale.id)

    rig.hooked.after["sale"] = after
    result = rig.a.charge("c1", Money("50.00", USD), idempotency_key="c-1", actor=ADMIN)

    assert result.outcome is ChargeOutcome.CHARGED
    sale = rig.a.transaction(voided[0])
    # before: the charge wrote its pre-call copy (completed, 0.00 refunded): the void was erased
    assert (sale.status, sale.refunded) == (TransactionStatus.VOIDED, Money("50.00", USD))
    assert "sale.late_answer" in rig.actions(sale.id)


def test_reconcile_skips_a_sale_still_in_flight(rig: Rig) -> None:
    runs = []
    rig.hooked.before["sale"] = lambda: runs.append(rig.b.reconcile())

    result = rig.a.charge("c1", Money("50.00", USD), idempotency_key="c-1", actor=ADMIN)

    # before: reconcile heard not_sent and failed the sale the gateway then charged
    assert runs[0].checked == 0
    assert result.outcome is ChargeOutcome.CHARGED
    assert rig.a.transaction(result.transaction_id or "").status is TransactionStatus.COMPLETED


def test_a_late_charge_success_after_reconcile_failed_the_sale_is_recorded(rig: Rig) -> None:
    def before() -> None:
        rig.late()
        assert rig.b.reconcile().resolved == 1  # not_sent: the sale is failed

    rig.hooked.before["sale"] = before
    result = rig.a.charge("c1", Money("50.00", USD), idempotency_key="c-1", actor=ADMIN)

    sale_id = result.transaction_id or ""
    assert result.outcome is ChargeOutcome.CHARGED
    assert rig.a.transaction(sale_id).status is TransactionStatus.COMPLETED
    assert rig.gateway_moved("sale", sale_id) == Money("50.00", USD)
    assert "sale.late_answer" in rig.actions(sale_id)


# -- renew_due run twice at once: one charge per term ----------------------------------------------
def _due_subscription(rig: Rig) -> str:
    sub = rig.a.add_subscription(
        "c1",
        term=Period.months(1),
        inventory={"dv": 3},
        unit_prices={"dv": Money("10.00", USD)},
        idempotency_key="m",
        actor=ADMIN,
    )
    assert sub.subscription_id is not None
    rig.clock.advance(days=31)
    return sub.subscription_id


def _renewal_sales(rig: Rig, subscription_id: str) -> list[str]:
    return [
        t.id
        for t in rig.a.transactions(customer_id="c1")
        if t.subscription_id == subscription_id and (t.idempotency_key or "").startswith("renewal:")
    ]


def test_renew_due_during_another_renew_due_charges_the_term_once(rig: Rig) -> None:
    subscription_id = _due_subscription(rig)
    inner = []
    rig.hooked.before["sale"] = lambda: inner.append(rig.b.renew_due(actor=ADMIN))

    outer = rig.a.renew_due(actor=ADMIN)

    # before: B renewed and charged the same term again: two sale rows, two gateway calls
    assert inner[0].renewals == ()
    [renewed] = outer
    assert renewed.renewed and renewed.charge is not None
    assert renewed.charge.outcome is ChargeOutcome.CHARGED
    assert len(_renewal_sales(rig, subscription_id)) == 1
    assert rig.gateway.calls["sale"] == 2  # the first term and one renewal
    assert rig.a.subscription(subscription_id).start == START.date() + timedelta(days=30)
    assert rig.a.renew_due(actor=ADMIN).renewals == ()


def test_a_renewal_that_died_after_its_charge_is_finished_without_charging_again(
    rig: Rig,
) -> None:
    subscription_id = _due_subscription(rig)

    def die(_: GatewayOutcome) -> None:
        raise Crash

    rig.hooked.after["sale"] = die
    with pytest.raises(Crash):
        rig.a.renew_due(actor=ADMIN)
    rig.b.renew_due(actor=ADMIN)  # within the lease: the dead renewal may still be running
    assert rig.a.subscription(subscription_id).start == START.date()
    rig.late()

    [finished] = rig.b.renew_due(actor=ADMIN)

    assert finished.renewed and finished.charge is None
    assert len(_renewal_sales(rig, subscription_id)) == 1
    assert rig.gateway.calls["sale"] == 2
    assert rig.b.reconcile().resolved == 1  # the dead call's sale: charged at the gateway
    (sale,) = _renewal_sales(rig, subscription_id)
    assert rig.a.transaction(sale).status is TransactionStatus.COMPLETED


def test_two_renew_due_threads_charge_the_term_once(rig: Rig) -> None:
    subscription_id = _due_subscription(rig)
    slow_too = HookedGateway(rig.gateway)
    engines = [
        rig.a,
        BillingEngine(  # one store object, as a host's worker threads share it
            store=rig.a.store,
            gateway=slow_too,
            clock=rig.clock,
            plugins=Plugins(clock=rig.clock, entry_points=False),
            lease_seconds=LEASE,
        ),
    ]
    for hooked in (rig.hooked, slow_too):  # each sale takes a while: both runs list the term
        hooked.before["sale"] = lambda: time.sleep(0.3)
    start = threading.Barrier(2)
    runs: list[int] = []

    def run(engine: BillingEngine) -> None:
        start.wait()
        runs.append(sum(1 for r in engine.renew_due(actor=ADMIN) if r.renewed))

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sorted(runs) == [0, 1]
    assert len(_renewal_sales(rig, subscription_id)) == 1
    assert rig.gateway.calls["sale"] == 2  # the first term and one renewal


# -- randomized interleavings: whatever runs during a call, store and gateway agree ----------------
INTRUSION = st.sampled_from(["late", "reconcile", "queue", "agent_refund"])
FAULT = st.sampled_from(
    [None, Fault.TIMEOUT_AFTER_SEND, Fault.TIMEOUT_BEFORE_SEND, Fault.PENDING, Fault.DECLINE]
)


INTERLEAVING = st.fixed_dictionaries(
    {
        "late": st.booleans(),
        "settled": st.booleans(),
        "call": st.sampled_from(["refund", "full_refund", "charge"]),
        "fault": FAULT,
        "moment": st.sampled_from(["before", "after"]),
        "intrusions": st.lists(INTRUSION, max_size=3),
    }
)


@settings(max_examples=200, deadline=None)
@given(case=INTERLEAVING)
def test_any_interleaving_converges_to_the_gateways_books(case: dict[str, Any]) -> None:
    _interleave(_memory_rig(), **case)


@settings(max_examples=25, deadline=None)
@given(case=INTERLEAVING)
def test_any_interleaving_converges_on_sqlite(case: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rig = _rig(f"sqlite:///{Path(tmp) / 'billing.sqlite3'}")
        try:
            _interleave(rig, **case)
        finally:
            rig.a.store.close()


def _interleave(
    rig: Rig,
    *,
    late: bool,
    settled: bool,
    call: str,
    fault: Fault | None,
    moment: str,
    intrusions: list[str],
) -> None:
    """A's call (a refund, a full refund or void, a charge) answered with ``fault``; during it
    (before or after the gateway acted) B moves the clock past A's lease, reconciles, runs the
    queue or refunds 10.00 as an agent, in any order. A's call never raises; after the lease
    runs out, reconcile and the queue's days, nothing is in doubt and, for every charge, the
    store's given-back total equals the gateway's to the cent."""
    payment = rig.payment("p1", settled=settled)
    operation = {"refund": "refund", "full_refund": "refund" if settled else "void"}.get(
        call, "sale"
    )
    if fault is not None:
        rig.gateway.script(operation, [fault])
    agent_keys = iter(range(10))

    def during(*_: object) -> None:
        for step in ["late"] * late + intrusions:
            if step == "late":
                rig.late()
            elif step == "reconcile":
                rig.b.reconcile()
            elif step == "queue":
                rig.b.process_refund_queue()
            else:
                rig.b.refund_transaction(
                    payment,
                    amount=Money("10.00", USD),
                    idempotency_key=f"agent-{next(agent_keys)}",
                    actor=ADMIN,
                )

    (rig.hooked.before if moment == "before" else rig.hooked.after)[operation] = during
    if call == "charge":
        rig.a.charge("c1", Money("20.00", USD), idempotency_key="a", actor=ADMIN)
    else:
        amount = Money("30.00", USD) if call == "refund" else None
        rig.a.refund_transaction(payment, amount=amount, idempotency_key="a", actor=ADMIN)

    rig.gateway.clear_faults()
    for _ in range(5):  # past every lease, then a day of reconcile and queue at a time
        rig.clock.advance(days=1, seconds=LEASE)
        assert rig.b.reconcile().failed == ()
        assert rig.b.process_refund_queue().failed == ()
    stored = {t.id: t for t in rig.a.transactions()}
    assert [t.id for t in stored.values() if t.status in (S.UNKNOWN, S.PENDING)] == []
    for charge in rig.gateway.charges():
        sale = stored[charge.transaction_id]
        at_gateway = charge.amount if charge.voided else charge.refunded
        assert sale.refunded == at_gateway, (sale, charge)
        assert sale.reserved == Money("0.00", USD) or sale.status is not S.COMPLETED
