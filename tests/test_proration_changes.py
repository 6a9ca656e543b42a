"""rules.changes: inventory added mid-term, renewal inventory, price and plan changes."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import InvoiceLine, InvoiceLineKind, Money, Period, Subscription
from billing_core.errors import CurrencyMismatchError, InvalidAmountError, InvalidValueError
from billing_core.rules.changes import (
    add_inventory,
    change_prices,
    change_renewal_inventory,
    inventory_addition_line,
    price_change_lines,
)


def usd(amount: str) -> Money:
    return Money(amount, "USD")


def subscription(**changes: object) -> Subscription:
    fields: dict[str, object] = {
        "id": "sub-1",
        "customer_id": "cus-1",
        "term": Period.months(1),
        "start": date(2026, 1, 1),
        "inventory": {"standard": 2},
        "renewal_inventory": {"standard": 2},
        "unit_prices": {"standard": usd("40.00"), "wildcard": usd("120.00")},
    }
    fields.update(changes)
    return Subscription(**fields)  # type: ignore[arg-type]


def test_adding_inventory_charges_unit_price_times_quantity_times_remaining() -> None:
    change = add_inventory(
        subscription(), certificate_type="wildcard", quantity=3, at=date(2026, 1, 15)
    )
    (line,) = change.lines
    assert line.kind is InvoiceLineKind.PRORATION
    assert line.amount == usd("197.42")  # 3 × 120 × 17/31 = 197.419...
    assert line.quantity == 3
    assert line.unit_price == usd("120.00")
    assert (line.period_start, line.period_end) == (date(2026, 1, 15), date(2026, 2, 1))
    assert "17 of 31 days (Jan 15 to Feb 1) of 3 × 120.00 USD = 197.42 USD" in line.description
    assert change.subscription.inventory == {"standard": 2, "wildcard": 3}
    assert change.subscription.renewal_inventory == {"standard": 2}  # untouched
    assert change.total == usd("197.42")


def test_adding_inventory_uses_the_customers_local_date() -> None:
    ny = ZoneInfo("America/New_York")
    at = datetime(2026, 1, 15, 3, 30, tzinfo=ZoneInfo("UTC"))  # Jan 14, 22:30 in New York
    change = add_inventory(
        subscription(), certificate_type="standard", quantity=1, at=at, timezone="America/New_York"
    )
    assert change.lines[0].period_start == date(2026, 1, 14)
    assert change.lines[0].amount == usd("23.23")  # 40 × 18/31
    same = add_inventory(
        subscription(), certificate_type="standard", quantity=1, at=at.astimezone(ny)
    )
    assert same.lines == change.lines


def test_renewal_inventory_costs_nothing_now() -> None:
    change = change_renewal_inventory(subscription(), inventory={"standard": 5, "wildcard": 1})
    assert change.lines == ()
    assert change.total is None
    assert change.subscription.renewal_inventory == {"standard": 5, "wildcard": 1}
    assert change.subscription.inventory == {"standard": 2}
    assert "No charge now" in change.explanation
    assert "320.00 USD" in change.explanation  # 5 × 40 + 1 × 120 at renewal


def test_price_change_is_a_credit_and_a_charge() -> None:
    credit, charge = price_change_lines(
        old_unit_price=usd("40.00"),
        new_unit_price=usd("100.00"),
        quantity=2,
        term_start=date(2026, 1, 1),
        term_end=date(2026, 2, 1),
        at=date(2026, 1, 15),
    )
    assert credit.kind is InvoiceLineKind.CREDIT
    assert credit.amount == usd("-43.87")  # 2 × 40 × 17/31 = 43.870...
    assert charge.kind is InvoiceLineKind.PRORATION
    assert charge.amount == usd("109.68")  # 2 × 100 × 17/31 = 109.677...
    assert credit.quantity == charge.quantity == 2


def test_plan_change_on_a_subscription() -> None:
    sub = subscription(inventory={"standard": 2, "wildcard": 1})
    change = change_prices(
        sub, unit_prices={"standard": usd("50.00"), "wildcard": usd("120.00")}, at=date(2026, 1, 15)
    )
    assert [line.kind for line in change.lines] == [
        InvoiceLineKind.CREDIT,
        InvoiceLineKind.PRORATION,
    ]
    assert change.total == usd("10.97")  # -43.87 + 54.84
    assert change.subscription.unit_prices["standard"] == usd("50.00")


def test_upgrade_then_downgrade_on_the_same_day_nets_to_zero() -> None:
    sub = subscription(inventory={"standard": 3})
    at = date(2026, 1, 9)
    up = change_prices(sub, unit_prices={"standard": usd("99.99")}, at=at)
    down = change_prices(up.subscription, unit_prices={"standard": usd("40.00")}, at=at)
    lines = up.lines + down.lines
    assert sum((line.amount for line in lines), usd("0")) == usd("0.00")


@pytest.mark.parametrize(
    ("call", "field", "error"),
    [
        (lambda: add_inventory(subscription(), certificate_type="ev", quantity=1, at=date(2026, 1, 5)), "$.certificate_type", InvalidValueError),
        (lambda: add_inventory(subscription(), certificate_type="standard", quantity=0, at=date(2026, 1, 5)), "$.quantity", InvalidAmountError),
        (lambda: add_inventory(subscription(), certificate_type="standard", quantity=1, at=date(2026, 2, 2)), "$.at", InvalidValueError),
        (lambda: change_prices(subscription(), unit_prices={}, at=date(2026, 1, 5)), "$.unit_prices.standard", InvalidValueError),
        (lambda: change_renewal_inventory(subscription(), inventory={"ev": 1}), "$.inventory.ev", InvalidValueError),
        (
            lambda: price_change_lines(
                old_unit_price=usd("1"), new_unit_price=Money("1", "EUR"), quantity=1,
                term_start=date(2026, 1, 1), term_end=date(2026, 2, 1), at=date(2026, 1, 2),
            ),
            "$.new_unit_price",
            CurrencyMismatchError,
        ),
    ],
)  # fmt: skip
def test_bad_input_raises_naming_the_field(
    call: object, field: str, error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        call()  # type: ignore[operator]
    assert info.value.field == field  # type: ignore[attr-defined]


# -- a chain of changes charges exactly the time-weighted sum ---------------------------------
prices = st.integers(0, 10**6).map(lambda cents: Money.from_minor_units(cents, "USD"))


@st.composite
def chains(draw: st.DrawFn) -> tuple[date, date, int, list[Money], list[date]]:
    start = draw(st.dates(date(2020, 1, 1), date(2030, 12, 31)))
    end = draw(st.sampled_from([Period.months(1), Period.years(1), Period.days(7)])).after(start)
    n = draw(st.integers(1, 3))
    days = sorted(draw(st.lists(st.dates(start, end), min_size=n, max_size=n)))
    return (
        start,
        end,
        draw(st.integers(1, 20)),
        draw(st.lists(prices, min_size=n + 1, max_size=n + 1)),
        days,
    )


@given(chains())
def test_a_chain_of_price_changes_charges_the_time_weighted_sum(
    chain: tuple[date, date, int, list[Money], list[date]],
) -> None:
    start, end, quantity, unit_prices, days = chain
    whole = (end - start).days
    sub = Subscription(
        id="s",
        customer_id="c",
        term=Period.days(whole),
        start=start,
        inventory={"seat": quantity},
        renewal_inventory={"seat": quantity},
        unit_prices={"seat": unit_prices[0]},
    )
    billed = unit_prices[0] * quantity  # the term was paid in full at its start
    exact_billed = Fraction(billed.amount)
    lines: list[InvoiceLine] = []
    for price, day in zip(unit_prices[1:], days, strict=True):
        change = change_prices(sub, unit_prices={"seat": price}, at=day)
        old = Fraction(sub.unit_prices["seat"].amount)
        remaining = Fraction((end - day).days, whole)
        if change.lines:
            credit, charge = change.lines
            # each line is its own exact figure rounded once: never built on an earlier line
            assert credit.amount == -(sub.unit_prices["seat"] * quantity).scale(remaining)
            assert charge.amount == (price * quantity).scale(remaining)
        exact_billed += (Fraction(price.amount) - old) * quantity * remaining
        lines.extend(change.lines)
        sub = change.subscription
    # the time-weighted sum: each price for the days it was in force
    bounds = [start, *days, end]
    weighted = sum(
        (
            Fraction(p.amount) * quantity * Fraction((b - a).days, whole)
            for p, a, b in zip(unit_prices, bounds, bounds[1:], strict=False)
        ),
        Fraction(0),
    )
    assert exact_billed == weighted
    total = sum((line.amount for line in lines), billed)
    assert abs(Fraction(total.amount) - weighted) <= Fraction(1, 200) * len(lines)


@given(st.integers(1, 50), prices, st.dates(date(2020, 1, 1), date(2030, 1, 1)), st.data())
def test_inventory_addition_matches_the_formula(
    quantity: int, unit: Money, start: date, data: st.DataObject
) -> None:
    end = Period.years(1).after(start)
    at = data.draw(st.dates(start, end))
    line = inventory_addition_line(
        unit_price=unit, quantity=quantity, term_start=start, term_end=end, at=at
    )
    expected = (unit * quantity).scale(Fraction((end - at).days, (end - start).days))
    assert line.amount == expected
    assert line.quantity == Decimal(quantity)
    assert line.period_start == at
    assert at - start < timedelta(days=367)
