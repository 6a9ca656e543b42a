"""A renewal that was not paid: the subscription goes ``past_due`` on its old term.

A declined renewal never silently renews. When the renewal's charge ends declined, denied (a
blocklist entry), failed (not sent, or no usable instrument), the subscription is stored
``past_due`` (``rules.subscription_states``: ``renewal_unpaid``), keeping the term it had: no new
term, no certificates, nothing renewed for free. It is audited (``subscription.past_due``) and
emitted (``SubscriptionPastDue``) with the charge's sentence. A renewal whose outcome is
unknown is not past due: reconciliation settles its sale first. A trial whose first charge is
not paid goes ``past_due`` the same way (``renewal_unpaid`` from ``trialing``).

The audit entry names the charge's idempotency key (``key``) and the term it was for
(``term_start``), so ``engine.renewal_dunning`` can count this first failed attempt (even one
that wrote no sale: blocked, no usable instrument) and chase it on the dunning schedule.
"""

from __future__ import annotations

import attrs

from ..model import Subscription, Transaction, TransactionStatus
from ..plugins.events import SubscriptionPastDue
from ..rules.subscription_states import StateEvent, next_state
from .context import EngineContext
from .results import ChargeOutcome, ChargeResult, RenewalOutcome, RenewalResult

__all__ = ["UNPAID", "mark_past_due", "unpaid"]

UNPAID = frozenset({ChargeOutcome.DECLINED, ChargeOutcome.DENIED, ChargeOutcome.FAILED})


def unpaid(result: ChargeResult | None, sale: Transaction | None) -> bool:
    """Whether a renewal's charge left it unpaid (and not in doubt)."""
    if result is not None:
        return result.outcome in UNPAID
    return sale is not None and sale.status is TransactionStatus.FAILED


def mark_past_due(
    ctx: EngineContext,
    sub: Subscription,
    *,
    result: ChargeResult | None,
    sale: Transaction | None,
    actor: str,
    key: str | None = None,
    term_start: str | None = None,
    what: str = "was not renewed and is past due on its term ending {term_end}",
) -> RenewalResult | None:
    """Store ``sub`` past due (unless it moved meanwhile: then None) and say so; ``key`` is the
    unpaid charge's idempotency key, ``term_start`` the start of the term it was for."""
    why = (
        result.explanation
        if result is not None
        else f"its renewal charge {sale.id if sale else ''} did not go through"
    )
    with ctx.store.session() as s:
        current = s.get_subscription(sub.id, lock=True)
        if current is None or current.start != sub.start:
            return None
        move = next_state(current.state, StateEvent.RENEWAL_UNPAID)
        if not move.allowed:
            return None
        stored = attrs.evolve(current, state=move.state)
        s.put_subscription(stored)
        ctx.audit(
            s,
            action="subscription.past_due",
            subject_id=sub.id,
            actor=actor,
            detail={
                "charge": sale.id if sale else None,
                "reason": result.reason if result else None,
                "key": key,
                "term_start": term_start,
                "attempt": 1,
            },
        )
    text = f"Subscription {sub.id} {what}: {why}".replace("{term_end}", sub.term_end.isoformat())
    ctx.emit(SubscriptionPastDue(at=ctx.now(), subscription=stored, explanation=text, charge=sale))
    return RenewalResult(
        subscription_id=sub.id,
        renewed=False,
        charge=result,
        reason=(result.reason if result and result.reason else "renewal_unpaid"),
        explanation=text,
        outcome=RenewalOutcome.PAST_DUE,
        attempt=1,
    )
