"""Bugs the mixed harness (tests/test_reliability_mixed.py) found, each as a deterministic test.

Worker A's gateway is a ``HookedGateway`` whose hook runs B's entry point during A's gateway
call (the rig of tests/test_money_path_races.py), on memory, SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from billing_core import Money, TransactionStatus
from billing_core.engine import RefundOutcome
from test_money_path_races import ADMIN, USD, Rig, _rig


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
