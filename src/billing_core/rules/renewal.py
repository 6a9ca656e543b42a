"""Renewal: the next term of a subscription and what it costs, or its expiry (SPEC 3.2, 3.3).

* An **auto-renewing**, active subscription renews at its term end: the next term starts on the
  old term end and runs one ``term``. Its charge is the *renewal inventory* at the unit prices:
  one ``RENEWAL`` line per certificate type, quantity × unit price, rounded once per line. The
  renewal inventory becomes the running inventory of the new term.
* A **non-renewing** subscription becomes ``EXPIRED`` at its term end, with nothing to bill.
* Suspended, cancelled and expired subscriptions are left as they are.

Term boundaries follow the recurrence's anchor, never a chain of clamped dates: a monthly
subscription first started on Jan 31 renews Feb 29, Mar 31, Apr 30, ... Pass the original start
as ``anchor=`` when the subscription's ``start`` is a later term's start (it defaults to
``start``). Everything is a pure function of the subscription and ``today``.

The subscription's plan (``Subscription.plan``; seed-000 rows have none and renew in advance
until cancelled) decides the rest, so renewals agree with ``rules.timeline.bills``:

* ``in_advance`` (the default): the renewal bills the *next* term, as above;
* ``in_arrears``: the renewal bills the term that just *ended*, at the running inventory (one
  ``SUBSCRIPTION`` line per type; a first term that was a stub of an anchored period is prorated
  against its whole period, like the timeline's stub), and the renewal inventory runs next;
* ``occurrences=N``: after N terms counted from the anchor the subscription expires instead of
  renewing (an in-arrears one still bills its last term); a ``trial_only`` plan never renews.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import attrs

from ..errors import InvalidTypeError, InvalidValueError
from ..model import InvoiceLine, InvoiceLineKind, Subscription, SubscriptionState
from ..money import Money
from ..periods import ServicePeriod
from ..plans import BillingTiming
from ..timeutil import require_date
from .proration import prorate

__all__ = ["Renewal", "next_term", "renew", "renewal_lines"]


@attrs.frozen(kw_only=True)
class Renewal:
    """The answer of :func:`renew`.

    ``renewed`` says whether a new term began; ``subscription`` is the subscription as of
    ``today`` (renewed, expired or unchanged); ``lines`` are the ``RENEWAL`` lines to bill.
    """

    renewed: bool
    subscription: Subscription
    term: ServicePeriod | None = None
    lines: tuple[InvoiceLine, ...] = ()
    explanation: str = ""

    @property
    def total(self) -> Money | None:
        """The sum of the lines (``None`` when there is nothing to bill)."""
        return _total(self.lines) if self.lines else None


def _check_subscription(subscription: object) -> Subscription:
    if not isinstance(subscription, Subscription):
        raise InvalidTypeError(
            f"must be a Subscription, not {type(subscription).__name__}",
            field="subscription",
            value=subscription,
        )
    return subscription


def next_term(subscription: Subscription, *, anchor: date | None = None) -> ServicePeriod:
    """The term after the current one: from ``subscription.term_end``, one ``term`` long.

    Boundaries are the recurrence's from ``anchor`` (default: ``start``): the current term ends
    on the first boundary after ``start`` and the next term runs to the boundary after that, so
    month ends do not drift. ``index`` counts terms from the anchor (the first term is 0).
    """
    _check_subscription(subscription)
    if anchor is None:
        anchor = subscription.anchor or subscription.start
    else:
        anchor = require_date(anchor, "anchor")
    if anchor > subscription.start:
        raise InvalidValueError(
            f"must not be after the subscription's start {subscription.start.isoformat()}",
            field="anchor",
            value=anchor,
        )
    term = subscription.term
    times = 1
    while term.after(anchor, times=times) <= subscription.start:
        times += 1
    # the current term ends on boundary ``times``; the next one runs to boundary ``times + 1``
    return ServicePeriod(
        times, term.after(anchor, times=times), term.after(anchor, times=times + 1)
    )


def _in_arrears(subscription: Subscription) -> bool:
    plan = subscription.plan
    return plan is not None and plan.timing is BillingTiming.IN_ARREARS


def renewal_lines(
    subscription: Subscription, *, term: ServicePeriod | None = None
) -> tuple[InvoiceLine, ...]:
    """The lines a renewal bills, one per certificate type (zero quantities skipped).

    In advance (the default): one ``RENEWAL`` line per type of the renewal inventory for the next
    term, quantity × the plan's price per unit, rounded once; ``term`` (default:
    :func:`next_term`) fills in the lines' service period. In arrears: one ``SUBSCRIPTION``
    line per type of the running inventory for the term that ends at the renewal.
    """
    _check_subscription(subscription)
    period = next_term(subscription) if term is None else term
    arrears = _in_arrears(subscription)
    inventory = subscription.inventory if arrears else subscription.renewal_inventory
    plans = subscription.plans
    lines = []
    for certificate_type, quantity in sorted(inventory.items()):
        if not quantity:
            continue
        plan = plans.get(certificate_type)
        if plan is None:
            raise InvalidValueError(
                "has no unit price for a certificate type of the "
                f"{'running' if arrears else 'renewal'} inventory",
                field=f"unit_prices.{certificate_type}",
            )
        unit_price = plan.price
        if arrears:
            lines.append(_ended_term_line(subscription, certificate_type, quantity, unit_price))
            continue
        exact = unit_price * quantity
        amount = exact.rounded()
        lines.append(
            InvoiceLine(
                description=(
                    f"Renewal {period.start.isoformat()} to {period.end.isoformat()}: "
                    f"{quantity} × {certificate_type} at {unit_price} = {amount}"
                ),
                amount=amount,
                kind=InvoiceLineKind.RENEWAL,
                quantity=Decimal(quantity),
                unit_price=unit_price,
                exact_amount=None if exact == amount else exact,
                period_start=period.start,
                period_end=period.end,
                subscription_id=subscription.id,
            )
        )
    return tuple(lines)


def _ended_term_line(
    subscription: Subscription, certificate_type: str, quantity: int, unit_price: Money
) -> InvoiceLine:
    """The in-arrears charge of the term ending now: the whole term, or a stub's share of it."""
    start, end = subscription.start, subscription.term_end
    part = prorate(
        unit_price,
        period_start=subscription.period_start,
        period_end=end,
        start=start,
        quantity=quantity,
    )
    return InvoiceLine(
        description=(
            f"Term {start.isoformat()} to {end.isoformat()}, in arrears: {quantity} × "
            f"{certificate_type}: {part.explanation}"
        ),
        amount=part.amount,
        kind=InvoiceLineKind.SUBSCRIPTION,
        quantity=Decimal(quantity),
        unit_price=unit_price,
        period_start=start,
        period_end=end,
        subscription_id=subscription.id,
    )


def renew(subscription: Subscription, *, today: date, anchor: date | None = None) -> Renewal:
    """What ``subscription`` becomes on ``today``: renewed for one term, expired, or unchanged.

    Before the term end nothing happens. On or after it, an active auto-renewing subscription
    moves to the next term (one term per call: call again to catch up several) with its renewal
    inventory as the new inventory and the ``RENEWAL`` lines to bill; an active non-renewing one
    becomes ``EXPIRED``. Other states are left alone.
    """
    _check_subscription(subscription)
    require_date(today, "today")
    period = next_term(subscription, anchor=anchor)
    term_end = period.start
    if today < term_end:
        days = (term_end - today).days
        action = "renews" if subscription.auto_renew else "expires"
        return Renewal(
            renewed=False,
            subscription=subscription,
            explanation=(
                f"The term runs until {term_end.isoformat()} ({days} "
                f"day{'' if days == 1 else 's'} from {today.isoformat()}); it {action} then."
            ),
        )
    if subscription.state is not SubscriptionState.ACTIVE:
        return Renewal(
            renewed=False,
            subscription=subscription,
            explanation=(
                f"The subscription is {subscription.state.value}: it neither renews nor "
                f"expires at its term end {term_end.isoformat()}."
            ),
        )
    ending = _last_term(subscription, period)
    if not subscription.auto_renew or ending:
        final = renewal_lines(subscription, term=period) if _in_arrears(subscription) else ()
        why = ending or "Auto-renewal is off"
        billed = f"the ended term is billed {_total(final)}" if final else "nothing is billed"
        return Renewal(
            renewed=False,
            subscription=attrs.evolve(subscription, state=SubscriptionState.EXPIRED),
            lines=final,
            explanation=(
                f"{why}: the subscription expired at its term end {term_end.isoformat()}; {billed}."
            ),
        )
    lines = renewal_lines(subscription, term=period)
    renewed = attrs.evolve(
        subscription,
        start=period.start,
        anchor=anchor if anchor is not None else (subscription.anchor or subscription.start),
        inventory=dict(subscription.renewal_inventory),
    )
    if lines and _in_arrears(subscription):
        billed = f"billed {_total(lines)} in arrears for the term that ended"
    elif lines:
        items = sorted((t, q) for t, q in subscription.renewal_inventory.items() if q)
        billed = f"billed {_total(lines)} for " + ", ".join(f"{q} × {t}" for t, q in items)
    else:
        billed = "with an empty renewal inventory, nothing is billed"
    return Renewal(
        renewed=True,
        subscription=renewed,
        term=period,
        lines=lines,
        explanation=(
            f"Renewed for {subscription.term.describe()}: {period.start.isoformat()} to "
            f"{period.end.isoformat()}, {billed}."
        ),
    )


def _total(lines: tuple[InvoiceLine, ...]) -> Money:
    return sum((line.amount for line in lines[1:]), lines[0].amount)


def _last_term(subscription: Subscription, period: ServicePeriod) -> str:
    """Why the term ending now is the plan's last (``""`` when it renews)."""
    plan = subscription.plan
    if plan is None:
        return ""
    if plan.trial_only:
        return "The plan is trial-only"
    if plan.occurrences is not None and period.index >= plan.occurrences:
        return f"The plan's {plan.occurrences} term(s) are all billed"
    return ""
