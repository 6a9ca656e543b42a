"""Trials: a subscription stored ``trialing``, charged nothing until its trial ends.

``add_subscription(..., trial=Period.days(14))`` stores the subscription ``trialing`` and
charges nothing (audited ``subscription.trialing``; ``SubscriptionAdded`` with ``charge=None``).
The trial runs from the start (today, or a later ``start``) for ``trial``; the subscription is
stored with **``start`` = the trial's end**, the first paid term's start, so ``term_end`` is the
first paid term's end and every later term follows from it as usual (the anchor is the trial
end). Bad input (raises ``InvalidValueError`` naming the field): a trial with ``pending=True``
(``pending``), with a ``start`` before today (``start``: a trial is never backdated), with
``domains`` (``domains``: certificates are ordered for paid terms only; add them after the
trial with ``add_inventory``), or with a certificate type of the inventory that has no unit
price.

``renew_due`` converts a trial whose end has come (``today >= start``, the customer's local
date): its first term is charged at full price, keyed ``trial:<id>:<start>``, the sale written
ahead in the session that claims the term (``renewal_claims.claim_term``), so two runs never
both charge it. Paid: ``trial_paid`` (trialing -> active), audited ``subscription.trial_paid``,
``SubscriptionRenewed`` emitted with the sale. Not paid (declined, blocked, no usable
instrument): ``renewal_unpaid`` (trialing -> past_due) through ``engine.past_due``, and
``engine.renewal_dunning`` chases it from there like an unpaid renewal (due on the trial end).
A trial cancelled before its end (``cancel``) is charged nothing.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import partial

import attrs

from ..errors import InvalidTypeError, InvalidValueError
from ..model import Customer, Subscription, SubscriptionState, TransactionStatus
from ..periods import Period
from ..plugins.events import SubscriptionAdded, SubscriptionRenewed
from ..rules.dunning import DunningPolicy
from ..rules.subscription_states import StateEvent, next_state
from . import past_due, receipts, renewal_dunning
from .charging import charge
from .context import EngineContext
from .guards import blocklisted
from .renewal_claims import TermTaken, claim_term
from .results import ChargeOutcome, RenewalResult, SubscriptionResult

__all__ = ["check_trial", "convert", "store_trial"]


def check_trial(trial: object, *, pending: bool, domains: object) -> Period | None:
    """``add_subscription``'s ``trial`` (a ``Period`` or None), or the ``BillingError`` naming
    the field: a trial is not a pending order, and names no domains."""
    if trial is None:
        return None
    if not isinstance(trial, Period):
        raise InvalidTypeError(
            f"must be a Period or None, not {type(trial).__name__}", field="trial", value=trial
        )
    if pending:
        raise InvalidValueError(
            "a pending order has no trial (a trial starts when it is added)",
            field="pending",
            value=pending,
        )
    if domains:
        raise InvalidValueError(
            "a trial names no domains (certificates are ordered for paid terms: add them "
            "after the trial)",
            field="domains",
            value=list(domains),  # type: ignore[call-overload]
        )
    return trial


def store_trial(
    ctx: EngineContext, draft: Subscription, trial: Period, *, today: date, actor: str
) -> SubscriptionResult:
    """Store ``draft`` (``start``: the trial's first day) trialing for ``trial``: nothing charged."""
    if draft.start < today:
        raise InvalidValueError(
            f"a trial starts today or later, not on {draft.start.isoformat()} (before today, "
            f"{today.isoformat()}): a trial is never backdated",
            field="start",
            value=draft.start,
        )
    for certificate_type, quantity in sorted(draft.inventory.items()):
        if quantity > 0 and certificate_type not in draft.unit_prices:
            raise InvalidValueError(
                "has no unit price for a certificate type of the inventory",
                field=f"unit_prices.{certificate_type}",
            )
    trial_end = trial.after(draft.start)
    stored = attrs.evolve(draft, start=trial_end, anchor=None, state=SubscriptionState.TRIALING)
    lines = renewal_dunning.lines_of(stored.inventory, stored.unit_prices)
    total = sum((line.total for line in lines[1:]), lines[0].total) if lines else None
    with ctx.store.session() as s:
        s.put_subscription(stored)
        ctx.audit(
            s,
            action="subscription.trialing",
            subject_id=stored.id,
            actor=actor,
            detail={
                "trial": trial.describe(),
                "trial_start": draft.start.isoformat(),
                "trial_end": trial_end.isoformat(),
            },
        )
    ctx.emit(SubscriptionAdded(at=ctx.now(), subscription=stored, charge=None))
    first = f"{total}" if total is not None else "nothing (an empty inventory)"
    return SubscriptionResult(
        outcome=ChargeOutcome.TRIALING,
        subscription_id=stored.id,
        term_start=trial_end,
        term_end=stored.term_end,
        trial_end=trial_end,
        explanation=f"Subscription {stored.id} is trialing for {trial.describe()}, from "
        f"{draft.start.isoformat()} to {trial_end.isoformat()}: nothing is charged now. Its "
        f"first term, {trial_end.isoformat()} to {stored.term_end.isoformat()}, is charged "
        f"{first} when the trial ends.",
    )


def convert(
    ctx: EngineContext,
    sub: Subscription,
    customer: Customer,
    *,
    today: date,
    policy: DunningPolicy,
    delinquency_period: Period | timedelta | None,
    actor: str,
) -> RenewalResult | None:
    """``renew_due``'s turn for the trialing ``sub``: None while the trial runs."""
    if today < sub.start:
        return None
    key = renewal_dunning.trial_key(sub.id, sub.start)
    if customer.blocklisted:  # the guard path, as for a renewal
        denial = blocklisted(customer, "renew_due")
        return RenewalResult(
            subscription_id=sub.id,
            renewed=False,
            reason=str(denial.reason),
            explanation=denial.explanation,
        )
    lines = renewal_dunning.lines_of(sub.inventory, sub.unit_prices)
    result, sale = None, None
    if lines:
        total = sum((line.total for line in lines[1:]), lines[0].total)
        try:
            result, sale = charge(
                ctx,
                amount=total,
                key=key,
                actor=actor,
                customer_id=sub.customer_id,
                subscription_id=sub.id,
                lines=lines,
                description=f"{sub.term.describe()} subscription from {sub.start.isoformat()}, "
                "after its trial",
                claim=partial(claim_term, ctx, sub=sub, sale_key=f"{key}:sale"),
            )
        except TermTaken as taken:  # another run converts it, or died after charging it
            if taken.sale is None:
                return None
            sale = taken.sale
        if past_due.unpaid(result, sale):
            unpaid = past_due.mark_past_due(
                ctx,
                sub,
                result=result,
                sale=sale,
                actor=actor,
                key=key,
                term_start=sub.start.isoformat(),
                what=f"is past due: its first term after its trial, {sub.start.isoformat()} "
                "to {term_end}, was not paid",
            )
            if unpaid is None:
                return None
            return renewal_dunning.first_failure(
                ctx,
                sub,
                unpaid,
                today=today,
                policy=policy,
                delinquency_period=delinquency_period,
                base=key,
                actor=actor,
            )
        if result is not None and result.outcome is not ChargeOutcome.CHARGED:
            return None  # in doubt: reconcile() settles its sale first
        if result is None and sale is not None and sale.status is not TransactionStatus.COMPLETED:
            return None
    with ctx.store.session() as s:
        current = s.get_subscription(sub.id, lock=True)
        if current is None or current.start != sub.start:
            return None
        move = next_state(current.state, StateEvent.TRIAL_PAID)
        if not move.allowed:  # cancelled during the charge: the paid term is still its own
            stored = current
        else:
            stored = attrs.evolve(current, state=move.state)
            s.put_subscription(stored)
        receipts.record_receipt(ctx, s, sale, on=today, actor=actor)
        ctx.audit(
            s,
            action="subscription.trial_paid",
            subject_id=sub.id,
            actor=actor,
            detail={"start": sub.start.isoformat(), "charge": sale.id if sale else None},
        )
    ctx.emit(SubscriptionRenewed(at=ctx.now(), subscription=stored, charge=sale))
    paid = f"charged {sale.amount}" if sale is not None else "nothing to charge"
    now = "is active" if stored.state is SubscriptionState.ACTIVE else f"stays {stored.state.value}"
    return RenewalResult(
        subscription_id=sub.id,
        renewed=True,
        charge=result,
        attempt=1,
        term_start=stored.start,
        term_end=stored.term_end,
        explanation=f"The trial of subscription {sub.id} ended on {sub.start.isoformat()}: its "
        f"first term, {sub.start.isoformat()} to {sub.term_end.isoformat()}, is {paid} and it "
        f"{now}.",
    )
