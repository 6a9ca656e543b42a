"""rules.trials: restart, skip, stop, override, change the billing date, force-bill.

Worked examples with exact figures, every denial reason, bad input, and Hypothesis properties.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from billing_core import BillingTiming, InvoiceLineKind, Money, Period, Plan, Trial
from billing_core.errors import InvalidAmountError, InvalidTypeError
from billing_core.rules import trials
from billing_core.rules.proration import prorate
from billing_core.rules.schedules import Schedule
from billing_core.rules.timeline import Bill, bills, period_at
from billing_core.rules.trials import TrialAction, TrialReason

FREE = Trial(length=Period.days(14), price=Money("0.00", "USD"))
PLAN = Plan(
    price=Money("100.00", "USD"),
    period=Period.months(1),
    trial=FREE,
    setup_fee=Money("5.00", "USD"),
)
ORDER = Schedule(plan=PLAN, start=date(2026, 1, 10), anchor=date(2026, 1, 1))
UNTIL = date(2026, 4, 1)
IN_TRIAL = date(2026, 1, 15)  # the trial runs Jan 10 to Jan 24
PAID = date(2026, 2, 10)  # inside the period Feb 1 to Mar 1, billed Feb 1


def usd(amount: str) -> Money:
    return Money(amount, "USD")


def bad(value: object) -> Any:
    return value


def billed(result: tuple[Bill, ...]) -> list[tuple[date, Money]]:
    return [(b.billed_on, b.total) for b in result]


def test_the_order_timeline() -> None:
    assert billed(ORDER.bills(until=UNTIL)) == [
        (date(2026, 1, 10), usd("5.00")),  # setup fee + free trial
        (date(2026, 1, 24), usd("25.81")),  # 8 of 31 days to Feb 1
        (date(2026, 2, 1), usd("100.00")),
        (date(2026, 3, 1), usd("100.00")),
        (date(2026, 4, 1), usd("100.00")),
    ]


def test_restart_during_the_paid_period_credits_the_unused_part() -> None:
    d = trials.restart_trial(ORDER, today=PAID, until=UNTIL)
    assert d.allowed and d.action is TrialAction.RESTART
    (credit,) = d.adjustment
    assert (credit.kind, credit.amount) == (InvoiceLineKind.CREDIT, usd("-67.86"))
    assert "19 of 28 days (Feb 10 to Mar 1) of 100.00 USD = 67.86 USD" in credit.description
    assert billed(d.bills) == [
        (date(2026, 2, 10), usd("0.00")),  # the trial again; the setup fee is not billed twice
        (date(2026, 2, 24), usd("17.86")),  # 5 of 28 days to Mar 1
        (date(2026, 3, 1), usd("100.00")),
        (date(2026, 4, 1), usd("100.00")),
    ]
    assert d.schedule.recurring_start == date(2026, 2, 24)
    assert "restarts on 2026-02-10 and runs to 2026-02-24" in d.explanation
    assert "67.86 USD" in d.explanation


def test_skip_bills_now_and_stop_ends_the_order() -> None:
    skip = trials.skip_trial(ORDER, today=IN_TRIAL, until=UNTIL)
    assert billed(skip.bills)[:2] == [
        (date(2026, 1, 15), usd("54.84")),
        (date(2026, 2, 1), usd("100.00")),
    ]
    assert "17 of 31 days (Jan 15 to Feb 1)" in skip.bills[0].explanation
    stop = trials.stop_trial(ORDER, today=IN_TRIAL, until=UNTIL)
    assert stop.allowed and stop.bills == () and stop.adjustment == ()
    assert stop.schedule.ends_on == IN_TRIAL
    assert billed(stop.schedule.bills(until=UNTIL)) == [(date(2026, 1, 10), usd("5.00"))]


def test_stop_on_the_first_day_keeps_the_start_bill() -> None:
    stop = trials.stop_trial(ORDER, today=ORDER.start, until=UNTIL)
    assert billed(stop.bills) == [(date(2026, 1, 10), usd("5.00"))]


def test_override_extends_a_running_trial_or_adds_one_before_the_start() -> None:
    longer = trials.override_trial(ORDER, length=Period.days(30), today=IN_TRIAL, until=UNTIL)
    assert billed(longer.bills)[:2] == [
        (date(2026, 1, 15), usd("0.00")),
        (date(2026, 2, 9), usd("71.43")),
    ]
    assert longer.schedule.recurring_start == date(2026, 2, 9)  # Jan 10 + 30 days
    no_trial = Schedule(
        plan=Plan(price=usd("100"), period=Period.months(1)), start=date(2026, 3, 1)
    )
    added = trials.override_trial(
        no_trial, length=Period.weeks(2), today=date(2026, 2, 20), until=UNTIL
    )
    assert billed(added.bills) == [
        (date(2026, 3, 1), usd("0.00")),
        (date(2026, 3, 15), usd("100.00")),
    ]


def test_change_billing_date_credits_the_unused_part_and_charges_the_moved_stub() -> None:
    d = trials.change_billing_date(ORDER, anchor=date(2026, 1, 15), today=PAID, until=UNTIL)
    assert [line.amount for line in d.adjustment] == [usd("-67.86")]
    assert billed(d.bills) == [
        (date(2026, 2, 10), usd("16.13")),  # the moved stub: 5 of 31 days (Feb 10 to Feb 15)
        (date(2026, 2, 15), usd("100.00")),
        (date(2026, 3, 15), usd("100.00")),
    ]
    assert d.adjustment_total == usd("-67.86")
    in_trial = trials.change_billing_date(
        ORDER, anchor=date(2026, 1, 15), today=IN_TRIAL, until=UNTIL
    )
    assert in_trial.adjustment == ()
    assert billed(in_trial.bills)[0] == (date(2026, 1, 24), usd("70.97"))  # 22 of 31 days


def test_change_billing_date_in_arrears_charges_the_used_part() -> None:
    arrears = Schedule(
        plan=Plan(price=usd("31"), period=Period.months(1), timing="in_arrears"),
        start=date(2026, 1, 1),
    )
    d = trials.change_billing_date(
        arrears, anchor=date(2026, 1, 20), today=date(2026, 1, 11), until=UNTIL
    )
    (used,) = d.adjustment
    assert (used.kind, used.amount) == (InvoiceLineKind.PRORATION, usd("10.00"))  # 10 of 31 days
    assert billed(d.bills)[0] == (date(2026, 1, 20), usd("9.00"))  # 9 of 31 days, in arrears


def test_force_bill_bills_the_next_line_now() -> None:
    d = trials.force_bill(ORDER, today=PAID, until=UNTIL)
    (forced,) = d.adjustment
    assert (forced.amount, forced.period_start, forced.period_end) == (
        usd("100.00"),
        date(2026, 3, 1),
        date(2026, 4, 1),
    )
    assert forced.description.startswith("Billed early (due 2026-03-01): 1 month (Mar 1 to Apr 1)")
    assert billed(d.bills) == [(date(2026, 4, 1), usd("100.00"))]
    in_trial = trials.force_bill(ORDER, today=IN_TRIAL, until=UNTIL)
    assert in_trial.adjustment[0].amount == usd("25.81")
    soon = trials.force_bill(ORDER, today=PAID, until=date(2026, 2, 20))
    assert soon.bills == () and soon.schedule.start == date(2026, 4, 1)
    assert "Nothing more is billed through 2026-02-20." in soon.explanation


def test_continuations_keep_the_occurrences_left() -> None:
    three = Schedule(
        plan=Plan(price=usd("10"), period=Period.months(1), occurrences=3), start=date(2026, 1, 1)
    )
    d = trials.force_bill(three, today=date(2026, 1, 10), until=UNTIL)
    assert (d.adjustment[0].period_start, d.adjustment[0].amount) == (
        date(2026, 2, 1),
        usd("10.00"),
    )
    assert billed(d.bills) == [(date(2026, 3, 1), usd("10.00"))]  # the third and last
    two = Schedule(
        plan=Plan(price=usd("10"), period=Period.months(1), occurrences=2), start=date(2026, 1, 1)
    )
    last = trials.force_bill(two, today=date(2026, 1, 10), until=UNTIL)
    assert last.bills == () and last.schedule.ends_on == date(2026, 3, 1)
    moved = trials.change_billing_date(
        three, anchor=date(2026, 1, 15), today=date(2026, 2, 10), until=UNTIL
    )
    assert [line.amount for line in moved.adjustment] == [usd("-6.79")]  # 19 of 28 days
    assert billed(moved.bills) == [
        (date(2026, 2, 10), usd("1.61")),
        (date(2026, 2, 15), usd("10.00")),
    ]


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (lambda: trials.skip_trial(ORDER, today=PAID, until=UNTIL), TrialReason.NOT_IN_TRIAL),
        (lambda: trials.stop_trial(ORDER, today=PAID, until=UNTIL), TrialReason.NOT_IN_TRIAL),
        (
            lambda: trials.override_trial(ORDER, length=Period.days(60), today=PAID, until=UNTIL),
            TrialReason.NOT_IN_TRIAL,
        ),
        (
            lambda: trials.override_trial(
                ORDER, length=Period.days(3), today=IN_TRIAL, until=UNTIL
            ),
            TrialReason.TRIAL_END_PASSED,
        ),
        (
            lambda: trials.restart_trial(
                Schedule(plan=Plan(price=usd("1"), period=Period.days(7)), start=date(2026, 1, 1)),
                today=PAID,
                until=UNTIL,
            ),
            TrialReason.NO_TRIAL,
        ),
        (
            lambda: trials.skip_trial(
                Schedule(
                    plan=Plan(price=usd("1"), period=Period.days(7), trial=FREE, trial_only=True),
                    start=date(2026, 1, 10),
                ),
                today=IN_TRIAL,
                until=UNTIL,
            ),
            TrialReason.TRIAL_ONLY,
        ),
        (
            lambda: trials.change_billing_date(
                ORDER, anchor=date(2025, 6, 1), today=PAID, until=UNTIL
            ),
            TrialReason.ANCHOR_UNCHANGED,
        ),
        (
            lambda: trials.force_bill(
                Schedule(
                    plan=Plan(price=usd("1"), period=Period.months(1), occurrences=2),
                    start=date(2026, 1, 1),
                ),
                today=date(2026, 2, 10),
                until=UNTIL,
            ),
            TrialReason.NOTHING_TO_BILL,
        ),
        (
            lambda: trials.restart_trial(
                Schedule(
                    plan=Plan(price=usd("1"), period=Period.days(7), trial=FREE, trial_only=True),
                    start=date(2026, 1, 1),
                ),
                today=PAID,
                until=UNTIL,
            ),
            TrialReason.ORDER_ENDED,
        ),
    ],
)
def test_denials_carry_a_reason_and_leave_the_schedule(call: Any, reason: TrialReason) -> None:
    d = call()
    assert not d.allowed and d.reason is reason
    assert d.adjustment == () and d.bills == ()
    assert d.explanation and any(ch.isdigit() for ch in d.explanation)


@pytest.mark.parametrize(
    ("call", "error", "field"),
    [
        (
            lambda: trials.skip_trial(bad(PLAN), today=PAID, until=UNTIL),
            InvalidTypeError,
            "schedule",
        ),
        (
            lambda: trials.skip_trial(ORDER, today=bad("2026-02-10"), until=UNTIL),
            InvalidTypeError,
            "today",
        ),
        (lambda: trials.force_bill(ORDER, today=PAID, until=bad(None)), InvalidTypeError, "until"),
        (
            lambda: trials.override_trial(ORDER, length=bad(14), today=PAID, until=UNTIL),
            InvalidTypeError,
            "length",
        ),
        (
            lambda: trials.change_billing_date(
                ORDER, anchor=bad("2026-01-15"), today=PAID, until=UNTIL
            ),
            InvalidTypeError,
            "anchor",
        ),
        (
            lambda: Schedule(plan=PLAN, start=date(2026, 1, 1), quantity=0),
            InvalidAmountError,
            "quantity",
        ),
        (lambda: Schedule(plan=bad("plan"), start=date(2026, 1, 1)), InvalidTypeError, "plan"),
        (lambda: Schedule(plan=PLAN, start=bad(None)), InvalidTypeError, "start"),
        (
            lambda: Schedule(plan=PLAN, start=date(2026, 1, 1), due_shift=timedelta(days=-1)),
            Exception,
            "due_shift",
        ),
    ],
)
def test_bad_input_raises_naming_the_field(call: Any, error: type[Exception], field: str) -> None:
    with pytest.raises(error) as caught:
        call()
    assert getattr(caught.value, "field", None) == f"$.{field}"


# -- properties ---------------------------------------------------------------------------------
periods = st.one_of(
    st.integers(1, 30).map(Period.days),
    st.integers(1, 4).map(Period.weeks),
    st.integers(1, 6).map(Period.months),
)
days = st.dates(date(2023, 1, 1), date(2026, 12, 31))


@st.composite
def schedules(draw: st.DrawFn, trial: bool | None = None) -> Schedule:
    with_trial = draw(st.booleans()) if trial is None else trial
    plan = Plan(
        price=Money(Decimal(draw(st.integers(0, 1_000_000))).scaleb(-2), "USD"),
        period=draw(periods),
        timing=draw(st.sampled_from(BillingTiming)),
        trial=Trial(length=Period.days(draw(st.integers(1, 40))), price=Money("0", "USD"))
        if with_trial
        else None,
    )
    return Schedule(
        plan=plan, start=draw(days), anchor=draw(st.none() | days), quantity=draw(st.integers(1, 9))
    )


def recurring(result: tuple[Bill, ...]) -> list[tuple[date, date, Money]]:
    out = []
    for bill in result:
        for part in bill.parts:
            if part[0] is InvoiceLineKind.SUBSCRIPTION:
                out.append((part[2], part[3], part[1]))
    return out


@settings(max_examples=300)
@given(schedules(), st.integers(0, 200))
def test_force_bill_moves_one_line_and_keeps_the_rest(schedule: Schedule, offset: int) -> None:
    today = schedule.start + timedelta(days=offset)
    until = today + timedelta(days=400)
    d = trials.force_bill(schedule, today=today, until=until)
    assert d.allowed
    before = [
        line
        for b in schedule.bills(until=until + timedelta(days=400))
        if b.billed_on >= today
        for line in recurring((b,))
    ]
    (forced,) = d.adjustment
    assert (forced.period_start, forced.period_end, forced.amount) == before[0]
    after = recurring(d.bills)
    assert after == before[1 : 1 + len(after)]
    assert after  # the next lines through until continue the same sequence


@settings(max_examples=300)
@given(schedules(), st.integers(0, 200), days)
def test_change_billing_date_settles_to_within_a_cent(
    schedule: Schedule, offset: int, anchor: date
) -> None:
    """Old line + its credit = the used part; the moved stub starts today on the new sequence."""
    today = schedule.start + timedelta(days=offset)
    d = trials.change_billing_date(
        schedule, anchor=anchor, today=today, until=today + timedelta(days=200)
    )
    if not d.allowed:
        assert d.reason is TrialReason.ANCHOR_UNCHANGED
        assert (
            period_at(schedule.plan, anchor, start=schedule.start, anchor=schedule.origin)[0]
            == anchor
        )
        return
    plan = schedule.plan
    new = recurring(d.bills) or recurring(d.schedule.bills(until=today + timedelta(days=800)))
    first_start = max(today, schedule.recurring_start)
    assert new[0][0] == first_start
    assert new[0][1] == period_at(plan, first_start, start=first_start, anchor=anchor)[1]
    if not d.adjustment:
        return
    (settled,) = d.adjustment
    b0, b1 = period_at(plan, today, start=schedule.start, anchor=schedule.anchor)
    line_start = max(b0, schedule.recurring_start)
    exact = (
        plan.price.amount
        * schedule.quantity
        * Decimal((today - line_start).days)
        / Decimal((b1 - b0).days)
    )
    if plan.timing is BillingTiming.IN_ADVANCE:
        full = prorate(
            plan.price, period_start=b0, period_end=b1, start=line_start, quantity=schedule.quantity
        )
        assert settled.amount.amount <= 0
        assert abs(full.amount.amount + settled.amount.amount - exact) <= Decimal("0.01")
    else:
        assert abs(settled.amount.amount - exact) <= Decimal("0.005")


@settings(max_examples=200)
@given(schedules(trial=True), st.integers(0, 39))
def test_skip_is_the_timeline_of_the_plan_without_its_trial_from_today(
    schedule: Schedule, offset: int
) -> None:
    today = schedule.start + timedelta(days=offset)
    assume(schedule.in_trial(today))
    until = today + timedelta(days=300)
    d = trials.skip_trial(schedule, today=today, until=until)
    plain = Plan(
        price=schedule.plan.price, period=schedule.plan.period, timing=schedule.plan.timing
    )
    expected = bills(
        plain, start=today, until=until, anchor=schedule.anchor, quantity=schedule.quantity
    )
    assert recurring(d.bills) == recurring(expected)
    stop = trials.stop_trial(schedule, today=today, until=until)
    assert recurring(stop.bills) == [] and stop.schedule.ends_on == today


@settings(max_examples=200)
@given(schedules(trial=True), st.integers(0, 300))
def test_restart_starts_recurring_billing_a_trial_after_today(
    schedule: Schedule, offset: int
) -> None:
    today = schedule.start + timedelta(days=offset)
    d = trials.restart_trial(schedule, today=today, until=today + timedelta(days=200))
    assert schedule.plan.trial is not None
    assert d.schedule.recurring_start == schedule.plan.trial.length.after(today)
    kinds = [line.kind for b in d.bills for line in b.lines]
    assert kinds[0] is InvoiceLineKind.TRIAL and InvoiceLineKind.SETUP_FEE not in kinds
    assert all(line.kind is InvoiceLineKind.CREDIT for line in d.adjustment) or (
        schedule.plan.timing is BillingTiming.IN_ARREARS
    )
