"""Collection (SPEC 6.3): payment order, unpaid states, abandoned orders; bad input per issue 14."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import InvalidTypeError, InvalidValueError, PaymentInstrument, Period
from billing_core.rules import collection
from billing_core.rules.collection import UnpaidState
from billing_core.testing import invoice_strategies as ist

TODAY = date(2026, 6, 15)
DEFAULT = PaymentInstrument(id="pi-order")
PRIMARY = PaymentInstrument(id="pi-primary", expires_on=date(2027, 1, 31))
BACKUP = PaymentInstrument(id="pi-backup")
EXPIRED = PaymentInstrument(id="pi-old", expires_on=date(2026, 6, 14))
INACTIVE = PaymentInstrument(id="pi-off", active=False)


def test_order_default_then_primary_then_backups() -> None:
    order = collection.payment_order(
        order_default=DEFAULT, customer_primary=PRIMARY, backups=[BACKUP], today=TODAY
    )
    assert order == (DEFAULT, PRIMARY, BACKUP)
    assert collection.payment_order(customer_primary=PRIMARY, today=TODAY) == (PRIMARY,)
    assert collection.payment_order(today=TODAY) == ()


def test_unusable_left_out_first_then_repeats() -> None:
    plan = collection.plan_payment(
        order_default=PRIMARY,
        customer_primary=PRIMARY,
        backups=[EXPIRED, BACKUP, INACTIVE, BACKUP],
        today=TODAY,
    )
    assert plan.instruments == (PRIMARY, BACKUP)
    assert plan.explanation == (
        "On 2026-06-15: try order default pi-primary, then backup pi-backup. Left out: backup "
        "pi-old is expired on 2026-06-14; backup pi-off is inactive; primary pi-primary is "
        "already in the list; backup pi-backup is already in the list."
    )


def test_an_instrument_is_usable_through_its_expiry_date() -> None:
    last_day = PaymentInstrument(id="pi-1", expires_on=TODAY)
    assert collection.payment_order(customer_primary=last_day, today=TODAY) == (last_day,)
    assert collection.payment_order(customer_primary=last_day, today=TODAY + timedelta(1)) == ()


def test_an_expired_default_in_a_running_order_is_skipped_not_fatal() -> None:
    plan = collection.plan_payment(order_default=EXPIRED, customer_primary=PRIMARY, today=TODAY)
    assert plan.instruments == (PRIMARY,)
    assert "order default pi-old is expired on 2026-06-14" in plan.explanation


def test_bad_input_per_issue_14() -> None:
    with pytest.raises(
        InvalidValueError, match=r"pi-old is expired on 2026-06-14.*@ \$\.order_default"
    ):
        collection.check_default(EXPIRED, today=TODAY)
    with pytest.raises(InvalidValueError, match=r"inactive.*@ \$\.order_default"):
        collection.check_default(INACTIVE, today=TODAY)
    assert collection.check_default(PRIMARY, today=TODAY) is PRIMARY
    with pytest.raises(InvalidValueError, match=r"@ \$\.backups\[1\]"):
        collection.payment_order(customer_primary=PRIMARY, backups=[BACKUP, PRIMARY], today=TODAY)
    with pytest.raises(InvalidValueError, match=r"@ \$\.delinquency_period"):
        collection.assess_unpaid(due_on=TODAY, today=TODAY, delinquency_period=timedelta(0))
    with pytest.raises(InvalidValueError, match=r"@ \$\.delinquency_period"):
        collection.assess_unpaid(due_on=TODAY, today=TODAY, delinquency_period=timedelta(hours=36))
    with pytest.raises(InvalidValueError, match=r"@ \$\.count"):
        Period.days(0)  # a zero Period cannot even be built
    with pytest.raises(InvalidTypeError, match=r"@ \$\.delinquency_period"):
        collection.assess_unpaid(due_on=TODAY, today=TODAY, delinquency_period=30)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match=r"@ \$\.backups\[0\]"):
        collection.payment_order(backups=["pi-1"], today=TODAY)  # type: ignore[list-item]
    with pytest.raises(InvalidTypeError, match=r"@ \$\.today"):
        collection.payment_order(today="2026-06-15")  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match=r"@ \$\.abandon_after"):
        collection.abandon_on(created_on=TODAY, abandon_after=timedelta(days=3))  # type: ignore[arg-type]


def test_kill_bill_style_unpaid_timeline() -> None:
    """Due 2026-03-01, delinquency period 30 days: open through the due date, past due from the
    next day, delinquent (cancelled) from 2026-03-31."""
    period = Period.days(30)
    states = {
        day: collection.assess_unpaid(
            due_on=date(2026, 3, 1), today=date(2026, 3, day), delinquency_period=period
        )
        for day in (1, 2, 30, 31)
    }
    assert [s.state for s in states.values()] == ["open", "past_due", "past_due", "delinquent"]
    assert {s.cancel_on for s in states.values()} == {date(2026, 3, 31)}
    assert states[1].explanation == "Due on 2026-03-01: open, 0 days left to pay."
    assert states[2].explanation == (
        "Due on 2026-03-01: past due by 1 day. Unless paid, the subscription is cancelled on "
        "2026-03-31 (in 29 days)."
    )
    assert states[31].explanation == (
        "Due on 2026-03-01 and unpaid 30 days later: delinquent since 2026-03-31, the end of the "
        "delinquency period; the subscription is cancelled on 2026-03-31."
    )


def test_without_a_delinquency_period_it_is_never_cancelled() -> None:
    a = collection.assess_unpaid(due_on=date(2026, 1, 31), today=date(2030, 1, 1))
    assert a.state is UnpaidState.PAST_DUE
    assert a.cancel_on is None
    assert a.explanation.endswith(
        "No delinquency period is set, so it is never cancelled for this."
    )


def test_month_periods_clamp() -> None:
    a = collection.assess_unpaid(
        due_on=date(2026, 1, 31), today=date(2026, 2, 27), delinquency_period=Period.months(1)
    )
    assert a.cancel_on == date(2026, 2, 28)
    assert a.state is UnpaidState.PAST_DUE
    assert collection.abandon_on(created_on=date(2024, 1, 31), abandon_after=Period.months(1)) == (
        date(2024, 2, 29)
    )


def test_pending_orders_are_abandoned_on_time() -> None:
    created = date(2026, 6, 1)
    assert collection.abandon_on(created_on=created, abandon_after=Period.days(7)) == date(
        2026, 6, 8
    )
    pending = collection.assess_pending(
        created_on=created, abandon_after=Period.days(7), today=date(2026, 6, 7)
    )
    assert not pending.abandoned
    assert pending.explanation == (
        "Created 2026-06-01: pending; abandoned on 2026-06-08 (in 1 day) unless activated."
    )
    gone = collection.assess_pending(
        created_on=created, abandon_after=Period.days(7), today=date(2026, 6, 8)
    )
    assert gone.abandoned
    assert gone.explanation == (
        "Created 2026-06-01 and not activated within 7 days: abandoned on 2026-06-08."
    )


instruments = ist.payment_instruments()
days = st.dates(min_value=date(2025, 6, 1), max_value=date(2028, 6, 1))


@given(st.none() | instruments, st.none() | instruments, st.lists(instruments, max_size=5), days)
def test_payment_order_has_no_repeats_and_nothing_unusable(
    default: PaymentInstrument | None,
    primary: PaymentInstrument | None,
    backups: list[PaymentInstrument],
    today: date,
) -> None:
    if primary is not None:
        backups = [b for b in backups if b.id != primary.id]
    order = collection.payment_order(
        order_default=default, customer_primary=primary, backups=backups, today=today
    )
    ids = [i.id for i in order]
    assert len(ids) == len(set(ids))
    assert all(i.usable_on(today) for i in order)
    candidates = [x for x in (default, primary, *backups) if x is not None]
    # every usable candidate's id is there, in first-seen order of the usable ones
    first_seen: list[str] = []
    for x in candidates:
        if x.usable_on(today) and x.id not in first_seen:
            first_seen.append(x.id)
    assert ids == first_seen
    if default is not None and default.usable_on(today):
        assert order[0] == default


@given(days, days, st.none() | st.integers(1, 120))
def test_unpaid_state_is_monotone_in_today(due: date, today: date, period_days: int | None) -> None:
    period = None if period_days is None else Period.days(period_days)
    rank = {UnpaidState.OPEN: 0, UnpaidState.PAST_DUE: 1, UnpaidState.DELINQUENT: 2}
    now = collection.assess_unpaid(due_on=due, today=today, delinquency_period=period)
    later = collection.assess_unpaid(
        due_on=due, today=today + timedelta(days=1), delinquency_period=period
    )
    assert rank[now.state] <= rank[later.state]
    assert (now.state is UnpaidState.OPEN) is (today <= due)
    if period is None:
        assert now.state is not UnpaidState.DELINQUENT
        assert now.cancel_on is None
    else:
        assert now.cancel_on == due + timedelta(days=period_days or 0)
        assert (now.state is UnpaidState.DELINQUENT) is (today >= now.cancel_on)
