"""Billing periods: N days, weeks, months or years, anchored so month ends never drift.

``Period.months(1).after(date(2024, 1, 31))`` is Feb 29, 2024: month arithmetic keeps the anchor's
day of month and clamps it to the end of a shorter month. The n-th boundary is always computed
from the anchor, never by chaining clamped dates: two months after Jan 31 is Mar 31, not the
Mar 29 that "one month after Feb 29" would give.

``after``/``before`` take a ``date`` or an aware ``datetime`` (stdlib or pendulum) and return the
same kind. On datetimes the arithmetic is on the local wall clock: one day after 10:00 on the
eve of a daylight-saving change is 10:00 the next day (23 or 25 hours later), which is what a
customer's calendar says. A wall time that does not exist (inside a spring-forward gap) moves
forward by the gap, as a clock would.

Periods print and parse as ISO 8601 durations: ``P1M``, ``P1Y``, ``P14D``, ``P2W``
(``P1Y6M`` is read as 18 months). ``service_periods`` yields the consecutive periods of a
recurrence from an anchor, N of them or without end.
"""

from __future__ import annotations

import calendar
import enum
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar, overload

import attrs

from .errors import InvalidTypeError, InvalidValueError, NaiveDatetimeError

__all__ = ["Period", "PeriodUnit", "ServicePeriod", "add_months", "service_periods"]

D = TypeVar("D", date, datetime)


class PeriodUnit(enum.StrEnum):
    """The unit of a period: day, week, month or year."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


_ISO_LETTER = {
    PeriodUnit.DAY: "D",
    PeriodUnit.WEEK: "W",
    PeriodUnit.MONTH: "M",
    PeriodUnit.YEAR: "Y",
}
_ISO_RE = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$")


def add_months(day: date, months: int) -> date:
    """``day`` moved by ``months`` calendar months, its day of month clamped to the month's end."""
    index = day.year * 12 + (day.month - 1) + months
    year, month0 = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise InvalidValueError(
            f"{months} months from {day.isoformat()} is outside the calendar", field="times"
        )
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last))


def _check_anchor(anchor: object) -> None:
    if isinstance(anchor, datetime):
        if anchor.tzinfo is None or anchor.utcoffset() is None:
            raise NaiveDatetimeError("must be timezone-aware", field="anchor", value=anchor)
    elif not isinstance(anchor, date):
        raise InvalidTypeError(
            f"must be a date or an aware datetime, not {type(anchor).__name__}",
            field="anchor",
            value=anchor,
        )


def _on_day(anchor: D, day: date) -> D:
    """``anchor`` moved to calendar ``day``, keeping its wall-clock time and timezone."""
    if not isinstance(anchor, datetime):
        return day  # D is date here
    moved = anchor.replace(year=day.year, month=day.month, day=day.day)
    if type(moved) is datetime and moved.tzinfo is not UTC:
        # stdlib zoneinfo: a wall time inside a spring-forward gap is moved forward by the gap.
        round_trip = moved.astimezone(UTC).astimezone(moved.tzinfo)
        if round_trip.replace(tzinfo=None, fold=0) != moved.replace(tzinfo=None, fold=0):
            return round_trip
    return moved


@attrs.frozen(order=False)
class Period:
    """``count`` days, weeks, months or years. Build with ``Period.months(1)`` and friends."""

    unit: PeriodUnit = attrs.field(converter=PeriodUnit)
    count: int = attrs.field()

    @count.validator
    def _check_count(self, _attribute: object, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidTypeError(
                f"must be an int, not {type(value).__name__}", field="count", value=value
            )
        if value < 1:
            raise InvalidValueError("must be at least 1", field="count", value=value)

    # -- constructors --------------------------------------------------------------------------
    @classmethod
    def days(cls, n: int) -> Period:
        return cls(PeriodUnit.DAY, n)

    @classmethod
    def weeks(cls, n: int) -> Period:
        return cls(PeriodUnit.WEEK, n)

    @classmethod
    def months(cls, n: int) -> Period:
        return cls(PeriodUnit.MONTH, n)

    @classmethod
    def years(cls, n: int) -> Period:
        return cls(PeriodUnit.YEAR, n)

    @classmethod
    def parse(cls, text: str) -> Period:
        """Read an ISO 8601 duration: ``P1M``, ``P1Y``, ``P14D``, ``P2W``, ``P1Y6M`` (18 months)."""
        if not isinstance(text, str):
            raise InvalidTypeError(
                f"must be an ISO 8601 duration string, not {type(text).__name__}",
                field="period",
                value=text,
            )
        m = _ISO_RE.match(text.strip().upper())
        if not m or not any(m.groups()):
            raise InvalidValueError(
                f"must be an ISO 8601 duration such as P1M, P1Y or P14D, not {text!r}",
                field="period",
                value=text,
            )
        years, months, weeks, days = (int(g) if g else 0 for g in m.groups())
        if not any((years, months, weeks, days)):
            raise InvalidValueError(
                f"must be a positive duration, not {text!r}", field="period", value=text
            )
        if ((years or months) and (weeks or days)) or (weeks and days):
            raise InvalidValueError(
                f"must use one kind of unit (months/years, weeks or days), not {text!r}",
                field="period",
                value=text,
            )
        if years and months:
            return cls.months(years * 12 + months)
        if years:
            return cls.years(years)
        if months:
            return cls.months(months)
        if weeks:
            return cls.weeks(weeks)
        return cls.days(days)

    def isoformat(self) -> str:
        """``P1M``, ``P1Y``, ``P14D``, ``P2W``."""
        return f"P{self.count}{_ISO_LETTER[self.unit]}"

    def __str__(self) -> str:
        return self.isoformat()

    def describe(self) -> str:
        """``1 month``, ``14 days``."""
        return f"{self.count} {self.unit.value}{'' if self.count == 1 else 's'}"

    # -- arithmetic ----------------------------------------------------------------------------
    @property
    def in_months(self) -> int | None:
        """The length in months for month/year periods, else None."""
        if self.unit is PeriodUnit.MONTH:
            return self.count
        if self.unit is PeriodUnit.YEAR:
            return 12 * self.count
        return None

    @property
    def in_days(self) -> int | None:
        """The length in days for day/week periods, else None (months vary)."""
        if self.unit is PeriodUnit.DAY:
            return self.count
        if self.unit is PeriodUnit.WEEK:
            return 7 * self.count
        return None

    def _shift(self, day: date, times: int) -> date:
        months = self.in_months
        if months is not None:
            return add_months(day, months * times)
        try:
            return day + timedelta(days=(self.in_days or 0) * times)
        except OverflowError:
            raise InvalidValueError(
                f"{self.describe()} × {times} from {day.isoformat()} is outside the calendar",
                field="times",
            ) from None

    @overload
    def after(self, anchor: datetime, times: int = 1) -> datetime: ...
    @overload
    def after(self, anchor: date, times: int = 1) -> date: ...
    def after(self, anchor: date, times: int = 1) -> date:
        """The ``times``-th period boundary after ``anchor`` (computed from the anchor)."""
        _check_anchor(anchor)
        _check_times(times)
        return _on_day(anchor, self._shift(_as_date(anchor), times))

    @overload
    def before(self, anchor: datetime, times: int = 1) -> datetime: ...
    @overload
    def before(self, anchor: date, times: int = 1) -> date: ...
    def before(self, anchor: date, times: int = 1) -> date:
        """The ``times``-th period boundary before ``anchor``."""
        _check_anchor(anchor)
        _check_times(times)
        return _on_day(anchor, self._shift(_as_date(anchor), -times))


def _as_date(anchor: date) -> date:
    return anchor.date() if isinstance(anchor, datetime) else anchor


def _check_times(times: object) -> None:
    if isinstance(times, bool) or not isinstance(times, int):
        raise InvalidTypeError(
            f"must be an int, not {type(times).__name__}", field="times", value=times
        )
    if times < 0:
        raise InvalidValueError("must not be negative", field="times", value=times)


@attrs.frozen
class ServicePeriod:
    """One period of a recurrence: ``[start, end)``, its 0-based ``index``."""

    index: int
    start: date
    end: date


def service_periods(anchor: D, period: Period, count: int | None = None) -> Iterator[ServicePeriod]:
    """The consecutive service periods of a recurrence starting at ``anchor``.

    ``count`` limits it to N occurrences; ``None`` runs until the caller stops (a subscription
    that renews until cancelled). Every boundary is ``period.after(anchor, times=i)``, so a
    monthly recurrence from Jan 31 goes Feb 29 (or 28), Mar 31, Apr 30, ... with no drift.
    """
    _check_anchor(anchor)
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int):
            raise InvalidTypeError(
                f"must be an int or None, not {type(count).__name__}", field="count", value=count
            )
        if count < 0:
            raise InvalidValueError("must not be negative", field="count", value=count)
    i = 0
    start = anchor
    while count is None or i < count:
        end = period.after(anchor, times=i + 1)
        yield ServicePeriod(i, start, end)
        start = end
        i += 1
