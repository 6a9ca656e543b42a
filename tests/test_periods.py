"""Periods: month-end anchoring, the n-th boundary from the anchor, local wall-clock arithmetic."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pendulum
import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import BillingError, NaiveDatetimeError, Period, PeriodUnit, service_periods
from billing_core.errors import InvalidTypeError
from billing_core.testing import strategies as bst

NY = ZoneInfo("America/New_York")


class TestContract:
    def test_spec_examples(self) -> None:
        assert Period.months(1).after(date(2024, 1, 31)) == date(2024, 2, 29)
        assert Period.months(2).after(date(2024, 1, 31)) == date(2024, 3, 31)
        assert Period.years(1).before(date(2026, 11, 21)) == date(2025, 11, 21)
        assert Period.months(1).after(date(2024, 1, 31), times=3) == date(2024, 4, 30)


@pytest.mark.parametrize(
    ("period", "anchor", "times", "expected"),
    [
        # Jan 31 anchors, leap and non-leap
        (Period.months(1), date(2023, 1, 31), 1, date(2023, 2, 28)),
        (Period.months(1), date(2024, 1, 31), 1, date(2024, 2, 29)),
        (Period.months(1), date(2023, 1, 31), 2, date(2023, 3, 31)),
        (Period.months(1), date(2023, 1, 31), 3, date(2023, 4, 30)),
        (Period.months(1), date(2023, 1, 31), 12, date(2024, 1, 31)),
        (Period.months(1), date(2023, 1, 31), 13, date(2024, 2, 29)),
        # Feb 29 anchors
        (Period.years(1), date(2024, 2, 29), 1, date(2025, 2, 28)),
        (Period.years(1), date(2024, 2, 29), 4, date(2028, 2, 29)),
        (Period.months(12), date(2024, 2, 29), 1, date(2025, 2, 28)),
        (Period.months(1), date(2024, 2, 29), 1, date(2024, 3, 29)),
        # Dec 31 anchors across the year end
        (Period.months(1), date(2024, 12, 31), 1, date(2025, 1, 31)),
        (Period.months(2), date(2024, 12, 31), 1, date(2025, 2, 28)),
        (Period.months(2), date(2023, 12, 31), 1, date(2024, 2, 29)),
        (Period.months(3), date(2024, 12, 31), 1, date(2025, 3, 31)),
        (Period.months(6), date(2024, 12, 31), 1, date(2025, 6, 30)),
        # days and weeks
        (Period.days(14), date(2024, 2, 20), 1, date(2024, 3, 5)),
        (Period.days(14), date(2023, 2, 20), 1, date(2023, 3, 6)),
        (Period.weeks(2), date(2024, 12, 25), 2, date(2025, 1, 22)),
        (Period.days(1), date(2024, 2, 28), 1, date(2024, 2, 29)),
        (Period.months(1), date(2024, 5, 15), 0, date(2024, 5, 15)),
    ],
)
def test_after_worked_examples(period: Period, anchor: date, times: int, expected: date) -> None:
    assert period.after(anchor, times=times) == expected


@pytest.mark.parametrize(
    ("period", "anchor", "times", "expected"),
    [
        (Period.months(1), date(2024, 3, 31), 1, date(2024, 2, 29)),
        (Period.months(1), date(2023, 3, 31), 1, date(2023, 2, 28)),
        (Period.months(1), date(2026, 3, 31), 1, date(2026, 2, 28)),
        (Period.years(1), date(2028, 2, 29), 1, date(2027, 2, 28)),
        (Period.years(1), date(2026, 11, 21), 1, date(2025, 11, 21)),
        (Period.months(1), date(2025, 1, 31), 1, date(2024, 12, 31)),
        (Period.days(30), date(2026, 3, 1), 1, date(2026, 1, 30)),
    ],
)
def test_before_worked_examples(period: Period, anchor: date, times: int, expected: date) -> None:
    assert period.before(anchor, times=times) == expected


class TestDatetimes:
    def test_keeps_wall_clock_time_across_dst(self) -> None:
        # New York springs forward on 2026-03-08: one day later is 23 hours later, same wall time.
        start = datetime(2026, 3, 7, 10, 0, tzinfo=NY)
        end = Period.days(1).after(start)
        assert end == datetime(2026, 3, 8, 10, 0, tzinfo=NY)
        assert end - start == timedelta(hours=23) or (
            end.astimezone(UTC) - start.astimezone(UTC)
        ) == timedelta(hours=23)

    def test_wall_time_inside_the_gap_moves_forward(self) -> None:
        moved = Period.days(1).after(datetime(2026, 3, 7, 2, 30, tzinfo=NY))
        assert (moved.hour, moved.minute, moved.utcoffset()) == (3, 30, timedelta(hours=-4))

    def test_month_end_on_datetimes(self) -> None:
        start = datetime(2024, 1, 31, 23, 30, tzinfo=NY)
        assert Period.months(1).after(start) == datetime(2024, 2, 29, 23, 30, tzinfo=NY)

    def test_pendulum_datetimes(self) -> None:
        start = pendulum.datetime(2024, 1, 31, 9, 0, tz="Europe/London")
        result = Period.months(2).after(start)
        assert isinstance(result, datetime)
        assert result == pendulum.datetime(2024, 3, 31, 9, 0, tz="Europe/London")

    def test_naive_refused(self) -> None:
        with pytest.raises(NaiveDatetimeError) as info:
            Period.days(1).after(datetime(2026, 1, 1))  # noqa: DTZ001
        assert info.value.field == "$.anchor"
        assert isinstance(info.value, ValueError)


class TestValidation:
    @pytest.mark.parametrize("count", [0, -1])
    def test_count_positive(self, count: int) -> None:
        with pytest.raises(BillingError, match="at least 1"):
            Period.months(count)

    @pytest.mark.parametrize("count", [1.0, True, "1"])
    def test_count_type(self, count: object) -> None:
        with pytest.raises(InvalidTypeError):
            Period.months(count)  # type: ignore[arg-type]

    def test_times(self) -> None:
        with pytest.raises(BillingError, match="negative"):
            Period.days(1).after(date(2026, 1, 1), times=-1)
        with pytest.raises(InvalidTypeError):
            Period.days(1).after("2026-01-01")  # type: ignore[call-overload]

    def test_outside_calendar(self) -> None:
        with pytest.raises(BillingError, match="outside the calendar"):
            Period.years(1).after(date(9999, 6, 1))
        with pytest.raises(BillingError, match="outside the calendar"):
            Period.days(1).after(date(9999, 12, 31))


class TestIso8601:
    @pytest.mark.parametrize(
        ("text", "period"),
        [
            ("P1M", Period.months(1)),
            ("P1Y", Period.years(1)),
            ("P14D", Period.days(14)),
            ("P2W", Period.weeks(2)),
            ("P1Y6M", Period.months(18)),
            ("p3m", Period.months(3)),
        ],
    )
    def test_parse(self, text: str, period: Period) -> None:
        assert Period.parse(text) == period

    @pytest.mark.parametrize(
        "text", ["", "P", "1M", "P1M2D", "P1W2D", "PT1H", "P0D", "P-1M", "P1.5M"]
    )
    def test_parse_refuses(self, text: str) -> None:
        with pytest.raises(BillingError) as info:
            Period.parse(text)
        assert info.value.field == "$.period"

    @given(bst.periods())
    def test_round_trip(self, period: Period) -> None:
        assert Period.parse(period.isoformat()) == period
        assert str(period) == period.isoformat()

    def test_describe(self) -> None:
        assert Period.months(1).describe() == "1 month"
        assert Period.days(14).describe() == "14 days"
        assert Period(PeriodUnit.YEAR, 2).describe() == "2 years"


class TestProperties:
    @given(bst.periods(), bst.dates(max_value=date(2150, 1, 1)), st.integers(0, 40))
    def test_after_then_before_returns_to_an_anchored_date(
        self, period: Period, anchor: date, times: int
    ) -> None:
        later = period.after(anchor, times=times)
        back = period.before(later, times=times)
        if period.in_days is not None or anchor.day <= 28:
            assert back == anchor  # no clamping possible: exact inverse
        else:
            # clamped at a month end: back lands on the anchor, or on the end of a shorter month
            assert back <= anchor
            assert (back.year, back.month) == (anchor.year, anchor.month)
            assert back.day == later.day or back == anchor

    @given(bst.periods(max_count=14), bst.dates(max_value=date(2150, 1, 1)), st.integers(1, 30))
    def test_boundaries_never_drift(self, period: Period, anchor: date, n: int) -> None:
        boundary = period.after(anchor, times=n)
        months = period.in_months
        if months is not None:
            # the day of month is the anchor's, clamped to the month's length; never less
            import calendar

            last = calendar.monthrange(boundary.year, boundary.month)[1]
            assert boundary.day == min(anchor.day, last)
        else:
            assert (boundary - anchor).days == n * (period.in_days or 0)

    @given(bst.periods(max_count=14), bst.aware_datetimes(), st.integers(0, 24))
    def test_datetimes_follow_their_local_date(
        self, period: Period, anchor: datetime, n: int
    ) -> None:
        result = period.after(anchor, times=n)
        assert result.tzinfo is anchor.tzinfo
        assert result.date() == period.after(anchor.date(), times=n)


class TestServicePeriods:
    def test_month_end_recurrence_without_drift(self) -> None:
        spans = list(service_periods(date(2024, 1, 31), Period.months(1), count=5))
        assert [(s.start, s.end) for s in spans] == [
            (date(2024, 1, 31), date(2024, 2, 29)),
            (date(2024, 2, 29), date(2024, 3, 31)),
            (date(2024, 3, 31), date(2024, 4, 30)),
            (date(2024, 4, 30), date(2024, 5, 31)),
            (date(2024, 5, 31), date(2024, 6, 30)),
        ]
        assert [s.index for s in spans] == [0, 1, 2, 3, 4]

    def test_open_ended(self) -> None:
        spans = list(itertools.islice(service_periods(date(2023, 12, 31), Period.months(2)), 100))
        assert len(spans) == 100
        assert spans[-1].end == date(2040, 8, 31)

    def test_zero_and_bad_counts(self) -> None:
        assert list(service_periods(date(2024, 1, 1), Period.days(1), count=0)) == []
        with pytest.raises(BillingError):
            list(service_periods(date(2024, 1, 1), Period.days(1), count=-1))

    @given(bst.periods(), bst.dates(max_value=date(2100, 1, 1)), st.integers(1, 30))
    def test_contiguous(self, period: Period, anchor: date, count: int) -> None:
        spans = list(service_periods(anchor, period, count=count))
        assert len(spans) == count
        assert spans[0].start == anchor
        for a, b in itertools.pairwise(spans):
            assert a.end == b.start and a.start < a.end
