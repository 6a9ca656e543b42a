"""A subscription is a plan: renewals, backdated starts and mid-term changes agree with
``rules.timeline.bills``; stored rows without the new fields still load."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from billing_core import (
    BillingTiming,
    InvoiceLineKind,
    Money,
    Period,
    Plan,
    Subscription,
    SubscriptionState,
    Trial,
)
from billing_core.errors import CurrencyMismatchError, InvalidTypeError, InvalidValueError
from billing_core.rules import backdating, changes, renewal
from billing_core.rules.proration import prorate
from billing_core.rules.timeline import Bill, bills
from billing_core.serialization import dumps, loads, structure

SEED_000_ROW = {  # a subscription row stored before plans existed
    "id": "sub-1",
    "customer_id": "cus-1",
    "term": "P1Y",
    "start": "2025-11-22",
    "auto_renew": True,
    "inventory": {"standard": 2},
    "renewal_inventory": {"standard": 2},
    "unit_prices": {"standard": {"amount": "40.00", "currency": "USD"}},
    "state": "active",
    "product": "ssl",
    "anchor": None,
}


def usd(amount: str) -> Money:
    return Money(amount, "USD")


def test_an_old_stored_row_loads_and_is_a_plan() -> None:
    sub = structure(SEED_000_ROW, Subscription)
    assert (sub.plan, sub.issue_shift, sub.due_shift) == (None, None, None)
    assert sub.plans == {"standard": Plan(price=usd("40.00"), period=Period.years(1))}
    assert loads(json.dumps(SEED_000_ROW), Subscription) == sub
    assert sub.period_start == sub.start


def test_a_subscription_with_its_plan_and_shifts_round_trips() -> None:
    plan = Plan(
        price=usd("1"),
        period=Period.months(1),
        timing="in_arrears",
        trial=Trial(length=Period.days(14), price=usd("0")),
        setup_fee=usd("5"),
        occurrences=12,
    )
    sub = attrs.evolve(
        structure(SEED_000_ROW, Subscription),
        term=Period.months(1),
        plan=plan,
        issue_shift=timedelta(days=-2),
        due_shift=timedelta(days=14),
    )
    text = dumps(sub)
    assert '"issue_shift": "-P2D"' in text and '"due_shift": "P14D"' in text
    assert loads(text, Subscription) == sub
    assert sub.plans["standard"] == attrs.evolve(plan, price=usd("40.00"))


def test_the_engine_construction_still_works() -> None:
    sub = Subscription(
        id="s",
        customer_id="c",
        term=Period.months(1),
        start=date(2026, 1, 31),
        inventory={"standard": 1},
        unit_prices={"standard": usd("9.99")},
    )
    assert sub.plans["standard"].timing is BillingTiming.IN_ADVANCE
    assert sub.term_end == date(2026, 2, 28)


@pytest.mark.parametrize(
    ("changes_", "error", "field"),
    [
        ({"plan": "monthly"}, InvalidTypeError, "plan"),
        ({"plan": Plan(price=usd("1"), period=Period.months(1))}, InvalidValueError, "plan.period"),
        (
            {
                "term": Period.months(1),
                "plan": Plan(price=Money("1", "EUR"), period=Period.months(1)),
            },
            CurrencyMismatchError,
            "unit_prices.standard",
        ),
        ({"issue_shift": 2}, InvalidTypeError, "issue_shift"),
        ({"due_shift": timedelta(days=-1)}, InvalidValueError, "due_shift"),
        ({"due_shift": timedelta(hours=12)}, InvalidValueError, "due_shift"),
    ],
)
def test_bad_plan_or_shift_raises_naming_the_field(
    changes_: dict[str, Any], error: type, field: str
) -> None:
    with pytest.raises(error) as caught:
        attrs.evolve(structure(SEED_000_ROW, Subscription), **changes_)
    assert getattr(caught.value, "field", None) == f"$.{field}"


def test_occurrences_and_trial_only_end_renewals() -> None:
    base = structure(SEED_000_ROW, Subscription)
    limited = attrs.evolve(base, plan=Plan(price=usd("40"), period=Period.years(1), occurrences=2))
    first = renewal.renew(limited, today=date(2026, 11, 22))
    assert first.renewed
    second = renewal.renew(first.subscription, today=date(2027, 11, 22))
    assert not second.renewed and second.subscription.state is SubscriptionState.EXPIRED
    assert "2 term(s) are all billed" in second.explanation


def test_in_arrears_renewal_bills_the_term_that_ended() -> None:
    base = structure(SEED_000_ROW, Subscription)
    arrears = attrs.evolve(
        base,
        plan=Plan(price=usd("40"), period=Period.years(1), timing="in_arrears"),
        renewal_inventory={"standard": 5},  # runs next term, billed at its end
    )
    r = renewal.renew(arrears, today=date(2026, 11, 22))
    (line,) = r.lines
    assert (line.kind, line.amount, line.period_start, line.period_end) == (
        InvoiceLineKind.SUBSCRIPTION,
        usd("80.00"),
        date(2025, 11, 22),
        date(2026, 11, 22),
    )
    assert "in arrears" in r.explanation
    assert r.subscription.inventory == {"standard": 5}


# -- properties: the rules agree with the timeline -----------------------------------------------
terms = st.one_of(
    st.integers(1, 12).map(Period.months),
    st.just(Period.years(1)),
    st.integers(7, 90).map(Period.days),
)
days = st.dates(date(2020, 1, 1), date(2030, 12, 31))
prices = st.integers(0, 500_000).map(lambda c: Money(Decimal(c).scaleb(-2), "USD"))


def recurring(result: tuple[Bill, ...]) -> list[tuple[date, Money, date, date]]:
    return [
        (bill.billed_on, part[1], part[2], part[3])
        for bill in result
        for part in bill.parts
        if part[0] is InvoiceLineKind.SUBSCRIPTION
    ]


@settings(max_examples=200)
@given(terms, days, prices, st.integers(1, 20), st.sampled_from(BillingTiming), st.integers(0, 40))
def test_renewals_bill_what_the_timeline_bills(
    term: Period, first: date, price: Money, quantity: int, timing: BillingTiming, stub_days: int
) -> None:
    """Renewing term after term bills, line for line, the timeline of the same plan (an
    in-arrears subscription that starts on a stub bills the timeline's prorated stub)."""
    plan = Plan(price=price, period=term, timing=timing)
    start = first + timedelta(days=stub_days) if timing is BillingTiming.IN_ARREARS else first
    assume(start < term.after(first))
    sub = Subscription(
        id="s",
        customer_id="c",
        term=term,
        start=start,
        anchor=first,
        inventory={"t": quantity},
        renewal_inventory={"t": quantity},
        unit_prices={"t": price},
        plan=plan,
    )
    timeline = recurring(
        bills(plan, start=start, anchor=first, quantity=quantity, until=term.after(first, times=4))
    )
    # in advance the first term is charged at the start (engine/backdating), renewals bill the next ones
    expected = timeline[1:] if timing is BillingTiming.IN_ADVANCE else timeline
    for billed_on, amount, period_start, period_end in expected[:3]:
        r = renewal.renew(sub, today=billed_on)
        assert r.renewed
        (line,) = r.lines
        assert (line.amount, line.period_start, line.period_end) == (
            amount,
            period_start,
            period_end,
        )
        sub = r.subscription


@settings(max_examples=200)
@given(terms, days, prices, st.integers(0, 400))
def test_backdated_starts_agree_with_the_first_line(
    term: Period, start: date, price: Money, seen_after: int
) -> None:
    plan = Plan(price=price, period=term)
    today = start + timedelta(days=seen_after)
    decision = backdating.assess_start(start, plan=plan, today=today)
    (first,) = bills(plan, start=start, until=start)
    (line,) = first.lines
    assert decision.term_end == line.period_end
    if not decision.allowed:
        assert today >= line.period_end  # nothing left of the first term
        return
    assert (
        decision.charge
        == prorate(price, period_start=start, period_end=decision.term_end, start=today).amount
    )
    if seen_after == 0:
        assert decision.charge == line.amount


@settings(max_examples=200)
@given(terms, days, prices, st.integers(1, 20), st.integers(0, 60), st.integers(0, 90))
def test_inventory_added_during_a_stub_term_is_charged_like_the_timeline(
    term: Period, anchor: date, price: Money, quantity: int, stub_days: int, offset: int
) -> None:
    """Adding q units on the first day of a stub term charges the timeline's stub for q units;
    later in the term, the same share of the whole anchored period."""
    start = anchor + timedelta(days=stub_days)
    sub = Subscription(
        id="s",
        customer_id="c",
        term=term,
        start=start,
        anchor=anchor,
        inventory={},
        unit_prices={"t": price},
    )
    at = start + timedelta(days=offset)
    assume(at <= sub.term_end)
    line = changes.add_inventory(sub, certificate_type="t", quantity=quantity, at=at).lines[0]
    ((_billed, stub, stub_start, stub_end), *_rest) = recurring(
        bills(sub.plans["t"], start=start, anchor=anchor, quantity=quantity, until=start)
    )
    assert (stub_start, stub_end) == (start, sub.term_end)
    if at == start:
        assert line.amount == stub
    expected = prorate(
        price, period_start=sub.period_start, period_end=sub.term_end, start=at, quantity=quantity
    )
    assert line.amount == expected.amount
