"""Pending orders: stored without a charge, activated (charged) later, or abandoned.

``add_subscription(..., pending=True)`` stores the order ``pending`` and charges nothing.
``activate`` charges its first term from the day it is activated, exactly like
``add_subscription`` would (same rules, same fallback over the customer's instruments), under
the order's id; a declined activation leaves it pending. Two activations of one order never both
charge: the first sale is written ahead in the session that claims the order
(:func:`claim_pending`), which holds only while the stored order is still ``pending`` and has no
sale that may have taken money (completed, pending or unknown). A pending order never activated
is abandoned at ``abandon_on`` (``abandon_pending_orders``).
"""

from __future__ import annotations

import attrs

from ..model import Subscription, SubscriptionState, TransactionKind, TransactionStatus
from ..plugins.protocols import StoreSession
from .context import EngineContext
from .results import ChargeOutcome, SubscriptionResult

__all__ = ["ActivationTaken", "claim_pending", "store_pending"]


class ActivationTaken(Exception):
    """The order is no longer pending, or another activation may have charged it."""

    def __init__(self, subscription_id: str, why: str) -> None:
        super().__init__(subscription_id)
        self.why = why


def store_pending(ctx: EngineContext, draft: Subscription, *, actor: str) -> SubscriptionResult:
    """Store ``draft`` as a pending order; nothing is charged."""
    order = attrs.evolve(draft, state=SubscriptionState.PENDING)
    with ctx.store.session() as s:
        s.put_subscription(order)
        ctx.audit(
            s,
            action="subscription.pending",
            subject_id=order.id,
            actor=actor,
            detail={"start": order.start.isoformat()},
        )
    return SubscriptionResult(
        outcome=ChargeOutcome.PENDING,
        subscription_id=order.id,
        term_start=order.start,
        explanation=f"Subscription {order.id} is pending: nothing is charged until it is "
        "activated; an order never activated is abandoned (abandon_pending_orders).",
    )


def claim_pending(s: StoreSession, sub: Subscription) -> None:
    """Claim ``sub`` for activation in the session writing its sale ahead; raises
    ``ActivationTaken`` when it is no longer pending or another activation may have paid."""
    current = s.get_subscription(sub.id, lock=True)
    if current is None or current.state is not SubscriptionState.PENDING:
        state = current.state.value if current else "gone"
        raise ActivationTaken(sub.id, f"it is {state}, not pending")
    for t in s.list_transactions(customer_id=sub.customer_id):
        if (
            t.subscription_id == sub.id
            and t.kind is TransactionKind.SALE
            and t.status is not TransactionStatus.FAILED
        ):
            raise ActivationTaken(sub.id, f"another activation charged it (sale {t.id})")
