"""Pending orders abandoned at ``abandon_on`` (``rules.collection.assess_pending``): cancelled,
audited (``subscription.abandoned``) and emitted (``SubscriptionAbandoned``)."""

from __future__ import annotations

from datetime import datetime

import attrs

from ..model import SubscriptionState
from ..periods import Period
from ..plugins.events import SubscriptionAbandoned
from ..rules import collection
from ..rules.subscription_states import StateEvent, next_state
from ..timeutil import local_date, timezone
from .activation import ActivationTaken, claim_pending
from .collection_results import AbandonResult
from .context import EngineContext

__all__ = ["abandon"]


def abandon(
    ctx: EngineContext, now: datetime, abandon_after: Period, *, actor: str
) -> AbandonResult:
    """Cancel every pending subscription whose ``abandon_on`` (its start + ``abandon_after``)
    has come on its customer's local date at ``now``; each in its own session, re-read locked.
    An order with an activation charge that may have taken money (unknown, pending, completed)
    is left alone: reconciliation decides it first."""
    with ctx.store.session() as s:
        pending = s.list_subscriptions(states=[SubscriptionState.PENDING])
    ids: list[str] = []
    texts: list[str] = []
    for sub in pending:
        with ctx.store.session() as s:
            current = s.get_subscription(sub.id, lock=True)
            customer = s.get_customer(sub.customer_id)
            if current is None or current.state is not SubscriptionState.PENDING:
                continue
            try:  # an activation whose charge may have taken the money: reconcile it first
                claim_pending(s, current)
            except ActivationTaken:
                continue
            tz = timezone(customer.timezone) if customer else timezone("UTC")
            verdict = collection.assess_pending(
                created_on=current.start, abandon_after=abandon_after, today=local_date(now, tz)
            )
            if not verdict.abandoned:
                continue
            move = next_state(current.state, StateEvent.ABANDON)
            stored = attrs.evolve(current, state=move.state, auto_renew=False)
            s.put_subscription(stored)
            ctx.audit(
                s,
                action="subscription.abandoned",
                subject_id=sub.id,
                actor=actor,
                detail={"abandon_on": verdict.abandon_on.isoformat()},
            )
        ids.append(sub.id)
        texts.append(f"Subscription {sub.id}: {verdict.explanation}")
        ctx.emit(SubscriptionAbandoned(at=ctx.now(), subscription=stored, explanation=texts[-1]))
    return AbandonResult(abandoned=tuple(ids), explanations=tuple(texts))
