"""Money: an exact amount in one currency.

The model, after beancount's ``Amount``: an immutable pair of a ``decimal.Decimal`` and an ISO 4217
code. Nothing here is ever a float.

* **Construction.** ``Money("19.99", "USD")``: the amount may be a ``Decimal``, an ``int`` or a
  numeric ``str``. A ``float`` or ``bool`` raises ``InvalidTypeError`` (a ``TypeError``); NaN,
  infinities and non-numeric strings raise ``InvalidAmountError`` (a ``ValueError``); an unknown
  code raises ``UnknownCurrencyError``.
* **Precision.** An amount may carry more digits than its currency has (a unit price of
  0.0015 USD, an intermediate prorated figure). Rounding happens once, at the end, with
  ``rounded()``: half-up by default, any ``decimal`` rounding mode on request. ``scale(ratio)``
  multiplies by an exact ratio (a ``Fraction`` such as 17/31) and rounds once, exactly, with no
  intermediate decimal approximation.
* **Arithmetic** (``+``, ``-``, unary ``-``, ``abs``, ``*`` by an int or Decimal, comparisons)
  works within one currency; meeting another currency raises ``CurrencyMismatchError``. That
  includes ``==``: asking whether 10 USD equals 10 EUR is a bug in the caller, not ``False``.
* **Allocation.** ``allocate(weights)`` splits the *rounded* amount into parts that sum to it
  exactly: each part gets its exact share rounded down to minor units, then the leftover minor
  units go one each to the parts with the largest remainders, ties to the earlier part.
  100 JPY split 1:2 is 33 + 67.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any, Final, SupportsIndex

import attrs

from .currencies import MINOR_UNITS, minor_unit_exponent
from .errors import (
    CurrencyMismatchError,
    InvalidAmountError,
    InvalidTypeError,
    InvalidValueError,
    PrecisionError,
)

__all__ = ["Money", "RoundingMode", "to_decimal"]

RoundingMode = str
"""A ``decimal`` rounding constant such as ``decimal.ROUND_HALF_UP`` or ``decimal.ROUND_HALF_EVEN``."""

_ROUNDING_MODES: Final = frozenset(
    {
        decimal.ROUND_CEILING,
        decimal.ROUND_DOWN,
        decimal.ROUND_FLOOR,
        decimal.ROUND_HALF_DOWN,
        decimal.ROUND_HALF_EVEN,
        decimal.ROUND_HALF_UP,
        decimal.ROUND_UP,
        decimal.ROUND_05UP,
    }
)
# Exact arithmetic: enough digits that + - * of any realistic amounts never rounds.
_EXACT: Final = decimal.Context(prec=100, rounding=ROUND_HALF_UP, traps=[decimal.Inexact])
# Rounding is inexact by design: a context with the same precision that does not trap it.
_ROUNDING: Final = decimal.Context(prec=100, rounding=ROUND_HALF_UP)
MAX_INTEGER_DIGITS: Final = 40
"""Amounts are below 10**40 in size: far beyond any real amount, and small enough that exact
arithmetic (100 digits) and rounding never overflow."""
_QUANTA: Final = {e: Decimal(1).scaleb(-e) for e in range(0, 9)}


def to_decimal(value: object, field: str = "amount") -> Decimal:
    """Turn a ``Decimal``, ``int`` or numeric ``str`` into a finite ``Decimal``; refuse the rest."""
    if type(value) is Decimal:
        result = value
    elif isinstance(value, (bool, float)):
        raise InvalidTypeError(
            f"must be a Decimal, int or numeric string, not {type(value).__name__} "
            f"(a float cannot hold {value!r} exactly)"
            if isinstance(value, float)
            else "must be a Decimal, int or numeric string, not bool",
            field=field,
            value=value,
        )
    elif isinstance(value, (Decimal, int)):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip().replace("_", ""))
        except decimal.InvalidOperation:
            raise InvalidAmountError(
                f"must be a number, not {value!r}", field=field, value=value
            ) from None
    else:
        raise InvalidTypeError(
            f"must be a Decimal, int or numeric string, not {type(value).__name__}",
            field=field,
            value=value,
        )
    if not result.is_finite():
        raise InvalidAmountError(f"must be finite, not {value!r}", field=field, value=value)
    if result and result.adjusted() >= MAX_INTEGER_DIGITS:
        raise InvalidAmountError(
            f"must have at most {MAX_INTEGER_DIGITS} digits before the decimal point",
            field=field,
            value=value,
        )
    return result


def _new(amount: Decimal, currency: str) -> Money:
    """Build a Money from already-validated parts, skipping validation (hot paths only)."""
    m = object.__new__(Money)
    object.__setattr__(m, "amount", amount)
    object.__setattr__(m, "currency", currency)
    return m


def _check_rounding(rounding: object) -> str:
    if rounding not in _ROUNDING_MODES:
        raise InvalidValueError(
            f"must be a decimal rounding mode such as {ROUND_HALF_UP!r}",
            field="rounding",
            value=rounding,
        )
    return str(rounding)


@attrs.frozen(eq=False, order=False, init=False, repr=False, slots=True)
class Money:
    """An exact amount of one currency. See the module docstring for the rules."""

    amount: Decimal
    currency: str

    def __init__(self, amount: Decimal | int | str, currency: str) -> None:
        minor_unit_exponent(currency)  # validates the code first: clearer errors
        object.__setattr__(self, "amount", to_decimal(amount))
        object.__setattr__(self, "currency", currency)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def zero(cls, currency: str) -> Money:
        """Zero in ``currency``."""
        minor_unit_exponent(currency)
        return _new(Decimal(0).scaleb(-minor_unit_exponent(currency)), currency)

    @classmethod
    def from_minor_units(cls, units: int, currency: str) -> Money:
        """``Money.from_minor_units(1999, "USD") == Money("19.99", "USD")``."""
        if isinstance(units, bool) or not isinstance(units, int):
            raise InvalidTypeError(
                f"must be an int, not {type(units).__name__}", field="units", value=units
            )
        exponent = minor_unit_exponent(currency)
        return _new(Decimal(units).scaleb(-exponent, context=_ROUNDING), currency)

    # -- properties ---------------------------------------------------------------------------
    @property
    def exponent(self) -> int:
        """Decimal places of the currency's minor unit (JPY 0, USD 2, KWD 3)."""
        return MINOR_UNITS[self.currency]

    @property
    def minor_units(self) -> int:
        """The amount in minor units (cents). Raises ``PrecisionError`` if not a whole number of them."""
        scaled = self.amount.scaleb(self.exponent, context=_ROUNDING)
        if scaled != scaled.to_integral_value(context=_ROUNDING):
            raise PrecisionError(
                f"{self.amount} {self.currency} is not a whole number of minor units; "
                "call rounded() first",
                field="amount",
                value=self.amount,
            )
        return int(scaled)

    @property
    def is_rounded(self) -> bool:
        """True when the amount is a whole number of minor units."""
        q = _QUANTA[self.exponent]
        return self.amount == self.amount.quantize(q, rounding=ROUND_DOWN, context=_ROUNDING)

    # -- rounding ------------------------------------------------------------------------------
    def rounded(self, rounding: RoundingMode = ROUND_HALF_UP) -> Money:
        """Round to the currency's minor units, half-up unless another mode is given."""
        if rounding is not ROUND_HALF_UP:
            rounding = _check_rounding(rounding)
        q = _QUANTA[MINOR_UNITS[self.currency]]
        return _new(self.amount.quantize(q, rounding=rounding, context=_ROUNDING), self.currency)

    def scale(
        self, ratio: Fraction | int | Decimal, rounding: RoundingMode = ROUND_HALF_UP
    ) -> Money:
        """``self × ratio`` rounded once to minor units, computed exactly (no decimal approximation).

        ``Money("120.00", "USD").scale(Fraction(17, 31)) == Money("65.81", "USD")``.
        """
        if rounding is not ROUND_HALF_UP:
            rounding = _check_rounding(rounding)
        if isinstance(ratio, Fraction):
            num, den = ratio.numerator, ratio.denominator
        elif isinstance(ratio, bool) or not isinstance(ratio, (int, Decimal)):
            raise InvalidTypeError(
                f"must be a Fraction, int or Decimal, not {type(ratio).__name__}",
                field="ratio",
                value=ratio,
            )
        else:
            num, den = Fraction(ratio).as_integer_ratio()
        return _scaled(self.amount, self.currency, num, den, rounding)

    # -- allocation ----------------------------------------------------------------------------
    def allocate(self, weights: Iterable[int | Decimal | Fraction]) -> tuple[Money, ...]:
        """Split the rounded amount by ``weights`` into parts that sum to it exactly.

        Each part gets its exact share rounded down (towards zero) to minor units; the leftover
        minor units go one each to the parts with the largest remainders, ties to the earlier
        part. A zero weight gets zero. ``Money(100, "JPY").allocate([1, 2])`` is 33 + 67 JPY.
        """
        ws: list[Fraction] = []
        for i, w in enumerate(weights):
            if isinstance(w, (bool, float)) or not isinstance(w, (int, Decimal, Fraction)):
                raise InvalidTypeError(
                    f"must be an int, Decimal or Fraction, not {type(w).__name__}",
                    field=f"weights[{i}]",
                    value=w,
                )
            if isinstance(w, Decimal) and not w.is_finite():
                raise InvalidAmountError("must be finite", field=f"weights[{i}]", value=w)
            if w < 0:
                raise InvalidAmountError("must not be negative", field=f"weights[{i}]", value=w)
            ws.append(Fraction(w))
        if not ws:
            raise InvalidValueError("must name at least one part", field="weights", value=[])
        total_weight = sum(ws, Fraction(0))
        if total_weight == 0:
            raise InvalidValueError("must not all be zero", field="weights", value=ws)
        total = self.rounded().minor_units
        sign = -1 if total < 0 else 1
        total = abs(total)
        shares = [total * w / total_weight for w in ws]
        parts = [s.numerator // s.denominator for s in shares]
        leftover = total - sum(parts)
        order = sorted(range(len(ws)), key=lambda i: (-(shares[i] - parts[i]), i))
        for i in order[:leftover]:
            parts[i] += 1
        exponent = self.exponent
        return tuple(
            _new(Decimal(sign * p).scaleb(-exponent, context=_ROUNDING), self.currency)
            for p in parts
        )

    # -- arithmetic ----------------------------------------------------------------------------
    def _same(self, other: Money, op: str) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatchError(
                f"cannot {op} {self.currency} and {other.currency}",
                field="currency",
                value=other.currency,
            )

    def __add__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "add")
        return _new(_EXACT.add(self.amount, other.amount), self.currency)

    def __radd__(self, other: object) -> Money:
        if other == 0 and not isinstance(other, bool):  # lets sum() start from 0
            return self
        return NotImplemented

    def __sub__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "subtract")
        return _new(_EXACT.subtract(self.amount, other.amount), self.currency)

    def __mul__(self, factor: object) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, (int, Decimal)):
            if isinstance(factor, (float, bool)):
                raise InvalidTypeError(
                    f"must be an int or Decimal, not {type(factor).__name__}",
                    field="factor",
                    value=factor,
                )
            return NotImplemented
        return _new(_EXACT.multiply(self.amount, to_decimal(factor, "factor")), self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return _new(-self.amount, self.currency)

    def __pos__(self) -> Money:
        return self

    def __abs__(self) -> Money:
        return _new(abs(self.amount), self.currency)

    def __bool__(self) -> bool:
        return bool(self.amount)

    # -- comparison ----------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.amount == other.amount

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __lt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.amount >= other.amount

    def __hash__(self) -> int:
        return hash((self.amount, self.currency))

    # -- text ----------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Money('{self.amount}', '{self.currency}')"

    def __str__(self) -> str:
        """``19.99 USD``; an unrounded amount shows all its digits (``0.0015 USD``)."""
        return self.format()

    def format(self) -> str:
        """The amount with at least the currency's minor-unit digits and thousands separators."""
        exponent = MINOR_UNITS[self.currency]
        amount = self.amount
        if -amount.as_tuple().exponent < exponent:  # type: ignore[operator]
            amount = amount.quantize(_QUANTA[exponent], context=_ROUNDING)
        return f"{amount:,} {self.currency}"

    def __format__(self, spec: str) -> str:
        return format(self.format(), spec)

    def __reduce__(self) -> Any:
        return (_new, (self.amount, self.currency))

    def __round__(self, ndigits: SupportsIndex | None = None) -> Money:
        return self.rounded()


def _scaled(amount: Decimal, currency: str, num: int, den: int, rounding: str) -> Money:
    """``amount × num / den`` rounded once to the currency's minor units, exactly."""
    exponent = MINOR_UNITS[currency]
    sign, digits, exp = amount.as_tuple()
    mantissa = int("".join(map(str, digits)) or "0")
    if sign:
        mantissa = -mantissa
    # amount = mantissa × 10^exp; in minor units: mantissa × 10^(exp + exponent)
    shift = int(exp) + exponent
    n = mantissa * num
    d = den
    if shift >= 0:
        n *= 10**shift
    else:
        d *= 10 ** (-shift)
    q = Fraction(n, d)
    if q.denominator == 1:
        result = Decimal(q.numerator)
    else:
        whole, rem = divmod(abs(q.numerator), q.denominator)
        neg = q.numerator < 0
        result = Decimal(_round_int(whole, rem, q.denominator, neg, rounding))
        if neg:
            result = -result
    return _new(result.scaleb(-exponent, context=_ROUNDING), currency)


def _round_int(whole: int, rem: int, den: int, neg: bool, rounding: str) -> int:
    """Round ``whole + rem/den`` (a magnitude, 0 < rem < den) by ``rounding``; ``neg`` is the sign."""
    twice = 2 * rem
    if rounding == ROUND_HALF_UP:
        return whole + (twice >= den)
    if rounding == decimal.ROUND_HALF_DOWN:
        return whole + (twice > den)
    if rounding == decimal.ROUND_HALF_EVEN:
        return whole + (twice > den or (twice == den and whole % 2 == 1))
    if rounding == decimal.ROUND_DOWN:
        return whole
    if rounding == decimal.ROUND_UP:
        return whole + 1
    if rounding == decimal.ROUND_CEILING:
        return whole + (not neg)
    if rounding == decimal.ROUND_FLOOR:
        return whole + neg
    # ROUND_05UP: away from zero if the last digit after rounding down is 0 or 5
    return whole + (whole % 5 == 0)


_SET_AMOUNT: Final = Money.__dict__["amount"].__set__
_SET_CURRENCY: Final = Money.__dict__["currency"].__set__
# The proration hot path works in Decimal with a proof of exactness instead of Fractions:
# the product amount × num is exact (30 digits at most, else Inexact is trapped and the integer
# path below takes over); the quotient is then carried to 60 digits. A quotient that is not
# exactly a half-way point lies at least 1 / (2 · 10^(exponent + scale) · den) from one, which
# is more than 60 digits' rounding error whenever product digits + exponent + digits(den) + 2 is
# at most 60; so rounding that 60-digit quotient half-up to minor units is the exact answer.
_PRODUCT: Final = decimal.Context(prec=30, rounding=ROUND_HALF_UP, traps=[decimal.Inexact])
_QUOTIENT: Final = decimal.Context(
    prec=60, rounding=ROUND_HALF_UP, traps=[decimal.InvalidOperation, decimal.Overflow]
)
_PRODUCT_MULTIPLY: Final = _PRODUCT.multiply
_QUOTIENT_DIVIDE: Final = _QUOTIENT.divide
_QUOTIENT_QUANTIZE: Final = _QUOTIENT.quantize
_MAX_DEN: Final = 10**16
_ZEROS: Final = {e: Decimal(0).scaleb(-e) for e in range(0, 9)}


def _scaled_half_up(amount: Decimal, currency: str, num: int, den: int) -> Money:
    """``amount × num / den`` rounded half-up once to minor units, exactly; the proration hot path.

    The same result as ``_scaled(amount, currency, num, den, ROUND_HALF_UP)`` (``num >= 0``,
    ``den > 0``), about three times faster, for callers that prorate millions of lines.
    """
    exponent = MINOR_UNITS[currency]
    if den < _MAX_DEN:
        try:
            product = _PRODUCT_MULTIPLY(amount, num)
        except decimal.Inexact:
            pass
        else:
            result = _QUOTIENT_QUANTIZE(_QUOTIENT_DIVIDE(product, den), _QUANTA[exponent])
            m = object.__new__(Money)
            _SET_AMOUNT(m, result if result else _ZEROS[exponent])  # never "-0.00"
            _SET_CURRENCY(m, currency)
            return m
    return _scaled(amount, currency, num, den, ROUND_HALF_UP)
