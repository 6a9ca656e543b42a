"""Bugs the mixed harness (tests/test_reliability_mixed.py) found, each as a deterministic test.

Worker A's gateway is a ``HookedGateway`` whose hook runs B's entry point during A's gateway
call (the rig of tests/test_money_path_races.py), on memory, SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from billing_core import Money, SubscriptionState, TransactionStatus
from billing_core.engine import RefundOutcome
from billing_core.engine.results import ChargeOutcome
from test_money_path_races import ADMIN, USD, Rig, _due_subscription, _rig


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
