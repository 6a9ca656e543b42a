"""Plans: what a subscription bills and when (SPEC 6.1, seed 003 "Create an order").

* ``Plan``: a recurring ``price`` per unit for each ``period`` (monthly, yearly, N days, weeks or
  months), billed ``IN_ADVANCE`` (prepaid, on each period's start) or ``IN_ARREARS`` (postpaid, on
  its end); an optional ``Trial``; an optional one-off ``setup_fee``; ``occurrences`` (``None``:
  until cancelled; N: N recurring lines in all, a stub included); ``trial_only`` (the order ends
  with its trial and makes no recurring line).
* ``Trial``: a ``length`` (a ``Period``) and a total ``price`` for the whole trial (not per unit;
  ``0.00`` for a free trial).
* ``BillingTiming``: ``in_advance`` or ``in_arrears``. It lives here, in the values layer, so
  plans and metered prices share it; ``rules.metering`` re-exports it.

Plans validate on construction: a price that is not ``Money`` or is negative, a trial or setup
fee in another currency, ``occurrences < 1``, ``trial_only`` without a trial raise a
``BillingError`` naming the field. ``rules.timeline.bills`` turns a plan into dated bills.
"""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Any

import attrs

from .errors import CurrencyMismatchError, InvalidAmountError, InvalidTypeError, InvalidValueError
from .money import Money
from .periods import Period

__all__ = ["BillingTiming", "Plan", "Trial", "check_day_shift"]


class BillingTiming(enum.StrEnum):
    """When a price is billed: in arrears (postpaid) or in advance (prepaid)."""

    IN_ARREARS = "in_arrears"
    IN_ADVANCE = "in_advance"


def _to_timing(value: object) -> BillingTiming:
    if isinstance(value, BillingTiming):
        return value
    try:
        return BillingTiming(value)  # type: ignore[arg-type]  # anything else raises ValueError
    except ValueError:
        allowed = ", ".join(m.value for m in BillingTiming)
        raise InvalidValueError(
            f"must be one of {allowed}, not {value!r}", field="timing", value=value
        ) from None


def _price(name: str, value: object) -> Money:
    if not isinstance(value, Money):
        raise InvalidTypeError(
            f"must be Money, not {type(value).__name__}", field=name, value=value
        )
    if value.amount < 0:
        raise InvalidAmountError("must not be negative", field=name, value=value)
    return value


def _period(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Period):
        raise InvalidTypeError(
            f"must be a Period, not {type(value).__name__}", field=attribute.name, value=value
        )


@attrs.frozen(kw_only=True)
class Trial:
    """A trial: ``length`` of service for a total ``price`` (``0.00`` for a free trial)."""

    length: Period = attrs.field(validator=_period)
    price: Money = attrs.field()

    @price.validator
    def _check_price(self, _a: object, value: object) -> None:
        _price("price", value)


@attrs.frozen(kw_only=True)
class Plan:
    """A recurring price per unit and period, its timing, trial, setup fee and length.

    ``Plan(price=Money("599.95", "USD"), period=Period.months(1))`` is enough: in advance, no
    trial, no setup fee, until cancelled.
    """

    price: Money = attrs.field()
    period: Period = attrs.field(validator=_period)
    timing: BillingTiming = attrs.field(default=BillingTiming.IN_ADVANCE, converter=_to_timing)
    trial: Trial | None = None
    setup_fee: Money | None = None
    occurrences: int | None = None
    trial_only: bool = False

    @price.validator
    def _check_price(self, _a: object, value: object) -> None:
        _price("price", value)

    def __attrs_post_init__(self) -> None:
        currency = self.price.currency
        if self.trial is not None:
            if not isinstance(self.trial, Trial):
                raise InvalidTypeError(
                    f"must be a Trial or None, not {type(self.trial).__name__}",
                    field="trial",
                    value=self.trial,
                )
            _same_currency("trial.price", self.trial.price, currency)
        if self.setup_fee is not None:
            _same_currency("setup_fee", _price("setup_fee", self.setup_fee), currency)
        if self.occurrences is not None:
            if isinstance(self.occurrences, bool) or not isinstance(self.occurrences, int):
                raise InvalidTypeError(
                    f"must be an int or None, not {type(self.occurrences).__name__}",
                    field="occurrences",
                    value=self.occurrences,
                )
            if self.occurrences < 1:
                raise InvalidValueError(
                    "must be at least 1 (None: until cancelled)",
                    field="occurrences",
                    value=self.occurrences,
                )
        if not isinstance(self.trial_only, bool):
            raise InvalidTypeError(
                f"must be a bool, not {type(self.trial_only).__name__}",
                field="trial_only",
                value=self.trial_only,
            )
        if self.trial_only and self.trial is None:
            raise InvalidValueError(
                "needs a trial: a trial-only order ends with its trial",
                field="trial_only",
                value=True,
            )

    @property
    def currency(self) -> str:
        """The plan's currency (its price's; trial and setup fee share it)."""
        return self.price.currency


def _same_currency(name: str, value: Money, currency: str) -> None:
    if value.currency != currency:
        raise CurrencyMismatchError(
            f"must be in the plan's currency {currency}, not {value.currency}",
            field=name,
            value=value,
        )


def check_day_shift(value: object, field: str, *, negative: bool = True) -> timedelta:
    """``value`` as a shift of whole days (``None`` is no shift); raises naming ``field``.

    Issue shifts may be negative (an invoice prepared ahead); due shifts (``negative=False``)
    may not.
    """
    if value is None:
        return _NO_SHIFT
    if not isinstance(value, timedelta):
        raise InvalidTypeError(
            f"must be a timedelta of whole days or None, not {type(value).__name__}",
            field=field,
            value=value,
        )
    if value.seconds or value.microseconds:
        raise InvalidValueError("must be whole days", field=field, value=value)
    if not negative and value.days < 0:
        raise InvalidValueError("must not be negative", field=field, value=value)
    return value


_NO_SHIFT = timedelta(0)
