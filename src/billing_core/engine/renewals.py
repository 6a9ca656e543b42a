"""``renew_due``: the renewals job (``BillingEngine.renew_due``).

Every ``active`` subscription whose term has ended on its customer's local date is renewed and
charged its next term (``rules.renewal``), under the key ``renewal:<id>:<new start>`` and the
claim of ``engine.renewal_claims`` (two runs never both charge a term; a run that died after
the charge is finished on its sale); one that does not auto-renew expires. A declined renewal
never renews for free: the subscription goes ``past_due`` (``engine.past_due``) and is chased
from then on (``engine.renewal_dunning``); a trial whose end has come is charged its first term
(``engine.trials``). A blocklisted customer's subscriptions are not renewed (a denial).
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from ..errors import NotFoundError
from ..model import InvoiceLineKind, SubscriptionState
from ..periods import Period
from ..plugins.events import SubscriptionRenewed
from ..rules import renewal
from ..rules.dunning import DunningPolicy
from ..timeutil import local_date, timezone
from . import past_due, receipts, renewal_dunning, trials
from .charging import charge
from .collect import DEFAULT_DELINQUENCY_PERIOD
from .context import EngineContext
from .guards import blocklisted
from .renewal_claims import TermTaken, claim_term, renewed_copy
from .results import RenewalResult

__all__ = ["renew_due"]


def renew_due(
    ctx: EngineContext,
    *,
    actor: str,
    policy: DunningPolicy | None = None,
    delinquency_period: Period | timedelta | None = DEFAULT_DELINQUENCY_PERIOD,
) -> list[RenewalResult]:
    """Renew (and charge) every active subscription whose term has ended; expire the others.
    A trial whose end has come is charged its first term (``engine.trials``); a renewal left
    unpaid (``past_due``) is tried again on the dunning schedule ``policy`` (default
    ``DunningPolicy()``) and cancelled ``delinquency_period`` after its term end
    (``engine.renewal_dunning``)."""
    policy = DunningPolicy() if policy is None else policy
    with ctx.store.session() as s:
        subs = s.list_subscriptions(
            states=[
                SubscriptionState.ACTIVE,
                SubscriptionState.TRIALING,
                SubscriptionState.PAST_DUE,
            ]
        )
    results = []
    for sub in subs:
        with ctx.store.session() as s:
            customer = s.get_customer(sub.customer_id)
        if customer is None:
            raise NotFoundError(
                f"no customer {sub.customer_id!r}", field="customer_id", value=sub.customer_id
            )
        today = local_date(ctx.now(), timezone(customer.timezone))
        if sub.state is not SubscriptionState.ACTIVE:
            turn = (
                trials.convert if sub.state is SubscriptionState.TRIALING else renewal_dunning.chase
            )
            chased = turn(
                ctx,
                sub,
                customer,
                today=today,
                policy=policy,
                delinquency_period=delinquency_period,
                actor=actor,
            )
            if chased is not None:
                results.append(chased)
            continue
        verdict = renewal.renew(sub, today=today)
        if verdict.renewed and customer.blocklisted:  # the guard path (engine.guards)
            denial = blocklisted(customer, "renew_due")
            results.append(
                RenewalResult(
                    subscription_id=sub.id,
                    renewed=False,
                    reason=str(denial.reason),
                    explanation=denial.explanation,
                )
            )
            continue
        if not verdict.renewed:
            if verdict.subscription.state is not sub.state:
                with ctx.store.session() as s:
                    s.put_subscription(verdict.subscription)
                    ctx.audit(s, action="subscription.expired", subject_id=sub.id, actor=actor)
                results.append(
                    RenewalResult(
                        subscription_id=sub.id, renewed=False, explanation=verdict.explanation
                    )
                )
            continue
        total = verdict.total
        result, sale = (None, None)
        if total is not None:
            new = verdict.subscription
            lines = renewal_dunning.lines_of(new.inventory, new.unit_prices)
            term_key = renewal_dunning.renewal_key(sub.id, verdict.subscription.start)
            try:
                result, sale = charge(
                    ctx,
                    amount=total,
                    key=term_key,
                    actor=actor,
                    customer_id=sub.customer_id,
                    subscription_id=sub.id,
                    lines=lines,
                    description=verdict.explanation,
                    claim=partial(claim_term, ctx, sub=sub, sale_key=f"{term_key}:sale"),
                )
            except TermTaken as taken:  # another caller renews this term (renewal_claims)
                if taken.sale is None:
                    continue
                sale = taken.sale  # its renewal died after the charge: finish it on that sale
            if past_due.unpaid(result, sale):  # never renewed for free (engine.past_due)
                unpaid = past_due.mark_past_due(
                    ctx,
                    sub,
                    result=result,
                    sale=sale,
                    actor=actor,
                    key=term_key,
                    term_start=verdict.subscription.start.isoformat(),
                )
                if unpaid is not None:  # chased from now on (engine.renewal_dunning)
                    results.append(
                        renewal_dunning.first_failure(
                            ctx,
                            sub,
                            unpaid,
                            today=today,
                            policy=policy,
                            delinquency_period=delinquency_period,
                            base=term_key,
                            actor=actor,
                        )
                    )
                continue
        with ctx.store.session() as s:
            stored = renewed_copy(s, sub, verdict.subscription)
            if stored is None:  # another caller renewed this term meanwhile
                continue
            s.put_subscription(stored)
            receipts.record_receipt(
                ctx, s, sale, on=today, kind=InvoiceLineKind.RENEWAL, actor=actor
            )
            ctx.audit(
                s,
                action="subscription.renewed",
                subject_id=sub.id,
                actor=actor,
                detail={"start": verdict.subscription.start.isoformat()},
            )
        ctx.emit(SubscriptionRenewed(at=ctx.now(), subscription=stored, charge=sale))
        results.append(
            RenewalResult(
                subscription_id=sub.id,
                renewed=True,
                charge=result,
                term_start=verdict.subscription.start,
                term_end=verdict.subscription.term_end,
                explanation=verdict.explanation,
            )
        )
    return results
