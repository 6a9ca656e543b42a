"""proration.prorate: worked examples to the cent, day-count conventions, bad input, properties."""

from __future__ import annotations

import itertools
import pickle
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import BillingError, Money, Period
from billing_core.errors import InvalidTypeError, InvalidValueError, NaiveDatetimeError
from billing_core.money import _scaled
from billing_core.rules import proration
from billing_core.rules.proration import DayCount, prorate

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
KOLKATA = ZoneInfo("Asia/Kolkata")
ZONES = [NY, LONDON, LORD_HOWE, KOLKATA]
USD = "USD"


def usd(amount: str) -> Money:
    return Money(amount, USD)


# -- worked examples -------------------------------------------------------------------------
def test_jan_15_to_feb_1_of_a_monthly_price_is_17_31() -> None:
    r = prorate(
        usd("120.00"),
        period_start=date(2026, 1, 1),
        period_end=date(2026, 2, 1),
        start=date(2026, 1, 15),
    )
    assert r.fraction == Fraction(17, 31)
    assert r.amount == usd("65.81")  # 120 × 17 / 31 = 65.806...
    assert r.explanation == "17 of 31 days (Jan 15 to Feb 1) of 120.00 USD = 65.81 USD"
    assert (r.part, r.whole, r.unit) == (Decimal(17), Decimal(31), "day")
    assert r.end == date(2026, 2, 1)  # end defaults to the period end


def test_leap_year_february() -> None:
    r = prorate(
        usd("29.00"),
        period_start=date(2024, 2, 1),
        period_end=date(2024, 3, 1),
        start=date(2024, 2, 10),
    )
    assert r.fraction == Fraction(20, 29)
    assert r.amount == usd("20.00")
    r = prorate(
        usd("100.00"),
        period_start=date(2024, 2, 1),
        period_end=date(2024, 3, 1),
        start=date(2024, 2, 29),
    )
    assert r.fraction == Fraction(1, 29)
    assert r.amount == usd("3.45")  # 3.448...


def test_annual_term_across_feb_29() -> None:
    r = prorate(
        usd("365.00"),
        period_start=date(2023, 6, 1),
        period_end=date(2024, 6, 1),
        start=date(2024, 2, 28),
    )
    assert r.whole == 366  # the leap day is in the term
    assert r.fraction == Fraction(94, 366)
    assert r.amount == usd("93.74")  # 365 × 94 / 366 = 93.743...
    assert r.explanation == "94 of 366 days (Feb 28 to Jun 1) of 365.00 USD = 93.74 USD"


def test_term_starting_jan_31() -> None:
    start = date(2024, 1, 31)
    end = Period.months(1).after(start)
    assert end == date(2024, 2, 29)
    r = prorate(usd("50.00"), period_start=start, period_end=end, start=date(2024, 2, 15))
    assert r.fraction == Fraction(14, 29)
    assert r.amount == usd("24.14")  # 24.137...
    # the second month runs Feb 29 to Mar 31 (from the anchor): 31 days
    second_end = Period.months(2).after(start)
    r = prorate(usd("50.00"), period_start=end, period_end=second_end, start=date(2024, 3, 16))
    assert r.fraction == Fraction(15, 31)
    assert r.amount == usd("24.19")


def test_quantity_multiplies_the_unit_price() -> None:
    r = prorate(
        usd("40.00"),
        quantity=3,
        period_start=date(2026, 1, 1),
        period_end=date(2026, 2, 1),
        start=date(2026, 1, 15),
    )
    assert r.amount == usd("65.81")
    assert r.explanation == "17 of 31 days (Jan 15 to Feb 1) of 3 × 40.00 USD = 65.81 USD"


def test_an_explicit_end_and_a_span_across_years() -> None:
    r = prorate(
        usd("365.00"),
        period_start=date(2025, 7, 1),
        period_end=date(2026, 7, 1),
        start=date(2025, 12, 15),
        end=date(2026, 1, 15),
    )
    assert r.fraction == Fraction(31, 365)
    assert r.amount == usd("31.00")
    assert "(Dec 15, 2025 to Jan 15, 2026)" in r.explanation


def test_rounding_is_half_up_once() -> None:
    # 0.05 × 1 / 2 = 0.025: half-up gives 0.03 (half-even would give 0.02)
    r = prorate(
        usd("0.05"),
        period_start=date(2026, 1, 1),
        period_end=date(2026, 1, 3),
        start=date(2026, 1, 2),
    )
    assert r.amount == usd("0.03")
    # three decimals of precision in the unit price survive until the one rounding
    r = prorate(
        usd("0.015"),
        quantity=100,
        period_start=date(2026, 1, 1),
        period_end=date(2026, 1, 3),
        start=date(2026, 1, 2),
    )
    assert r.amount == usd("0.75")
    assert prorate(
        Money(1000, "JPY"),
        period_start=date(2026, 1, 1),
        period_end=date(2026, 2, 1),
        start=date(2026, 1, 15),
    ).amount == Money(548, "JPY")
    assert prorate(
        Money("1.000", "KWD"),
        period_start=date(2026, 1, 1),
        period_end=date(2026, 2, 1),
        start=date(2026, 1, 15),
    ).amount == Money("0.548", "KWD")


def test_a_negative_amount_rounds_symmetrically_and_never_to_minus_zero() -> None:
    r = prorate(
        usd("-120.00"),
        period_start=date(2026, 1, 1),
        period_end=date(2026, 2, 1),
        start=date(2026, 1, 15),
    )
    assert r.amount == usd("-65.81")
    r = prorate(
        usd("-0.001"),
        period_start=date(2026, 1, 1),
        period_end=date(2026, 2, 1),
        start=date(2026, 1, 15),
    )
    assert str(r.amount) == "0.00 USD"


def test_empty_part_costs_nothing_and_full_period_costs_the_price() -> None:
    kw = {"period_start": date(2026, 1, 1), "period_end": date(2026, 2, 1)}
    assert prorate(usd("9.99"), start=date(2026, 2, 1), **kw).amount == usd("0.00")  # type: ignore[arg-type]
    assert prorate(usd("9.99"), start=date(2026, 1, 1), **kw).amount == usd("9.99")  # type: ignore[arg-type]


# -- day-count conventions -------------------------------------------------------------------
def test_actual_counts_a_late_evening_start_from_its_local_day() -> None:
    r = prorate(
        usd("120.00"),
        period_start=datetime(2026, 1, 1, tzinfo=NY),
        period_end=datetime(2026, 2, 1, tzinfo=NY),
        start=datetime(2026, 1, 14, 23, 30, tzinfo=NY),
    )
    assert r.fraction == Fraction(18, 31)  # from Jan 14, although it is Jan 15 in UTC
    assert r.amount == usd("69.68")


def test_actual_takes_each_datetime_in_its_own_timezone() -> None:
    start = datetime(2026, 1, 14, 23, 30, tzinfo=NY).astimezone(ZoneInfo("UTC"))  # Jan 15 04:30
    r = prorate(
        usd("120.00"), period_start=date(2026, 1, 1), period_end=date(2026, 2, 1), start=start
    )
    assert r.fraction == Fraction(17, 31)


def test_inclusive_counts_every_day_touched() -> None:
    r = prorate(
        usd("32.00"),
        period_start=datetime(2026, 5, 1, tzinfo=NY),
        period_end=datetime(2026, 7, 1, tzinfo=NY),
        start=datetime(2026, 5, 20, 10, tzinfo=NY),
        end=datetime(2026, 6, 20, 10, tzinfo=NY),
        day_count=DayCount.INCLUSIVE,
    )
    assert (r.part, r.whole) == (Decimal(32), Decimal(61))
    assert r.explanation.startswith("32 of 61 days (May 20 to Jun 20, both included)")
    # the same span under ACTUAL is 31 days
    r = prorate(
        usd("32.00"),
        period_start=datetime(2026, 5, 1, tzinfo=NY),
        period_end=datetime(2026, 7, 1, tzinfo=NY),
        start=datetime(2026, 5, 20, 10, tzinfo=NY),
        end=datetime(2026, 6, 20, 10, tzinfo=NY),
    )
    assert r.part == 31


def test_inclusive_period_ending_at_midnight_does_not_touch_the_next_day() -> None:
    r = prorate(
        usd("91.00"),
        period_start=datetime(2026, 4, 1, tzinfo=LONDON),
        period_end=datetime(2026, 7, 1, tzinfo=LONDON),
        start=datetime(2026, 4, 1, tzinfo=LONDON),
        day_count="inclusive",
    )
    assert r.whole == 91
    assert r.amount == usd("91.00")


@given(
    st.dates(date(2000, 1, 1), date(2090, 1, 1)),
    st.integers(1, 400),
    st.data(),
)
def test_with_plain_dates_inclusive_equals_actual(
    first: date, days: int, data: st.DataObject
) -> None:
    last = first + timedelta(days=days)
    a = data.draw(st.dates(first, last))
    b = data.draw(st.dates(a, last))
    kw = {"period_start": first, "period_end": last, "start": a, "end": b}
    actual = prorate(usd("99.99"), **kw)  # type: ignore[arg-type]
    inclusive = prorate(usd("99.99"), day_count=DayCount.INCLUSIVE, **kw)  # type: ignore[arg-type]
    seconds = prorate(usd("99.99"), day_count=DayCount.SECONDS, **kw)  # type: ignore[arg-type]
    assert actual.fraction == inclusive.fraction == seconds.fraction == Fraction((b - a).days, days)
    assert actual.amount == inclusive.amount == seconds.amount


def test_seconds_counts_elapsed_time_across_a_dst_change() -> None:
    r = prorate(
        usd("31.00"),
        period_start=datetime(2026, 3, 1, tzinfo=NY),
        period_end=datetime(2026, 4, 1, tzinfo=NY),
        start=datetime(2026, 3, 8, tzinfo=NY),
        end=datetime(2026, 3, 9, tzinfo=NY),
        day_count=DayCount.SECONDS,
    )
    assert r.part == 23 * 3600  # spring forward: the day has 23 hours
    assert r.whole == 31 * 86400 - 3600
    assert r.unit == "second"
    assert r.fraction == Fraction(23 * 3600, 31 * 86400 - 3600)
    assert r.explanation.startswith("82,800 of 2,674,800 seconds (2026-03-08T00:00:00-05:00")


def test_seconds_keeps_microseconds() -> None:
    r = prorate(
        usd("10.00"),
        period_start=datetime(2026, 1, 1, tzinfo=LONDON),
        period_end=datetime(2026, 1, 1, 0, 0, 2, tzinfo=LONDON),
        start=datetime(2026, 1, 1, 0, 0, 1, 500_000, tzinfo=LONDON),
        day_count="seconds",
    )
    assert r.part == Decimal("0.5")
    assert r.fraction == Fraction(1, 4)
    assert r.amount == usd("2.50")


# -- bad input ---------------------------------------------------------------------------------
GOOD = {
    "period_start": date(2026, 1, 1),
    "period_end": date(2026, 2, 1),
    "start": date(2026, 1, 15),
}


@pytest.mark.parametrize(
    ("changes", "field", "error"),
    [
        ({"start": date(2025, 12, 31)}, "$.start", InvalidValueError),
        ({"start": date(2026, 2, 2)}, "$.start", InvalidValueError),
        ({"end": date(2026, 2, 2)}, "$.end", InvalidValueError),
        ({"end": date(2026, 1, 14)}, "$.end", InvalidValueError),
        (
            {"period_end": date(2026, 1, 1), "start": date(2026, 1, 1)},
            "$.period_end",
            InvalidValueError,
        ),
        ({"start": datetime(2026, 1, 15)}, "$.start", NaiveDatetimeError),  # noqa: DTZ001
        ({"period_start": "2026-01-01"}, "$.period_start", InvalidTypeError),
        ({"day_count": "30/360"}, "$.day_count", InvalidValueError),
        ({"quantity": -1}, "$.quantity", InvalidValueError),
        ({"quantity": 1.5}, "$.quantity", InvalidTypeError),
        ({"quantity": True}, "$.quantity", InvalidTypeError),
        (
            {"day_count": "seconds", "start": datetime(2026, 1, 15, tzinfo=NY)},
            "$.period_start",
            InvalidTypeError,
        ),
    ],
)
def test_bad_input_raises_naming_the_field(
    changes: dict[str, object], field: str, error: type[BillingError]
) -> None:
    with pytest.raises(error) as info:
        prorate(usd("10.00"), **{**GOOD, **changes})  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize("amount", [Decimal("10.00"), 10, "10.00", 10.0])
def test_amount_must_be_money(amount: object) -> None:
    with pytest.raises(InvalidTypeError) as info:
        prorate(amount, **GOOD)  # type: ignore[arg-type]
    assert info.value.field == "$.amount"


def test_a_datetime_after_the_period_end_on_the_same_day_is_outside() -> None:
    with pytest.raises(InvalidValueError) as info:
        prorate(
            usd("10.00"),
            period_start=datetime(2026, 1, 1, tzinfo=NY),
            period_end=datetime(2026, 2, 1, tzinfo=NY),
            start=datetime(2026, 2, 1, 3, tzinfo=NY),
        )
    assert info.value.field == "$.start"


# -- the result value --------------------------------------------------------------------------
def test_result_is_an_immutable_value() -> None:
    r = prorate(usd("120.00"), **GOOD)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        r.amount = usd("1.00")  # type: ignore[misc]
    assert r == prorate(usd("120.00"), **GOOD)  # type: ignore[arg-type]
    assert pickle.loads(pickle.dumps(r)) == r
    assert r.day_count is DayCount.ACTUAL
    assert "65.81" in repr(r)
    assert proration.DayCount("actual") == "actual"
    assert [m.value for m in DayCount] == ["actual", "inclusive", "seconds"]


# -- properties ----------------------------------------------------------------------------------
amounts = st.builds(
    lambda units, cur: Money.from_minor_units(units, cur),
    st.integers(0, 10**9),
    st.sampled_from(["USD", "JPY", "KWD", "EUR"]),
)
terms = st.sampled_from([Period.days(14), Period.months(1), Period.months(3), Period.years(1)])


@st.composite
def split_periods(draw: st.DrawFn) -> tuple[date, date, list[date]]:
    start = draw(st.dates(date(1999, 1, 1), date(2090, 12, 31)))
    end = draw(terms).after(start)
    cuts = draw(st.lists(st.dates(start, end), max_size=6))
    return start, end, [start, *sorted(cuts), end]


@given(amounts, split_periods())
def test_parts_of_a_split_sum_to_the_price(
    price: Money, split: tuple[date, date, list[date]]
) -> None:
    start, end, bounds = split
    parts = [
        prorate(price, period_start=start, period_end=end, start=a, end=b)
        for a, b in itertools.pairwise(bounds)
    ]
    assert sum((p.fraction for p in parts), Fraction(0)) == 1
    total = sum((p.amount for p in parts[1:]), parts[0].amount)
    minor = Money.from_minor_units(1, price.currency).amount
    assert abs(total.amount - price.amount) <= minor * len(parts) / 2
    # exactly after allocation by the same fractions
    allocated = price.allocate([p.fraction for p in parts])
    assert sum(allocated[1:], allocated[0]) == price
    for part, share in zip(parts, allocated, strict=True):
        assert abs(part.amount.amount - share.amount) <= minor


@given(amounts, st.dates(date(1999, 1, 1), date(2090, 12, 31)), terms)
def test_the_full_period_costs_the_full_price(price: Money, start: date, term: Period) -> None:
    r = prorate(price, period_start=start, period_end=term.after(start), start=start)
    assert r.fraction == 1
    assert r.amount == price


@given(amounts, split_periods())
def test_proration_is_monotonic_in_the_parts_length(
    price: Money, split: tuple[date, date, list[date]]
) -> None:
    start, end, bounds = split
    charges = [prorate(price, period_start=start, period_end=end, start=b).amount for b in bounds]
    # later starts leave shorter parts: never a larger charge
    assert all(a >= b for a, b in itertools.pairwise(charges))


@given(
    st.integers(-(10**12), 10**12),
    st.integers(0, 8),
    st.sampled_from(["USD", "JPY", "KWD"]),
    st.integers(0, 5000),
    st.integers(1, 5000),
    st.integers(1, 99),
)
def test_agrees_with_exact_fraction_scaling(
    mantissa: int, scale: int, currency: str, part: int, whole: int, quantity: int
) -> None:
    part = min(part, whole)
    first = date(2020, 1, 1)
    amount = Money(Decimal(mantissa).scaleb(-scale), currency)
    r = prorate(
        amount,
        quantity=quantity,
        period_start=first,
        period_end=first + timedelta(days=whole),
        start=first + timedelta(days=whole - part),
    )
    expected = _scaled(amount.amount, currency, part * quantity, whole, "ROUND_HALF_UP")
    assert r.amount == expected
    assert str(r.amount.amount) == str(expected.amount)


@st.composite
def local_spans(draw: st.DrawFn) -> tuple[ZoneInfo, datetime, datetime, datetime]:
    zone = draw(st.sampled_from(ZONES))
    day = draw(st.dates(date(2023, 1, 1), date(2028, 12, 31)))
    first = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = Period.months(draw(st.integers(1, 12))).after(first)
    hour = draw(st.integers(0, 23))
    offset = draw(st.integers(0, (end.date() - day).days))
    middle = datetime.combine(day + timedelta(days=offset), datetime.min.time(), tzinfo=zone)
    middle = middle.replace(hour=hour)
    middle = min(max(middle, first), end)
    return zone, first, middle, end


@given(local_spans())
def test_local_days_across_dst_and_leap_days_neither_skip_nor_double_count(
    span: tuple[ZoneInfo, datetime, datetime, datetime],
) -> None:
    _zone, first, middle, end = span
    whole_days = (end.date() - first.date()).days
    left = prorate(usd("100.00"), period_start=first, period_end=end, start=first, end=middle)
    right = prorate(usd("100.00"), period_start=first, period_end=end, start=middle)
    assert left.whole == right.whole == whole_days
    assert left.part + right.part == whole_days  # every local day counted exactly once
    assert left.part == (middle.date() - first.date()).days


@given(local_spans())
def test_inclusive_counts_each_touched_local_day_once(
    span: tuple[ZoneInfo, datetime, datetime, datetime],
) -> None:
    _zone, first, middle, end = span
    r = prorate(
        usd("100.00"),
        period_start=first,
        period_end=end,
        start=middle,
        day_count=DayCount.INCLUSIVE,
    )
    touched = {(first.date() + timedelta(days=i)) for i in range((end.date() - first.date()).days)}
    expected = sum(1 for d in touched if d >= middle.date())
    assert r.part == expected
    assert r.whole == len(touched)


def test_benchmark_script_runs_small_and_agrees_with_the_bare_loop(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "benchmarks" / "proration.py"
    spec = importlib.util.spec_from_file_location("bench_proration", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--n", "2000", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "decisions/s" in out
    assert "results differing:                0" in out
