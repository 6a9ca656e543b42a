"""Bugs the mixed harness (tests/test_reliability_mixed.py) found, each as a deterministic test.

Worker A's gateway is a ``HookedGateway`` whose hook runs B's entry point during A's gateway
call (the rig of tests/test_money_path_races.py), on memory, SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from billing_core import BillingEngine, Money, SubscriptionState, TransactionStatus
from billing_core.engine import RefundOutcome
from billing_core.engine.results import ChargeOutcome
from billing_core.plugins.manager import Plugins
from billing_core.plugins.protocols import GatewayOutcome, OutcomeStatus
from billing_core.plugins.sandbox_gateway import Fault
from billing_core.testing.hooked_gateway import HookedGateway
from test_money_path_races import ADMIN, LEASE, USD, Rig, _due_subscription, _rig


@pytest.fixture
def rig(store_url: str) -> Iterator[Rig]:
    made = _rig(store_url)
    yield made
    made.a.store.close()


def test_a_void_declined_as_settled_after_reconcile_failed_it_becomes_a_refund(rig: Rig) -> None:
    """refund_order voids an unsettled payment; the void stalls past its lease, the charge
    settles, ``reconcile()`` hears ``not_sent`` and fails the void (releasing its 100.00); then
    the gateway declines the void: already settled. The order is refunded instead, once."""
    payment = rig.payment("p1", settled=False)

    def during() -> None:
        rig.clock.advance(days=1)  # the charge settles at the gateway; A's lease runs out
        run = rig.b.reconcile()
        assert (run.checked, run.resolved, run.failed) == (1, 1, ())  # void failed, released

    rig.hooked.before["void"] = during
    # before: ExceedsRefundableError ("100.00 USD was never reserved") out of refund_order
    result = rig.a.refund_order(payment, idempotency_key="o1", actor=ADMIN)

    assert result.outcome is RefundOutcome.REFUNDED, result.explanation
    stored = rig.a.transaction(payment)
    assert (stored.status, stored.refunded, stored.reserved) == (
        TransactionStatus.REFUNDED,
        Money("100.00", USD),
        Money("0.00", USD),
    )
    assert rig.gateway_moved("refund", result.refund_transaction_id or "") == Money("100.00", USD)
    assert rig.gateway_moved("void", "") == Money("0.00", USD)
    kinds = sorted((t.kind.value, t.status.value) for t in rig.a.transactions(parent_id=payment))
    assert kinds == [("refund", "completed"), ("void", "failed")]
    assert rig.b.reconcile().checked == 0


# -- renew_due wrote its pre-charge copy of the subscription after the charge ---------------------
def test_renew_due_keeps_what_an_agent_changed_during_its_charge(rig: Rig) -> None:
    """During the renewal's sale an agent lowers the renewal inventory (for the term after)
    and suspends the subscription. The renewal still moves the term (it was charged) with the
    inventory it charged for, and keeps the agent's changes."""
    subscription_id = _due_subscription(rig)

    def during() -> None:
        changed = rig.b.change_renewal_inventory(subscription_id, inventory={"dv": 1}, actor=ADMIN)
        assert changed.allowed, changed.explanation
        rig.b.suspend(subscription_id, actor=ADMIN)

    rig.hooked.before["sale"] = during
    before = rig.a.subscription(subscription_id)
    [renewed] = rig.a.renew_due(actor=ADMIN)

    assert renewed.renewed and renewed.charge is not None
    assert renewed.charge.outcome is ChargeOutcome.CHARGED
    assert renewed.charge.amount == Money("30.00", USD)  # the 3 units it renewed
    stored = rig.a.subscription(subscription_id)
    # before: the renewal wrote its pre-charge copy: active again, renewal inventory 3
    assert stored.state is SubscriptionState.SUSPENDED
    assert dict(stored.renewal_inventory) == {"dv": 1}
    assert dict(stored.inventory) == {"dv": 3}
    assert stored.start > before.start


# -- reconcile's lookup came before the gateway got the call; the late "unknown" came before its
# -- verdict: the status alone (unknown, then unknown again) could not tell -----------------------
class _AfterLookup(HookedGateway):
    """``HookedGateway`` whose ``after["lookup"]`` hook runs once the lookup has answered."""

    def lookup(self, transaction_id: str, idempotency_key: str) -> GatewayOutcome:
        outcome = self.inner.lookup(transaction_id, idempotency_key)
        hook = self.after.pop("lookup", None)
        if hook is not None:
            hook(outcome)
        return outcome


@pytest.mark.parametrize("call", ["charge", "void"])
def test_a_lookup_older_than_a_late_unknown_answer_decides_nothing(rig: Rig, call: str) -> None:
    """A's sale (or void) stalls past its lease. ``reconcile()`` looks it up: ``not_sent`` (the
    gateway has not got it yet). Before reconcile writes its verdict, A's call reaches the
    gateway, which carries it out, and A records its lost answer: ``unknown`` over ``unknown``.
    Reconcile's verdict is stale: it writes nothing, and the next reconcile completes it."""
    payment = rig.payment("p1", settled=False) if call == "void" else None
    operation = "void" if call == "void" else "sale"
    rig.gateway.script(operation, [Fault.TIMEOUT_AFTER_SEND])
    b_gateway = _AfterLookup(rig.gateway)
    b = BillingEngine(
        store=rig.a.store,
        gateway=b_gateway,
        clock=rig.clock,
        plugins=Plugins(clock=rig.clock, entry_points=False),
        lease_seconds=LEASE,
        worker_id="worker-b2",
    )
    stalled, go_on = threading.Event(), threading.Event()

    def stall() -> None:
        rig.late()
        stalled.set()
        assert go_on.wait(30)

    rig.hooked.before[operation] = stall
    answers: list[Any] = []

    def run_a() -> None:
        if payment is None:
            answers.append(
                rig.a.charge("c1", Money("50.00", USD), idempotency_key="a", actor=ADMIN)
            )
        else:
            answers.append(rig.a.refund_transaction(payment, idempotency_key="a", actor=ADMIN))

    a = threading.Thread(target=run_a)
    a.start()
    assert stalled.wait(30)

    def let_a_finish(outcome: GatewayOutcome) -> None:
        assert outcome.status is OutcomeStatus.NOT_SENT
        go_on.set()
        a.join(30)

    b_gateway.after["lookup"] = let_a_finish
    first = b.reconcile()
    assert answers and answers[0].outcome.value == "unknown"
    # before: reconcile wrote its stale not_sent: the sale failed (or the void failed and its
    # 100.00 released) while the gateway had charged 50.00 (voided 100.00)
    assert (first.checked, first.resolved, first.failed) == (1, 0, ())
    second = rig.b.reconcile()
    assert (second.checked, second.resolved) == (1, 1)
    if payment is None:
        sale = rig.a.transaction(answers[0].transaction_id)
        assert sale.status is TransactionStatus.COMPLETED
        assert rig.gateway_moved("sale", sale.id) == Money("50.00", USD)
    else:
        stored = rig.a.transaction(payment)
        assert (stored.status, stored.refunded, stored.reserved) == (
            TransactionStatus.VOIDED,
            Money("100.00", USD),
            Money("0.00", USD),
        )
        void_id = answers[0].refund_transaction_id or ""
        assert rig.gateway_moved("void", void_id) == Money("100.00", USD)
