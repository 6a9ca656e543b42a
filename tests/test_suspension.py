"""rules.suspension: a suspension is a pause; rules.limits: one validator for quantities and
amounts. Worked examples with exact dates and Hypothesis properties."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import InvalidAmountError, InvalidTypeError, Money, Period, PrecisionError
from billing_core.model import Subscription, SubscriptionState
from billing_core.rules import limits
from billing_core.rules.suspension import change_state, resume, term_ending_on
from billing_core.testing import strategies as bst

MONTHLY = Period.months(1)


def _sub(start: date = date(2027, 1, 1), term: Period = MONTHLY, **kw: object) -> Subscription:
    return Subscription(id="s1", customer_id="c1", term=term, start=start, **kw)  # type: ignore[arg-type]


# -- worked examples ---------------------------------------------------------------------------------
def test_the_issue_example_95_days_later() -> None:
    sub = change_state(_sub(), SubscriptionState.SUSPENDED, today=date(2027, 1, 20)).subscription
    assert (sub.state, sub.suspended_on) == (SubscriptionState.SUSPENDED, date(2027, 1, 20))
    back = change_state(sub, SubscriptionState.ACTIVE, today=date(2027, 4, 25))
    assert (back.allowed, back.changed, back.paused_days) == (True, True, 95)
    assert back.subscription.term_end == date(2027, 5, 7)  # 12 days left from Apr 25
    assert back.subscription.state is SubscriptionState.ACTIVE
    assert back.subscription.suspended_on is None
    assert back.explanation == (
        "Subscription s1 is re-enabled on 2027-04-25 after 95 days suspended (from 2027-01-20): "
        "the suspended days are not billed. The term resumes with the 12 days it had left and "
        "now ends 2027-05-07 instead of 2027-02-01; it renews then."
    )
    # the recurrence now keeps day 7: the next terms end Jun 7, Jul 7
    later = attrs.evolve(back.subscription, start=date(2027, 5, 7))
    assert later.term_end == date(2027, 6, 7)


def test_reenabled_the_same_day_changes_no_date() -> None:
    sub = change_state(_sub(), SubscriptionState.SUSPENDED, today=date(2027, 1, 20)).subscription
    back = resume(sub, today=date(2027, 1, 20))
    assert (back.paused_days, back.subscription.term_end) == (0, date(2027, 2, 1))
    assert back.subscription.start == date(2027, 1, 1)


def test_a_suspension_before_the_term_began_counts_from_its_start() -> None:
    sub = _sub(start=date(2027, 3, 1), state="suspended", suspended_on=date(2027, 2, 1))
    back = resume(sub, today=date(2027, 3, 11))
    assert back.paused_days == 10
    assert back.subscription.term_end == date(2027, 4, 11)


def test_month_end_new_ends_keep_their_day() -> None:
    # Mar 31 minus one month clamps to Feb 28, whose next month is Mar 28: go back further
    anchor, start = term_ending_on(Period.months(1), date(2027, 3, 31))
    assert (anchor, start) == (date(2027, 1, 31), date(2027, 2, 28))
    assert _sub(start=start, anchor=anchor).term_end == date(2027, 3, 31)
    assert term_ending_on(Period.years(1), date(2028, 2, 29)) == (
        date(2024, 2, 29),
        date(2027, 2, 28),
    )
    assert term_ending_on(Period.weeks(2), date(2027, 3, 31)) == (date(2027, 3, 17),) * 2


@pytest.mark.parametrize(
    ("state", "target", "verb"),
    [
        ("cancelled", "active", "re-enabled"),
        ("expired", "active", "re-enabled"),
        ("cancelled", "suspended", "suspended"),
        ("expired", "cancelled", "cancelled"),
    ],
)
def test_changes_the_states_do_not_allow_are_denials(state: str, target: str, verb: str) -> None:
    answer = change_state(_sub(state=state), SubscriptionState(target), today=date(2027, 1, 5))
    assert (answer.allowed, answer.reason, answer.changed) == (
        False,
        "state_change_not_allowed",
        False,
    )
    assert answer.explanation.startswith(f"Subscription s1 is {state} and cannot be {verb}: ")


def test_bad_input_raises() -> None:
    with pytest.raises(InvalidTypeError) as info:
        change_state(_sub(), SubscriptionState.ACTIVE, today="2027-01-01")  # type: ignore[arg-type]
    assert info.value.field == "$.today"
    with pytest.raises(InvalidTypeError):
        change_state(_sub(), "active", today=date(2027, 1, 1))  # type: ignore[arg-type]
    junk: Any = "2027-01-01"
    with pytest.raises(InvalidTypeError) as info2:
        Subscription(
            id="s", customer_id="c", term=Period.days(1), start=date(2027, 1, 1), suspended_on=junk
        )
    assert info2.value.field == "$.suspended_on"


# -- properties --------------------------------------------------------------------------------------
terms = st.builds(
    Period,
    st.sampled_from(["day", "week", "month", "year"]),
    st.integers(1, 14),
)


@given(term=terms, end=bst.dates(min_value=date(1990, 1, 1), max_value=date(2150, 12, 31)))
def test_term_ending_on_lands_on_the_end(term: Period, end: date) -> None:
    anchor, start = term_ending_on(term, end)
    assert anchor <= start < end
    assert _sub(start=start, anchor=anchor, term=term).term_end == end


@given(
    term=terms,
    start=bst.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    suspend_after=st.integers(0, 800),
    paused=st.integers(0, 800),
)
def test_no_suspended_day_is_billed_and_no_paid_day_is_lost(
    term: Period, start: date, suspend_after: int, paused: int
) -> None:
    sub = _sub(start=start, term=term)
    suspended_on = start + timedelta(days=suspend_after)
    today = suspended_on + timedelta(days=paused)
    off = change_state(sub, SubscriptionState.SUSPENDED, today=suspended_on).subscription
    back = change_state(off, SubscriptionState.ACTIVE, today=today)
    new_end = back.subscription.term_end
    assert back.paused_days == paused
    assert new_end == sub.term_end + timedelta(days=paused)  # the end moves by the pause
    # the days that were left are still left (a renewal overdue when suspended stays as overdue)
    assert (new_end - today).days == (sub.term_end - suspended_on).days


# -- limits ------------------------------------------------------------------------------------------
@given(st.integers(-(10**40), 10**40))
def test_a_quantity_is_accepted_only_between_0_and_the_maximum(value: int) -> None:
    if 0 <= value <= limits.MAX_QUANTITY:
        assert limits.quantity(value, "q") == value
    else:
        with pytest.raises(InvalidAmountError) as info:
            limits.quantity(value, "q")
        assert info.value.field == "$.q"


@given(bst.money("USD", min_units=-(10**16), max_units=10**16))
def test_an_amount_is_accepted_only_when_positive_and_at_most_the_maximum(m: Money) -> None:
    ok = 0 < m.amount <= limits.MAX_AMOUNT
    if ok:
        assert limits.amount(m, "amount") == m
    else:
        with pytest.raises(InvalidAmountError):
            limits.amount(m, "amount")


def test_limit_examples() -> None:
    with pytest.raises(InvalidTypeError):
        limits.quantity(True, "q")
    with pytest.raises(PrecisionError):
        limits.amount(Money("1.001", "USD"), "amount")
    assert limits.amount(Money("0.0015", "USD"), "p", allow_zero=True, price=True).amount > 0
    assert limits.order({"dv": 3, "ov": 0}, {"dv": Money("10.00", "USD")}, "inventory") == Money(
        "30.00", "USD"
    )
    assert limits.order({"dv": 3}, {}, "inventory") is None
    with pytest.raises(InvalidAmountError, match="must be at most 1,000,000 units, not 2,000,000"):
        limits.inventory({"dv": 2_000_000}, "inventory")
