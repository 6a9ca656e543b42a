"""backdating.earliest_start / assess_start: SPEC 3.4 worked examples and properties."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import Decision, Money, Period
from billing_core.errors import InvalidTypeError
from billing_core.rules import backdating
from billing_core.rules.backdating import BackdateReason, assess_start, earliest_start

YEAR = Period.years(1)
TODAY = date(2026, 11, 21)
PRICE = Money("1200.00", "USD")


def test_earliest_start_examples() -> None:
    assert earliest_start(YEAR, TODAY) == date(2025, 11, 22)
    assert earliest_start(Period.months(1), date(2026, 3, 31)) == date(2026, 3, 1)  # clamps
    assert earliest_start(Period.days(30), TODAY) == date(2026, 10, 23)


def test_backdated_start_pays_what_is_left_181_of_365() -> None:
    d = assess_start(date(2026, 5, 21), term=YEAR, today=TODAY, price=PRICE)
    assert d.allowed
    assert d.reason is None
    assert d.term_end == date(2027, 5, 21)  # the term keeps its length from the chosen start
    assert d.fraction == Fraction(181, 365)
    assert d.charge == Money("595.07", "USD")  # 1200 × 181 / 365 = 595.068...
    assert "181 of its 365 days remain" in d.explanation
    assert "595.07 USD" in d.explanation
    assert isinstance(d, Decision)


def test_one_year_minus_one_day_back_is_allowed() -> None:
    d = assess_start(date(2025, 11, 22), term=YEAR, today=TODAY, price=PRICE)
    assert d.allowed
    assert d.term_end == date(2026, 11, 22)
    assert d.fraction == Fraction(1, 365)
    assert d.charge == Money("3.29", "USD")


def test_one_day_too_early_is_denied_naming_the_earliest_date() -> None:
    d = assess_start(date(2025, 11, 21), term=YEAR, today=TODAY, price=PRICE)
    assert not d.allowed
    assert d.reason is BackdateReason.BACKDATE_LIMIT_EXCEEDED
    assert str(d.reason) == "backdate_limit_exceeded"
    assert d.charge is None
    assert d.earliest_start == date(2025, 11, 22)
    assert "2025-11-22" in d.explanation
    assert "1 day earlier" in d.explanation


@pytest.mark.parametrize("start", [TODAY, TODAY + timedelta(days=10)])
def test_start_today_or_later_costs_the_full_price(start: date) -> None:
    d = assess_start(start, term=YEAR, today=TODAY, price=Money("1200.005", "USD"))
    assert d.allowed
    assert d.charge == Money("1200.01", "USD")  # rounded once, half-up
    assert d.fraction == 1


def test_monthly_term_across_a_short_month() -> None:
    d = assess_start(date(2026, 3, 1), term=Period.months(1), today=date(2026, 3, 31), price=PRICE)
    assert d.allowed
    assert d.term_end == date(2026, 4, 1)
    assert d.fraction == Fraction(1, 31)
    denied = assess_start(
        date(2026, 2, 28), term=Period.months(1), today=date(2026, 3, 31), price=PRICE
    )
    assert denied.denied
    assert denied.earliest_start == date(2026, 3, 1)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"start": datetime(2026, 5, 21)}, "$.start"),  # noqa: DTZ001
        ({"today": "2026-11-21"}, "$.today"),
        ({"term": "P1Y"}, "$.term"),
        ({"price": 1200}, "$.price"),
    ],
)
def test_bad_input_raises_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"start": date(2026, 5, 21), "term": YEAR, "today": TODAY}
    args["price"] = PRICE
    args.update(kwargs)
    start = args.pop("start")
    with pytest.raises(InvalidTypeError) as info:
        assess_start(start, **args)  # type: ignore[arg-type]
    assert info.value.field == field


def test_public_names() -> None:
    assert backdating.earliest_start is earliest_start
    assert [r.value for r in BackdateReason] == ["backdate_limit_exceeded"]


terms = st.sampled_from(
    [Period.days(1), Period.days(30), Period.weeks(2), Period.months(1), Period.months(3), YEAR]
)
days = st.dates(date(2001, 1, 1), date(2090, 12, 31))


@given(terms, days, st.integers(-800, 400))
def test_allowed_exactly_from_the_earliest_start(term: Period, today: date, offset: int) -> None:
    start = today + timedelta(days=offset)
    d = assess_start(start, term=term, today=today, price=PRICE)
    earliest = term.before(today) + timedelta(days=1)
    assert d.earliest_start == earliest
    assert d.allowed == (start >= earliest)
    assert d.term_end == term.after(start)
    if not d.allowed:
        assert d.charge is None
        assert earliest.isoformat() in d.explanation
    elif start >= today:
        assert d.charge == PRICE
    else:
        remaining = (d.term_end - today).days
        assert d.fraction == Fraction(remaining, (d.term_end - start).days)
        assert d.charge == PRICE.scale(d.fraction)
        assert d.charge <= PRICE


@given(terms, days, st.integers(1, 400), st.integers(1, 400))
def test_an_earlier_start_never_costs_more(term: Period, today: date, a: int, b: int) -> None:
    earlier, later = today - timedelta(days=max(a, b)), today - timedelta(days=min(a, b))
    first = assess_start(earlier, term=term, today=today, price=PRICE)
    second = assess_start(later, term=term, today=today, price=PRICE)
    if first.allowed:
        assert second.allowed
        assert first.charge is not None
        assert second.charge is not None
        assert first.charge <= second.charge
