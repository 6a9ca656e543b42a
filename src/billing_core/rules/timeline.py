"""The billing timeline: what a plan bills, and when (SPEC 6.1).

``bills(plan, start=, until=)`` returns every bill of an order from ``start`` whose billing date
is on or before ``until``, ordered by date. A bill holds the lines billed that day:

* the **setup fee** (``setup_fee`` line, not per unit, never prorated), billed on ``start``;
* the **trial** (``trial`` line for the trial's total price, ``0.00`` when free: the line and its
  bill are still there), service ``[start, start + trial.length)``, billed on ``start``;
* the **recurring** lines (kind ``subscription``), from ``r0``, the trial's end (or ``start``).
  The period boundaries are ``anchor ± k × period``, each computed from the anchor (an anchor of
  Jan 31 gives Feb 29, Mar 31, Apr 30: no month-end drift), or ``r0 + k × period`` when
  ``anchor`` is None. When ``r0`` is not a boundary the first line is a stub ``[r0, b1)``,
  prorated with ``day_count`` against the whole period ``[b0, b1)`` of the same anchored sequence
  (anchor Jan 30, ``b1`` Feb 29: ``b0`` is Jan 30, 30 days) and rounded once, with
  ``proration.prorate``. Every later line is a whole period for ``price × quantity``.
  ``IN_ADVANCE`` bills a line on its period's start, ``IN_ARREARS`` on its end.
* ``occurrences=N`` makes N recurring lines in all (a stub included); ``trial_only`` none.

Each bill's ``issue_on`` is ``billed_on + issue_shift`` (may be negative: an invoice prepared
ahead) and ``due_on`` is ``issue_on + due_shift``. Every line and bill explains itself with the
figures: ``"12 of 31 days (Feb 1 to Feb 13) of 100.00 USD = 38.71 USD"``.

Bad input raises a ``BillingError`` naming the field before anything is computed: a plan that
is not a ``Plan``, dates that are not plain dates, ``until`` before ``start``, a quantity that is
not a positive int, a shift that is not whole days. Bad plans cannot be built (``billing_core.plans``).

A ``Bill`` is an immutable record like ``proration.Proration``: its dates and total are computed
eagerly, its ``lines`` (``InvoiceLine`` values) and ``explanation`` when read, which keeps a year of
monthly bills for 100,000 subscriptions within a small factor of a bare loop (see
``benchmarks/timeline.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Final, NamedTuple

from ..errors import InvalidAmountError, InvalidTypeError, InvalidValueError
from ..model import InvoiceLine, InvoiceLineKind
from ..money import Money, _scaled_half_up
from ..periods import Period, add_months
from ..plans import BillingTiming, Plan, check_day_shift
from ..timeutil import require_date
from .proration import DayCount, Proration, _date_span, _day_count, prorate

__all__ = ["Bill", "bills", "lines_ended", "period_at", "recurring_start"]

_SUBSCRIPTION: Final = InvoiceLineKind.SUBSCRIPTION
_TRIAL: Final = InvoiceLineKind.TRIAL
_SETUP_FEE: Final = InvoiceLineKind.SETUP_FEE
_ACTUAL: Final = DayCount.ACTUAL
_NO_SHIFT: Final = timedelta(0)

# One line of a bill, kept compact until ``Bill.lines`` is read:
# (kind, amount, service start, service end, the stub's Proration or None).
Part = tuple[InvoiceLineKind, Money, date, date, Proration | None]


class Bill(NamedTuple):
    """The lines billed on one date: ``billed_on``, ``issue_on``, ``due_on`` (dates), ``total``
    (``Money``, the sum of the lines), ``lines`` (``InvoiceLine`` values, built when read) and
    ``explanation`` (a sentence with the figures, built when read)."""

    billed_on: date
    issue_on: date
    due_on: date
    total: Money
    plan: Plan
    quantity: int
    parts: tuple[Part, ...]

    @property
    def lines(self) -> tuple[InvoiceLine, ...]:
        """The bill's ``InvoiceLine`` values, in order: setup fee, trial, recurring."""
        return tuple(_line(self.plan, self.quantity, part) for part in self.parts)

    @property
    def explanation(self) -> str:
        """``"Billed 2026-02-01 (issued 2026-02-01, due 2026-02-15): ...; total 38.71 USD."``"""
        lines = "; ".join(line.description for line in self.lines)
        return (
            f"Billed {self.billed_on.isoformat()} (issued {self.issue_on.isoformat()}, due "
            f"{self.due_on.isoformat()}): {lines}; total {self.total}."
        )


def _line(plan: Plan, quantity: int, part: Part) -> InvoiceLine:
    kind, amount, start, end, stub = part
    span = _date_span(start, end, DayCount.ACTUAL)
    if kind is _SETUP_FEE:
        description = f"Setup fee: {amount}"
        return InvoiceLine(description=description, amount=amount, kind=kind)
    if kind is _TRIAL:
        assert plan.trial is not None
        what = "Free trial" if not amount.amount else "Trial"
        description = f"{what} ({plan.trial.length.describe()}, {span}): {amount}"
        return InvoiceLine(
            description=description, amount=amount, kind=kind, period_start=start, period_end=end
        )
    what = f"{quantity} × {plan.price}" if quantity != 1 else f"{plan.price}"
    if stub is not None:
        description = f"First period, prorated: {stub.explanation}"
    else:
        description = f"{plan.period.describe()} ({span}) of {what} = {amount}"
    return InvoiceLine(
        description=description,
        amount=amount,
        kind=kind,
        quantity=Decimal(quantity),
        unit_price=plan.price,
        period_start=start,
        period_end=end,
    )


# -- the anchored sequence -------------------------------------------------------------------------
def _boundary_of(anchor: date, period: Period) -> Callable[[int], date]:
    """``k ↦ anchor ± |k| × period``, each boundary computed from the anchor (``Period.after``'s
    arithmetic: ``add_months`` clamps the anchor's day of month, days and weeks add days)."""
    months = period.in_months
    if months is not None:
        day = anchor.day
        if day > 28:  # clamped to shorter months' ends
            return lambda k: add_months(anchor, months * k)
        base = anchor.year * 12 + anchor.month - 1

        def by_months(k: int) -> date:  # no month is shorter than 28 days: nothing to clamp
            year, month0 = divmod(base + months * k, 12)
            try:
                return date(year, month0 + 1, day)
            except ValueError:
                return add_months(anchor, months * k)  # outside the calendar: raises, naming it

        return by_months
    days = period.in_days or 0
    ordinal = anchor.toordinal()

    def by_days(k: int) -> date:
        try:
            return date.fromordinal(ordinal + days * k)
        except (ValueError, OverflowError):
            raise InvalidValueError(
                f"{period.describe()} × {k} from {anchor.isoformat()} is outside the calendar",
                field="until",
            ) from None

    return by_days


def _locate(
    anchor: date, period: Period, boundary: Callable[[int], date], day: date
) -> tuple[int, date, date]:
    """``(k, boundary(k), boundary(k + 1))`` with ``boundary(k) <= day < boundary(k + 1)``."""
    months = period.in_months
    if months is not None:
        k = ((day.year - anchor.year) * 12 + day.month - anchor.month) // months
    else:
        k = (day.toordinal() - anchor.toordinal()) // (period.in_days or 1)
    lo = boundary(k)
    while lo > day:
        k -= 1
        lo = boundary(k)
    hi = boundary(k + 1)
    while hi <= day:
        k += 1
        lo, hi = hi, boundary(k + 1)
    return k, lo, hi


def recurring_start(plan: Plan, start: date) -> date:
    """``r0``: where the recurring lines start, the trial's end (or ``start``)."""
    return start if plan.trial is None else plan.trial.length.after(start)


def period_at(
    plan: Plan, day: date, *, start: date, anchor: date | None = None
) -> tuple[date, date]:
    """The whole period ``[b0, b1)`` of the plan's anchored sequence that holds ``day`` (the
    sequence from ``anchor``, or from ``recurring_start(plan, start)`` when ``anchor`` is None)."""
    origin = recurring_start(plan, start) if anchor is None else anchor
    _k, b0, b1 = _locate(origin, plan.period, _boundary_of(origin, plan.period), day)
    return b0, b1


def lines_ended(plan: Plan, on: date, *, start: date, anchor: date | None = None) -> int:
    """How many recurring lines of the order from ``start`` end on or before ``on`` (at most
    ``occurrences``; none for a trial-only plan)."""
    r0 = recurring_start(plan, start)
    if plan.trial_only or on <= r0:
        return 0
    origin = r0 if anchor is None else anchor
    boundary = _boundary_of(origin, plan.period)
    first, _b0, _b1 = _locate(origin, plan.period, boundary, r0)
    last, _b0, _b1 = _locate(origin, plan.period, boundary, on)
    ended = last - first
    return ended if plan.occurrences is None else min(ended, plan.occurrences)


# -- the checks --------------------------------------------------------------------------------------
def _check(plan: object, start: object, until: object, anchor: object, quantity: object) -> None:
    if not isinstance(plan, Plan):
        raise InvalidTypeError(
            f"must be a Plan, not {type(plan).__name__}", field="plan", value=plan
        )
    require_date(start, "start")
    require_date(until, "until")
    if anchor is not None:
        require_date(anchor, "anchor")
    if until < start:  # type: ignore[operator]  # both dates, checked above
        raise InvalidValueError(
            f"must not be before the start {start.isoformat()}",  # type: ignore[attr-defined]
            field="until",
            value=until,
        )
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidTypeError(
            f"must be an int, not {type(quantity).__name__}", field="quantity", value=quantity
        )
    if quantity < 1:
        raise InvalidAmountError("must be positive", field="quantity", value=quantity)


# -- the timeline ------------------------------------------------------------------------------------
def bills(
    plan: Plan,
    *,
    start: date,
    until: date,
    anchor: date | None = None,
    quantity: int = 1,
    day_count: DayCount | str = DayCount.ACTUAL,
    issue_shift: timedelta | None = None,
    due_shift: timedelta | None = None,
) -> tuple[Bill, ...]:
    """Every bill of ``plan`` ordered from ``start`` whose billing date is on or before ``until``.

    >>> plan = Plan(price=Money("100.00", "USD"), period=Period.months(1))
    >>> first, second = bills(plan, start=date(2026, 2, 1), anchor=date(2026, 1, 13),
    ...                       until=date(2026, 2, 13))
    >>> first.total, first.lines[0].description
    (Money('38.71', 'USD'), 'First period, prorated: 12 of 31 days (Feb 1 to Feb 13) of 100.00 USD = 38.71 USD')
    """
    if not (  # the common case, checked at a glance; anything else is checked field by field
        type(plan) is Plan
        and type(start) is date
        and type(until) is date
        and start <= until
        and (anchor is None or type(anchor) is date)
        and type(quantity) is int
        and quantity > 0
    ):
        _check(plan, start, until, anchor, quantity)
    convention = day_count if day_count is _ACTUAL else _day_count(day_count)
    if issue_shift is None and due_shift is None:
        issue = due = _NO_SHIFT
    else:
        issue = check_day_shift(issue_shift, "issue_shift")
        due = check_day_shift(due_shift, "due_shift", negative=False)

    head: list[Part] = []
    if plan.setup_fee is not None:
        head.append((_SETUP_FEE, plan.setup_fee.rounded(), start, start, None))
    r0 = recurring_start(plan, start)
    if plan.trial is not None:
        head.append((_TRIAL, plan.trial.price.rounded(), start, r0, None))
    out: list[Bill] = []
    if not plan.trial_only:
        _recurring(out, plan, r0, until, anchor, quantity, convention, issue, due)
    if head:
        if out and out[0].billed_on == start:  # in advance without a trial: one bill on start
            head.extend(out.pop(0).parts)
        out.insert(0, _bill(start, tuple(head), plan, quantity, issue, due))
    return tuple(out)


def _recurring(
    out: list[Bill],
    plan: Plan,
    r0: date,
    until: date,
    anchor: date | None,
    quantity: int,
    day_count: DayCount,
    issue: timedelta,
    due: timedelta,
) -> None:
    """Append to ``out`` the bills of the recurring lines from ``r0`` billed by ``until``."""
    period = plan.period
    origin = r0 if anchor is None else anchor
    boundary = _boundary_of(origin, period)
    k, b0, b1 = _locate(origin, period, boundary, r0)
    limit = plan.occurrences
    in_advance = plan.timing is BillingTiming.IN_ADVANCE
    if (r0 if in_advance else b1) > until:
        return
    price = plan.price
    whole = _scaled_half_up(price.amount, price.currency, quantity, 1)  # rounded once
    if b0 == r0:
        first = _whole(whole, r0, b1)
    else:
        stub = prorate(
            price, period_start=b0, period_end=b1, start=r0, quantity=quantity, day_count=day_count
        )
        first = ((_SUBSCRIPTION, stub.amount, r0, b1, stub),)
    out.append(_bill(r0 if in_advance else b1, first, plan, quantity, issue, due))
    if limit == 1 or (in_advance and b1 > until):  # one line: no need for the sequence
        return
    append = out.append
    shifted = bool(issue or due)
    kind, new, bill = _SUBSCRIPTION, _new_bill, Bill  # locals: read a million times
    stop = limit or 0  # count never reaches 0: until cancelled
    count = 1
    start = b1
    for end in _ends(origin, period, boundary, k):
        on = start if in_advance else end
        if on > until or count == stop:
            break
        parts = ((kind, whole, start, end, None),)
        if shifted:
            append(_bill(on, parts, plan, quantity, issue, due))
        else:  # the common case, inlined: billed, issued and due the same day
            append(new(bill, (on, on, on, whole, plan, quantity, parts)))
        start = end
        count += 1


def _ends(origin: date, period: Period, boundary: Callable[[int], date], k: int) -> Iterator[date]:
    """``boundary(k + 2)``, ``boundary(k + 3)``, ...: the ends of the periods after the ``k``-th."""
    months = period.in_months
    if months is None or origin.day > 28:
        while True:
            k += 1
            yield boundary(k + 1)
    # months from an anchor on the 1st to the 28th never clamp: step the month index inline
    first = origin.year * 12 + origin.month - 1
    index = first + months * (k + 1)
    day = origin.day
    while True:
        index += months
        year, month0 = divmod(index, 12)
        yield date(year, month0 + 1, day) if year < 10_000 else add_months(origin, index - first)


def _whole(amount: Money, start: date, end: date) -> tuple[Part]:
    return ((_SUBSCRIPTION, amount, start, end, None),)


_new_bill: Final = tuple.__new__


def _bill(
    billed_on: date,
    parts: tuple[Part, ...],
    plan: Plan,
    quantity: int,
    issue: timedelta,
    due: timedelta,
) -> Bill:
    issue_on = billed_on + issue
    total = parts[0][1]
    for part in parts[1:]:
        total = total + part[1]
    return _new_bill(Bill, (billed_on, issue_on, issue_on + due, total, plan, quantity, parts))
