"""Backdating: how far back a subscription may start, and what a backdated start costs (SPEC 3.4).

A subscription's start may be moved back by at most its term minus one day:
``earliest start = today − term + 1 day``, where ``today − term`` is ``term.before(today)`` (month
ends clamp: one month before Mar 31 is Feb 28, so the earliest start is Mar 1).

A backdated start keeps the term length from the chosen start, so the term ends earlier, and the
customer pays only for what is left of it: ``price × days(today, term end) / days(start, term
end)``, computed exactly and rounded once, half-up. Starting 2026-05-21 on a one-year term,
seen on 2026-11-21, costs 181/365 of the price. A start today or later costs the full price. A
start before the earliest start is denied with reason ``backdate_limit_exceeded``, naming the
earliest allowed date.

``assess_start(start, plan=, today=)`` reads a ``Plan`` instead of ``term`` and ``price``: its
period is the term and its price per unit the price, so the term end and the charge agree with
the first recurring line ``rules.timeline.bills`` makes for that plan from ``start`` (a plan with
a trial starts its recurring term after the trial: backdate it with the timeline instead).

All dates are plain local calendar dates in the customer's timezone (the caller converts with
``billing_core.timeutil.local_date``). ``today`` is always passed in; nothing here reads a clock.
"""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

import attrs

from ..decisions import Decision, Reason
from ..errors import InvalidTypeError, InvalidValueError
from ..money import Money
from ..periods import Period
from ..plans import Plan
from ..timeutil import require_date
from .proration import prorate

__all__ = ["BackdateDecision", "BackdateReason", "assess_start", "earliest_start"]


class BackdateReason(Reason):
    """Why a start date was refused."""

    BACKDATE_LIMIT_EXCEEDED = "backdate_limit_exceeded"


@attrs.frozen(kw_only=True)
class BackdateDecision(Decision):
    """The answer of :func:`assess_start`.

    ``charge`` is the rounded price to pay for the term from ``start`` to ``term_end`` seen from
    ``today`` (``None`` when denied); ``fraction`` is the exact share of the price charged.
    """

    reason: BackdateReason | None = None
    start: date
    today: date
    term: Period
    earliest_start: date
    term_end: date
    charge: Money | None = None
    fraction: Fraction | None = None


def _check_term(term: object) -> Period:
    if not isinstance(term, Period):
        raise InvalidTypeError(
            f"must be a Period, not {type(term).__name__}", field="term", value=term
        )
    return term


def _from_plan(plan: object, term: object, price: object) -> tuple[Period, Money]:
    if not isinstance(plan, Plan):
        raise InvalidTypeError(
            f"must be a Plan or None, not {type(plan).__name__}", field="plan", value=plan
        )
    if term is not None or price is not None:
        raise InvalidValueError(
            "stands for term and price: pass the plan or them, not both", field="plan"
        )
    if plan.trial is not None:
        raise InvalidValueError(
            "must have no trial: the recurring term starts after it (use rules.timeline.bills)",
            field="plan.trial",
            value=plan.trial,
        )
    return plan.period, plan.price


def earliest_start(term: Period, today: date) -> date:
    """The earliest allowed start: ``term.before(today) + 1 day``.

    >>> earliest_start(Period.years(1), date(2026, 11, 21))
    datetime.date(2025, 11, 22)
    >>> earliest_start(Period.months(1), date(2026, 3, 31))
    datetime.date(2026, 3, 1)
    """
    _check_term(term)
    require_date(today, "today")
    return term.before(today) + timedelta(days=1)


def assess_start(
    start: date,
    *,
    term: Period | None = None,
    today: date,
    price: Money | None = None,
    plan: Plan | None = None,
) -> BackdateDecision:
    """May a subscription of ``term`` at ``price`` start on ``start``, and what does it cost?

    Allowed from :func:`earliest_start` on; a start before ``today`` pays the prorated price of
    what is left of its term, a start today or later the full price. ``price`` is the price of
    one whole term. ``plan`` stands for both (its period and price per unit).
    """
    require_date(start, "start")
    if plan is not None:
        term, price = _from_plan(plan, term, price)
    _check_term(term)
    assert isinstance(term, Period)
    require_date(today, "today")
    if not isinstance(price, Money):
        raise InvalidTypeError(
            f"must be Money, not {type(price).__name__}", field="price", value=price
        )
    earliest = earliest_start(term, today)
    term_end = term.after(start)
    if start < earliest:
        days_early = (earliest - start).days
        return BackdateDecision(
            allowed=False,
            reason=BackdateReason.BACKDATE_LIMIT_EXCEEDED,
            term_end=term_end,
            explanation=(
                f"A {term.describe()} subscription may start at most {term.describe()} minus "
                f"one day before today ({today.isoformat()}): the earliest allowed start is "
                f"{earliest.isoformat()}, and {start.isoformat()} is {days_early} "
                f"day{'' if days_early == 1 else 's'} earlier than that."
            ),
            start=start,
            today=today,
            term=term,
            earliest_start=earliest,
        )
    if start >= today:
        charge = price.rounded()
        when = "today" if start == today else "in the future"
        return BackdateDecision(
            allowed=True,
            term_end=term_end,
            charge=charge,
            fraction=Fraction(1),
            explanation=(
                f"Starts {start.isoformat()} ({when}): the full price of {charge} for the "
                f"{term.describe()} term {start.isoformat()} to {term_end.isoformat()}."
            ),
            start=start,
            today=today,
            term=term,
            earliest_start=earliest,
        )
    part = prorate(price, period_start=start, period_end=term_end, start=today)
    backdated = (today - start).days
    return BackdateDecision(
        allowed=True,
        term_end=term_end,
        charge=part.amount,
        fraction=part.fraction,
        explanation=(
            f"Backdated {backdated} day{'' if backdated == 1 else 's'} to "
            f"{start.isoformat()}: the {term.describe()} term runs {start.isoformat()} to "
            f"{term_end.isoformat()}, so {part.raw_part} of its {part.raw_whole} days "
            f"{'remains' if part.raw_part == 1 else 'remain'} "
            f"from today ({today.isoformat()}); the charge is {part.raw_part}/{part.raw_whole} "
            f"of {price} = {part.amount}."
        ),
        start=start,
        today=today,
        term=term,
        earliest_start=earliest,
    )
