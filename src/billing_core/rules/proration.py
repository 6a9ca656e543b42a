"""Proration: what a part of a billing period costs (SPEC 3.3).

``prorate(price, period_start=, period_end=, start=, end=None)`` charges ``price × part / whole``,
where *whole* is the full period ``[period_start, period_end)`` that contains the part
``[start, end)`` (``end`` defaults to the period's end: "from now until the end of the term").
The charge is computed exactly and rounded once, half-up, to the currency's minor units.

How *part* and *whole* are measured is a named convention, :class:`DayCount`:

* ``ACTUAL`` (the default): local calendar days, end exclusive, ``(date(end) − date(start)).days``,
  each datetime's date taken in its own timezone and the time of day ignored. Jan 15 to Feb 1
  inside Jan 1 to Feb 1 is 17/31; a start at 23:30 on Jan 14 in New York counts from Jan 14.
* ``INCLUSIVE``: every local calendar day the half-open span ``[start, end)`` touches counts.
  10:00 on May 20 to 10:00 on June 20 touches 32 days; a span ending at midnight does not touch
  the next day (Apr 1 to Jul 1 is 91 days). A plain date stands for its midnight, so with plain
  dates ``INCLUSIVE`` equals ``ACTUAL``.
* ``SECONDS``: exact elapsed time between instants (to the microsecond), whatever the calendar
  and daylight-saving changes say. Needs aware datetimes for all four bounds (or plain dates
  for all four, which then count whole days of 86,400 seconds).

Bounds are plain ``date``s or timezone-aware ``datetime``s; they may be mixed under the two
day conventions. Bad input raises a ``BillingError`` subclass naming the field: an amount that
is not ``Money``, a naive datetime, a part outside its period, an end before the start.

The result is a :class:`Proration`: ``.amount`` (the rounded charge), ``.fraction`` (the exact
``part / whole``), ``.explanation`` (a sentence with the figures) and the measured inputs. Only
``.amount`` is computed eagerly; the fraction and the sentence are built when first read, which
keeps a million plain-date prorations a second within reach (see ``benchmarks/proration.py``).
"""

from __future__ import annotations

import decimal
import enum
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Final, NamedTuple

from ..currencies import MINOR_UNITS
from ..errors import InvalidAmountError, InvalidTypeError, InvalidValueError
from ..money import (
    _PRODUCT_MULTIPLY,
    _QUANTA,
    _QUOTIENT_DIVIDE,
    _QUOTIENT_QUANTIZE,
    _SET_AMOUNT,
    _SET_CURRENCY,
    _ZEROS,
    Money,
    _scaled_half_up,
)
from ..timeutil import require_aware

__all__ = ["DayCount", "Proration", "prorate"]


class DayCount(enum.StrEnum):
    """How the part and the whole of a proration are measured."""

    ACTUAL = "actual"
    INCLUSIVE = "inclusive"
    SECONDS = "seconds"


_ACTUAL: Final = DayCount.ACTUAL
_INCLUSIVE: Final = DayCount.INCLUSIVE
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US_PER_DAY: Final = 86_400 * 1_000_000
_FIELDS: Final = ("period_start", "period_end", "start", "end")


class Proration(NamedTuple):
    """The answer of :func:`prorate`: an immutable record, compared by value.

    * ``amount``: the charge, rounded half-up once to minor units (``Money``).
    * ``fraction``: ``part / whole`` as an exact ``Fraction`` (17/31), built on first read.
    * ``explanation``: ``"17 of 31 days (Jan 15 to Feb 1) of 120.00 USD = 65.81 USD"``, built on
      read.
    * ``part_days``/``whole_days`` style figures: ``part`` and ``whole`` in ``unit``s
      (``"day"`` or ``"second"``) as ``Decimal`` (seconds may carry microseconds).
    * the inputs: ``price`` (of one unit for the whole period), ``quantity``, ``start``,
      ``end`` (filled in with ``period_end`` when omitted), ``period_start``, ``period_end``,
      ``day_count``.
    """

    amount: Money
    raw_part: int  # days, or microseconds when unit is "second"
    raw_whole: int
    price: Money
    quantity: int
    start: date
    end: date
    period_start: date
    period_end: date
    day_count: DayCount
    unit: str = "day"

    @property
    def fraction(self) -> Fraction:
        """``part / whole``, exact."""
        return Fraction(self.raw_part, self.raw_whole)

    @property
    def part(self) -> Decimal:
        """The length of the part, in ``unit``s."""
        return self._in_units(self.raw_part)

    @property
    def whole(self) -> Decimal:
        """The length of the whole period, in ``unit``s."""
        return self._in_units(self.raw_whole)

    def _in_units(self, raw: int) -> Decimal:
        if self.unit == "day":
            return Decimal(raw)
        if raw % 1_000_000:
            return Decimal(raw).scaleb(-6).normalize()
        return Decimal(raw // 1_000_000)

    @property
    def explanation(self) -> str:
        """One sentence with the figures, built on read."""
        quantity, price = self.quantity, self.price
        what = f"{quantity} × {price}" if quantity != 1 else f"{price}"
        if self.unit == "day":
            span = _date_span(self.start, self.end, self.day_count)
            part, whole = self.raw_part, self.raw_whole
            days = f"day{'' if whole == 1 else 's'}"
            return f"{part} of {whole} {days} ({span}) of {what} = {self.amount}"
        return (
            f"{_seconds(self.part)} of {_seconds(self.whole)} seconds "
            f"({_iso(self.start)} to {_iso(self.end)}) of {what} = {self.amount}"
        )


_new_result: Final = tuple.__new__
_new_money: Final = object.__new__


def prorate(
    amount: Money,
    *,
    period_start: date,
    period_end: date,
    start: date,
    end: date | None = None,
    day_count: DayCount | str = DayCount.ACTUAL,
    quantity: int = 1,
) -> Proration:
    """``amount × quantity × part / whole``, rounded once; see the module docstring.

    ``amount`` is the price of one unit for the whole period ``[period_start, period_end)``;
    ``[start, end)`` is the part being charged (``end`` defaults to ``period_end``).
    ``quantity`` (an int, 1 by default) multiplies the price: line price = quantity × unit price.

    >>> prorate(Money("120.00", "USD"), period_start=date(2026, 1, 1),
    ...         period_end=date(2026, 2, 1), start=date(2026, 1, 15)).amount
    Money('65.81', 'USD')
    """
    if end is None:
        end = period_end
    # Fast path: plain dates and the day conventions (they agree on plain dates).
    if (
        type(start) is date
        and type(end) is date
        and type(period_start) is date
        and type(period_end) is date
        and type(amount) is Money
        and type(quantity) is int
        and (day_count is _ACTUAL or day_count is _INCLUSIVE)
    ):
        a = start.toordinal()
        b = end.toordinal()
        lo = period_start.toordinal()
        hi = period_end.toordinal()
        if lo <= a <= b <= hi and lo < hi and quantity >= 0:
            part = b - a
            whole = hi - lo
            # money._scaled_half_up inlined (see there for why this is exact)
            currency = amount.currency
            exponent = MINOR_UNITS[currency]
            try:
                product = _PRODUCT_MULTIPLY(amount.amount, part * quantity)
            except decimal.Inexact:
                charged = _scaled_half_up(amount.amount, currency, part * quantity, whole)
            else:
                rounded = _QUOTIENT_QUANTIZE(_QUOTIENT_DIVIDE(product, whole), _QUANTA[exponent])
                charged = _new_money(Money)
                _SET_AMOUNT(charged, rounded if rounded else _ZEROS[exponent])
                _SET_CURRENCY(charged, currency)
            return _new_result(
                Proration,
                (
                    charged,
                    part,
                    whole,
                    amount,
                    quantity,
                    start,
                    end,
                    period_start,
                    period_end,
                    day_count,
                    "day",
                ),
            )
    return _prorate_checked(amount, period_start, period_end, start, end, day_count, quantity)


def _prorate_checked(
    amount: object,
    period_start: object,
    period_end: object,
    start: object,
    end: object,
    day_count: object,
    quantity: object,
) -> Proration:
    """The general path: every check, datetimes, every convention."""
    if not isinstance(amount, Money):
        raise InvalidTypeError(
            f"must be Money, not {type(amount).__name__}", field="amount", value=amount
        )
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidTypeError(
            f"must be an int, not {type(quantity).__name__}", field="quantity", value=quantity
        )
    if quantity < 0:
        raise InvalidAmountError("must not be negative", field="quantity", value=quantity)
    convention = _day_count(day_count)
    bounds = (period_start, period_end, start, end)
    for name, value in zip(_FIELDS, bounds, strict=True):
        if isinstance(value, datetime):
            require_aware(value, name)
        elif not isinstance(value, date):
            raise InvalidTypeError(
                f"must be a date or a timezone-aware datetime, not {type(value).__name__}",
                field=name,
                value=value,
            )
    assert isinstance(period_start, date)
    assert isinstance(period_end, date)
    assert isinstance(start, date)
    assert isinstance(end, date)
    kinds = {isinstance(v, datetime) for v in bounds}
    if convention is DayCount.SECONDS and len(kinds) == 2:
        name, value = next(
            (n, v) for n, v in zip(_FIELDS, bounds, strict=True) if not isinstance(v, datetime)
        )
        raise InvalidTypeError(
            "must be an aware datetime when day_count is seconds and another bound is one "
            "(a plain date names no instant)",
            field=name,
            value=value,
        )
    measure = _seconds_since_epoch if convention is DayCount.SECONDS else _day_number
    inclusive = convention is DayCount.INCLUSIVE
    lo = measure(period_start, False)
    hi = measure(period_end, inclusive)
    a = measure(start, False)
    b = measure(end, inclusive)
    if hi <= lo or _before(period_end, period_start, True):
        raise InvalidValueError(
            f"must be after period_start ({_text(period_start)})",
            field="period_end",
            value=period_end,
        )
    if a < lo or _before(start, period_start):
        raise InvalidValueError(
            f"must not be before period_start ({_text(period_start)})", field="start", value=start
        )
    if a > hi or _before(period_end, start):
        raise InvalidValueError(
            f"must not be after period_end ({_text(period_end)})", field="start", value=start
        )
    if b > hi or _before(period_end, end):
        raise InvalidValueError(
            f"must not be after period_end ({_text(period_end)})", field="end", value=end
        )
    if b < a or _before(end, start):
        raise InvalidValueError(
            f"must not be before start ({_text(start)})", field="end", value=end
        )
    part, whole = b - a, hi - lo
    unit = "day"
    if convention is DayCount.SECONDS:
        unit = "second"
        if False in kinds:  # plain dates only: whole days of 86,400 seconds
            part, whole = part * _US_PER_DAY, whole * _US_PER_DAY
    charged = _scaled_half_up(amount.amount, amount.currency, part * quantity, whole)
    return _new_result(
        Proration,
        (
            charged,
            part,
            whole,
            amount,
            quantity,
            start,
            end,
            period_start,
            period_end,
            convention,
            unit,
        ),
    )


def _day_count(value: object) -> DayCount:
    if isinstance(value, DayCount):
        return value
    try:
        return DayCount(value)  # type: ignore[arg-type]  # anything else raises ValueError
    except ValueError:
        allowed = ", ".join(m.value for m in DayCount)
        raise InvalidValueError(
            f"must be one of {allowed}, not {value!r}", field="day_count", value=value
        ) from None


def _day_number(value: date, ceiling: bool) -> int:
    """The local date's ordinal; with ``ceiling``, a time after midnight counts the day touched."""
    if isinstance(value, datetime):
        day = value.date().toordinal()
        if ceiling and value.time() != _MIDNIGHT:
            day += 1
        return day
    return value.toordinal()


_MIDNIGHT: Final = datetime.min.time()


def _seconds_since_epoch(value: date, _ceiling: bool) -> int:
    """Microseconds since 1970-01-01 UTC for an instant; whole days for a plain date."""
    if isinstance(value, datetime):
        delta = value - _EPOCH  # different tzinfo: an exact instant difference, DST included
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return value.toordinal()


def _before(x: date, y: date, or_equal: bool = False) -> bool:
    """``x`` is an earlier instant than ``y`` (only decided when both are aware datetimes)."""
    if isinstance(x, datetime) and isinstance(y, datetime):
        return x <= y if or_equal else x < y
    return False


def _text(value: date) -> str:
    return value.isoformat()


def _date_span(start: date, end: date, day_count: DayCount) -> str:
    first = start.date() if isinstance(start, datetime) else start
    if day_count is DayCount.INCLUSIVE:
        last = end.date() if isinstance(end, datetime) else end
        if not isinstance(end, datetime) or end.time() == _MIDNIGHT:
            last -= timedelta(days=1)
        if last < first:
            last = first
        return f"{_day(first, last)} to {_day(last, first)}, both included"
    last = end.date() if isinstance(end, datetime) else end
    return f"{_day(first, last)} to {_day(last, first)}"


def _day(day: date, other: date) -> str:
    """``Jan 15``; with the year when the span crosses one (``Dec 15, 2025``)."""
    text = f"{_MONTHS[day.month - 1]} {day.day}"
    return text if day.year == other.year else f"{text}, {day.year}"


def _iso(value: date) -> str:
    return value.isoformat()


def _seconds(value: Decimal) -> str:
    return f"{value:,}"
