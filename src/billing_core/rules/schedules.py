"""Schedules: an order of a plan over time, and how it continues after a change.

A :class:`Schedule` is an order of ``plan`` from ``start`` with its ``anchor``, ``quantity``,
issue and due shifts, and ``ended_on`` once it ended early. ``schedule.bills(until=)`` is its
timeline: ``rules.timeline.bills`` of the plan, less the recurring lines that would start on or
after ``ended_on``. The trial actions (``rules.trials``) change an order by *continuing* it: the
bills dated before the change are history, and the rest of the order is a new schedule from the
change (:func:`continue_from`), with what the old one already billed or used settled
(:func:`settle`):

* a period billed in advance, before today, has its unused part ``[today, end)`` credited
  (a negative ``credit`` line);
* a period billed in arrears has its used part ``[start, today)`` charged now (a ``proration``
  line);

each measured against the whole anchored period with ``proration.prorate`` and rounded once.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import attrs

from ..errors import InvalidAmountError, InvalidTypeError
from ..model import InvoiceLine, InvoiceLineKind
from ..plans import BillingTiming, Plan, check_day_shift
from ..timeutil import require_date
from .proration import DayCount, prorate
from .timeline import Bill, bills, lines_ended, period_at, recurring_start

__all__ = ["Schedule", "billed_from", "continue_from", "settle"]

_RECURRING = InvoiceLineKind.SUBSCRIPTION


def _plan(_inst: object, _a: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Plan):
        raise InvalidTypeError(
            f"must be a Plan, not {type(value).__name__}", field="plan", value=value
        )


def _date(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        require_date(value, attribute.name)


def _required_date(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    require_date(value, attribute.name)


def _shift(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_day_shift(value, attribute.name, negative=attribute.name != "due_shift")


def _quantity(_inst: object, _a: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(
            f"must be an int, not {type(value).__name__}", field="quantity", value=value
        )
    if value < 1:
        raise InvalidAmountError("must be positive", field="quantity", value=value)


@attrs.frozen(kw_only=True)
class Schedule:
    """An order of ``plan`` from ``start``: what the trial actions act on."""

    plan: Plan = attrs.field(validator=_plan)
    start: date = attrs.field(validator=_required_date)
    anchor: date | None = attrs.field(default=None, validator=_date)
    quantity: int = attrs.field(default=1, validator=_quantity)
    issue_shift: timedelta | None = attrs.field(default=None, validator=_shift)
    due_shift: timedelta | None = attrs.field(default=None, validator=_shift)
    ended_on: date | None = attrs.field(default=None, validator=_date)

    @property
    def recurring_start(self) -> date:
        """Where the recurring lines start: the trial's end, or ``start``."""
        return recurring_start(self.plan, self.start)

    @property
    def origin(self) -> date:
        """The anchor of the period boundaries: ``anchor``, or ``recurring_start``."""
        return self.recurring_start if self.anchor is None else self.anchor

    @property
    def ends_on(self) -> date | None:
        """The day the order ends: when stopped, at a trial-only trial's end, or at the end of
        its last occurrence; ``None`` while it runs until cancelled."""
        if self.ended_on is not None:
            return self.ended_on
        if self.plan.trial_only:
            return self.recurring_start
        if self.plan.occurrences is None:
            return None
        # the last occurrence is billed by one period after r0 + N periods, whatever the timing
        until = self.plan.period.after(self.recurring_start, times=self.plan.occurrences + 1)
        return self.bills(until=until)[-1].parts[-1][3]

    def in_trial(self, today: date) -> bool:
        """The plan has a trial and ``today`` is before its end."""
        return self.plan.trial is not None and today < self.recurring_start

    def bills(
        self, *, until: date, day_count: DayCount | str = DayCount.ACTUAL
    ) -> tuple[Bill, ...]:
        """The order's timeline through ``until``: ``timeline.bills`` of its plan, less the
        recurring lines that would start on or after ``ended_on``."""
        require_date(until, "until")
        if until < self.start:  # a continuation that starts later: nothing billed yet
            return ()
        timeline = bills(
            self.plan,
            start=self.start,
            until=until,
            anchor=self.anchor,
            quantity=self.quantity,
            day_count=day_count,
            issue_shift=self.issue_shift,
            due_shift=self.due_shift,
        )
        if self.ended_on is None:
            return timeline
        return tuple(_cut(timeline, self.ended_on))


def _cut(timeline: tuple[Bill, ...], ended_on: date) -> list[Bill]:
    out = []
    for bill in timeline:
        parts = tuple(p for p in bill.parts if p[0] is not _RECURRING or p[2] < ended_on)
        if parts == bill.parts:
            out.append(bill)
        elif parts:
            total = sum((p[1] for p in parts[1:]), parts[0][1])
            out.append(bill._replace(parts=parts, total=total))
    return out


def billed_from(schedule: Schedule, today: date) -> Plan:
    """The plan of a continuation from ``today``: without the setup fee once it was billed."""
    if schedule.plan.setup_fee is not None and schedule.start < today:
        return attrs.evolve(schedule.plan, setup_fee=None)
    return schedule.plan


def continue_from(
    schedule: Schedule, start: date, *, plan: Plan, anchor: date | None = None
) -> Schedule:
    """The order from ``start`` on, with the occurrences that ``schedule`` has not used."""
    occurrences = plan.occurrences
    ended_on = None
    if occurrences is not None:
        used = lines_ended(schedule.plan, start, start=schedule.start, anchor=schedule.anchor)
        occurrences = max(occurrences - used, 1)
        if used >= plan.occurrences:  # type: ignore[operator]  # not None here
            ended_on = start  # every occurrence used: nothing recurring follows
    return attrs.evolve(
        schedule,
        plan=attrs.evolve(plan, occurrences=occurrences),
        start=start,
        anchor=schedule.anchor if anchor is None else anchor,
        ended_on=ended_on,
    )


def settle(
    schedule: Schedule, today: date, day_count: DayCount | str = DayCount.ACTUAL
) -> tuple[InvoiceLine, ...]:
    """Settle the recurring line that holds ``today``: credit its unused part when it was billed
    in advance (before today), charge its used part when it is billed in arrears."""
    plan = schedule.plan
    r0 = schedule.recurring_start
    if plan.trial_only or today <= r0:
        return ()
    if plan.occurrences is not None and (
        lines_ended(plan, today, start=schedule.start, anchor=schedule.anchor) >= plan.occurrences
    ):
        return ()
    b0, b1 = period_at(plan, today, start=schedule.start, anchor=schedule.anchor)
    line_start = max(b0, r0)
    if line_start == today:
        return ()
    quantity = schedule.quantity
    in_advance = plan.timing is BillingTiming.IN_ADVANCE
    part = prorate(
        plan.price,
        period_start=b0,
        period_end=b1,
        start=today if in_advance else line_start,
        end=b1 if in_advance else today,
        quantity=quantity,
        day_count=day_count,
    )
    common = {
        "quantity": quantity,
        "unit_price": plan.price,
        "period_start": part.start,
        "period_end": part.end,
    }
    if in_advance:
        return (
            InvoiceLine(
                description=f"Unused time, credited: {part.explanation}",
                amount=-part.amount,
                kind=InvoiceLineKind.CREDIT,
                **common,  # type: ignore[arg-type]
            ),
        )
    return (
        InvoiceLine(
            description=f"Time used so far, billed now: {part.explanation}",
            amount=part.amount,
            kind=InvoiceLineKind.PRORATION,
            **common,  # type: ignore[arg-type]
        ),
    )
