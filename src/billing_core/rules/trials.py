"""Trial and billing-date actions on an order (seed 002 order actions, seed 003 trial settings).

A :class:`Schedule` (``rules.schedules``) is an order of a plan: its ``start``, ``anchor``,
``quantity`` and shifts, and ``ended_on`` once stopped. ``schedule.bills(until=)`` is its timeline
(``rules.timeline.bills``). Each action is a pure function of a schedule and ``today`` and answers
with a :class:`TrialDecision`: ``schedule`` (the order from now on), ``adjustment`` (lines billed
``today`` for what the old timeline already billed or used), ``bills`` (the new timeline: its
bills billed on or after ``today``, through ``until``) and an ``explanation`` with the figures.

Bills dated before ``today`` are history: they stay as billed. A bill dated ``today`` is not
billed yet, so an action taken today replaces it.

* ``restart_trial``: the plan's trial starts again today (its line is billed again, ``0.00`` when
  free); recurring billing resumes at the new trial end.
* ``skip_trial``: the trial ends today and recurring billing starts now.
* ``stop_trial``: the order ends today, during its trial; nothing recurring is billed.
* ``override_trial``: the trial lasts ``length`` from the order's start (longer or shorter), or a
  trial is added to an order that has not started its service; a running trial's extra time is
  a ``0.00`` trial line.
* ``change_billing_date``: a new ``anchor``. The unused part of a period billed in advance is
  credited (a negative ``credit`` line), the used part of a period billed in arrears is charged;
  the moved stub ``[today, b1)`` of the new sequence is the new timeline's first line.
* ``force_bill``: the next recurring line not billed yet is billed today, for its full amount.

Restarting a trial settles the current period like a billing-date change
(``rules.schedules.settle``). Denials carry a :class:`TrialReason`: ``no_trial``, ``not_in_trial``, ``trial_only``,
``trial_end_passed``, ``anchor_unchanged``, ``order_ended``, ``nothing_to_bill``.
"""

from __future__ import annotations

import enum
from datetime import date, timedelta

import attrs

from ..decisions import Decision, Reason
from ..errors import InvalidTypeError
from ..model import InvoiceLine, InvoiceLineKind
from ..money import Money
from ..periods import Period
from ..plans import Trial
from ..timeutil import require_date
from .proration import DayCount
from .schedules import Schedule, billed_from, continue_from, settle
from .timeline import Bill, period_at

_RECURRING = InvoiceLineKind.SUBSCRIPTION

__all__ = [
    "Schedule",  # re-exported from rules.schedules: the state the actions act on
    "TrialAction",
    "TrialDecision",
    "TrialReason",
    "change_billing_date",
    "force_bill",
    "override_trial",
    "restart_trial",
    "skip_trial",
    "stop_trial",
]


class TrialAction(enum.StrEnum):
    """What was asked."""

    RESTART = "restart"
    SKIP = "skip"
    STOP = "stop"
    OVERRIDE = "override"
    CHANGE_BILLING_DATE = "change_billing_date"
    FORCE_BILL = "force_bill"


class TrialReason(Reason):
    """Why an action was refused."""

    NO_TRIAL = "no_trial"
    NOT_IN_TRIAL = "not_in_trial"
    TRIAL_ONLY = "trial_only"
    TRIAL_END_PASSED = "trial_end_passed"
    ANCHOR_UNCHANGED = "anchor_unchanged"
    ORDER_ENDED = "order_ended"
    NOTHING_TO_BILL = "nothing_to_bill"


@attrs.frozen(kw_only=True)
class TrialDecision(Decision):
    """The answer of a trial action. When denied, ``schedule`` is the unchanged one."""

    reason: TrialReason | None = None
    action: TrialAction
    today: date
    schedule: Schedule
    adjustment: tuple[InvoiceLine, ...] = ()
    bills: tuple[Bill, ...] = ()

    @property
    def adjustment_total(self) -> Money | None:
        """The sum of the adjustment lines (``None`` when there are none)."""
        if not self.adjustment:
            return None
        return sum((line.amount for line in self.adjustment[1:]), self.adjustment[0].amount)


# -- the actions ---------------------------------------------------------------------------------------
def restart_trial(
    schedule: Schedule, *, today: date, until: date, day_count: DayCount | str = DayCount.ACTUAL
) -> TrialDecision:
    """The plan's trial starts again today; recurring billing resumes at its new end."""
    action = TrialAction.RESTART
    _check(schedule, today, until)
    trial = schedule.plan.trial
    if trial is None:
        return _no_trial(schedule, action, today)
    if (denied := _ended(schedule, action, today)) is not None:
        return denied
    adjustment = settle(schedule, today, day_count)
    after = continue_from(schedule, today, plan=billed_from(schedule, today))
    end = after.recurring_start
    return _allow(
        action,
        today,
        after,
        adjustment,
        until,
        day_count,
        f"The trial ({trial.length.describe()}) restarts on {today.isoformat()} and runs to "
        f"{end.isoformat()} for {trial.price.rounded()}; recurring billing resumes on "
        f"{end.isoformat()}.",
    )


def skip_trial(
    schedule: Schedule, *, today: date, until: date, day_count: DayCount | str = DayCount.ACTUAL
) -> TrialDecision:
    """The trial ends today: recurring billing starts now."""
    action = TrialAction.SKIP
    if (denied := _trial_check(schedule, action, today, until)) is not None:
        return denied
    if schedule.plan.trial_only:
        return _deny(
            schedule,
            action,
            today,
            TrialReason.TRIAL_ONLY,
            f"A trial-only order ends with its trial on {schedule.recurring_start.isoformat()}: "
            "there is no recurring billing to start.",
        )
    begin = max(today, schedule.start)
    plan = attrs.evolve(billed_from(schedule, today), trial=None)
    after = continue_from(schedule, begin, plan=plan)
    return _allow(
        action,
        today,
        after,
        (),
        until,
        day_count,
        f"The trial ends on {begin.isoformat()} instead of "
        f"{schedule.recurring_start.isoformat()}: recurring billing starts on "
        f"{begin.isoformat()}.",
    )


def stop_trial(schedule: Schedule, *, today: date, until: date) -> TrialDecision:
    """The order ends today, during its trial: nothing recurring is billed."""
    action = TrialAction.STOP
    if (denied := _trial_check(schedule, action, today, until)) is not None:
        return denied
    after = attrs.evolve(schedule, ended_on=max(today, schedule.start))
    return _allow(
        action,
        today,
        after,
        (),
        until,
        DayCount.ACTUAL,
        f"The order ends on {today.isoformat()}, during its trial (to "
        f"{schedule.recurring_start.isoformat()}); no recurring billing follows.",
    )


def override_trial(
    schedule: Schedule,
    *,
    length: Period,
    today: date,
    until: date,
    day_count: DayCount | str = DayCount.ACTUAL,
) -> TrialDecision:
    """The trial lasts ``length`` from the order's start (a trial is added if there is none)."""
    action = TrialAction.OVERRIDE
    _check(schedule, today, until)
    if not isinstance(length, Period):
        raise InvalidTypeError(
            f"must be a Period, not {type(length).__name__}", field="length", value=length
        )
    if (denied := _ended(schedule, action, today)) is not None:
        return denied
    plan = schedule.plan
    started = today > schedule.start
    if (plan.trial is None and started) or (
        plan.trial is not None and not schedule.in_trial(today)
    ):
        return _deny(
            schedule,
            action,
            today,
            TrialReason.NOT_IN_TRIAL,
            f"The service started on {schedule.recurring_start.isoformat()}: a trial can only be "
            f"changed before its end ({today.isoformat()} is after it).",
        )
    end = length.after(schedule.start)
    if end <= today:
        return _deny(
            schedule,
            action,
            today,
            TrialReason.TRIAL_END_PASSED,
            f"A {length.describe()} trial from {schedule.start.isoformat()} ends on "
            f"{end.isoformat()}, not after today ({today.isoformat()}); skip the trial instead.",
        )
    price = plan.trial.price if plan.trial is not None else Money.zero(plan.currency)
    if not started:  # nothing billed yet: the whole order is re-planned
        after = attrs.evolve(
            schedule, plan=attrs.evolve(plan, trial=Trial(length=length, price=price))
        )
    else:  # the trial line was billed: the rest of the trial is a 0.00 line from today
        rest = Trial(length=Period.days((end - today).days), price=Money.zero(plan.currency))
        after = continue_from(
            schedule, today, plan=attrs.evolve(billed_from(schedule, today), trial=rest)
        )
    return _allow(
        action,
        today,
        after,
        (),
        until,
        day_count,
        f"The trial now lasts {length.describe()} from {schedule.start.isoformat()} and ends on "
        f"{end.isoformat()}; recurring billing starts then.",
    )


def change_billing_date(
    schedule: Schedule,
    *,
    anchor: date,
    today: date,
    until: date,
    day_count: DayCount | str = DayCount.ACTUAL,
) -> TrialDecision:
    """Move the period boundaries to ``anchor ± k × period`` from today on."""
    action = TrialAction.CHANGE_BILLING_DATE
    _check(schedule, today, until)
    require_date(anchor, "anchor")
    if (denied := _ended(schedule, action, today)) is not None:
        return denied
    plan = schedule.plan
    if period_at(plan, anchor, start=schedule.start, anchor=schedule.origin)[0] == anchor:
        return _deny(
            schedule,
            action,
            today,
            TrialReason.ANCHOR_UNCHANGED,
            f"{anchor.isoformat()} is already a billing date of this order (the periods run from "
            f"{schedule.origin.isoformat()}): nothing changes.",
        )
    if today < schedule.recurring_start:  # nothing recurring billed or used yet
        after = attrs.evolve(schedule, anchor=anchor)
        adjustment: tuple[InvoiceLine, ...] = ()
    else:
        adjustment = settle(schedule, today, day_count)
        rest = attrs.evolve(billed_from(schedule, today), trial=None)
        after = continue_from(schedule, today, plan=rest, anchor=anchor)
    return _allow(
        action,
        today,
        after,
        adjustment,
        until,
        day_count,
        f"From {today.isoformat()} the billing periods run from {anchor.isoformat()} every "
        f"{plan.period.describe()}.",
    )


def force_bill(
    schedule: Schedule, *, today: date, until: date, day_count: DayCount | str = DayCount.ACTUAL
) -> TrialDecision:
    """Bill today, in full, the next recurring line that is not billed yet."""
    action = TrialAction.FORCE_BILL
    _check(schedule, today, until)
    if (denied := _ended(schedule, action, today)) is not None:
        return denied
    horizon = max(today, schedule.recurring_start) + timedelta(days=1)
    upcoming = [
        (bill.billed_on, part, line)
        for bill in schedule.bills(until=schedule.plan.period.after(horizon), day_count=day_count)
        if bill.billed_on >= today
        for part, line in zip(bill.parts, bill.lines, strict=True)
        if part[0] is _RECURRING
    ]
    if not upcoming:
        return _deny(
            schedule,
            action,
            today,
            TrialReason.NOTHING_TO_BILL,
            f"Every recurring line of this order is billed already (it ends on "
            f"{schedule.ends_on}).",
        )
    billed_on, part, line = upcoming[0]
    forced = attrs.evolve(
        line, description=f"Billed early (due {billed_on.isoformat()}): {line.description}"
    )
    rest = attrs.evolve(billed_from(schedule, today), trial=None)
    after = continue_from(schedule, part[3], plan=rest, anchor=schedule.origin)
    return _allow(
        action,
        today,
        after,
        (forced,),
        until,
        day_count,
        f"The period {part[2].isoformat()} to {part[3].isoformat()} is billed today "
        f"({today.isoformat()}) instead of {billed_on.isoformat()}: {part[1]}.",
    )


# -- helpers -----------------------------------------------------------------------------------------
def _check(schedule: object, today: object, until: object) -> None:
    if not isinstance(schedule, Schedule):
        raise InvalidTypeError(
            f"must be a Schedule, not {type(schedule).__name__}", field="schedule", value=schedule
        )
    require_date(today, "today")
    require_date(until, "until")


def _trial_check(
    schedule: Schedule, action: TrialAction, today: date, until: date
) -> TrialDecision | None:
    """The denial of an action that needs a running trial, or None."""
    _check(schedule, today, until)
    if schedule.plan.trial is None:
        return _no_trial(schedule, action, today)
    if (denied := _ended(schedule, action, today)) is not None:
        return denied
    if not schedule.in_trial(today):
        return _deny(
            schedule,
            action,
            today,
            TrialReason.NOT_IN_TRIAL,
            f"The trial ended on {schedule.recurring_start.isoformat()}; today is "
            f"{today.isoformat()}.",
        )
    return None


def _no_trial(schedule: Schedule, action: TrialAction, today: date) -> TrialDecision:
    plan = schedule.plan
    return _deny(
        schedule,
        action,
        today,
        TrialReason.NO_TRIAL,
        f"The plan ({plan.price} every {plan.period.describe()}, ordered "
        f"{schedule.start.isoformat()}) has no trial.",
    )


def _ended(schedule: Schedule, action: TrialAction, today: date) -> TrialDecision | None:
    ends_on = schedule.ends_on
    if ends_on is None or today < ends_on:
        return None
    return _deny(
        schedule,
        action,
        today,
        TrialReason.ORDER_ENDED,
        f"The order ended on {ends_on.isoformat()}; today is {today.isoformat()}.",
    )


def _deny(
    schedule: Schedule, action: TrialAction, today: date, reason: TrialReason, text: str
) -> TrialDecision:
    return TrialDecision(
        allowed=False,
        reason=reason,
        action=action,
        today=today,
        schedule=schedule,
        explanation=text,
    )


def _allow(
    action: TrialAction,
    today: date,
    after: Schedule,
    adjustment: tuple[InvoiceLine, ...],
    until: date,
    day_count: DayCount | str,
    text: str,
) -> TrialDecision:
    timeline = tuple(
        b for b in after.bills(until=until, day_count=day_count) if b.billed_on >= today
    )
    settled = " ".join(f"{line.description}." for line in adjustment)
    upcoming = (
        f" Next bill: {timeline[0].billed_on.isoformat()} for {timeline[0].total}."
        if timeline
        else " Nothing more is billed through " + until.isoformat() + "."
    )
    return TrialDecision(
        allowed=True,
        action=action,
        today=today,
        schedule=after,
        adjustment=adjustment,
        bills=timeline,
        explanation=f"{text} {settled}{upcoming}".replace("  ", " "),
    )
