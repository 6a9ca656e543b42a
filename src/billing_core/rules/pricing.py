"""Pricing models for a quantity: per unit, graduated tiers, volume tiers and packages.

Every model is a frozen value that validates when it is built (a bad table raises there, naming
the field, not later at billing time) and prices a quantity with ``model.price(quantity)``, which
returns a ``Charge``: the rounded ``amount``, the ``exact`` amount behind it and the ``lines`` that
explain it (``first 1,000 at 0.0100 USD``, ``next 200 at 0.0080 USD``). Amounts are exact until
the very end: the lines carry exact figures and the total is rounded once (``Money.rounded``).

* ``PerUnit(unit_price=Money("0.0015", "USD"))``: quantity × unit price. Unit prices may carry
  sub-cent precision.
* ``Graduated(tiers=...)``: each slice of the quantity is priced at its own tier's unit price.
* ``Volume(tiers=...)``: every unit is priced at the unit price of the tier the quantity reaches.
* ``Package(size=100, price_per_package=Money("5.00", "USD"), free_units=0)``: a price per
  *started* package of ``size`` units, after ``free_units`` free units.

Tiers (``Tier(up_to=1000, unit_price=..., flat_fee=None)``) have an *inclusive* upper bound; the
last tier is unbounded (``up_to=None``). Tier 1 covers ``[0, up_to]``, tier *n* covers
``(previous up_to, up_to]``, so with whole units tier 2 of ``1000 / 5000`` starts at unit 1,001.
A tier's optional ``flat_fee`` is charged once when the quantity reaches the tier: tier 1 is
always reached (its flat fee is a base fee, charged even for zero usage), a later tier when the
quantity exceeds the previous tier's bound. Graduated pricing charges the flat fee of every tier
reached, volume pricing only the flat fee of the tier reached.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeAlias

import attrs

from ..errors import (
    BillingError,
    ConfigurationError,
    CurrencyMismatchError,
    InvalidAmountError,
    InvalidTypeError,
)
from ..money import Money, RoundingMode, to_decimal

__all__ = [
    "Charge",
    "ChargeLine",
    "Graduated",
    "Package",
    "PerUnit",
    "PricingModel",
    "Tier",
    "Volume",
    "price",
]

_WIDE = decimal.Context(prec=100, rounding=ROUND_HALF_UP, traps=[decimal.Inexact])


# -- checks ----------------------------------------------------------------------------------
def _quantity(value: object, field: str) -> Decimal:
    q = to_decimal(value, field)
    if q < 0:
        raise InvalidAmountError("must not be negative", field=field, value=value)
    return q


def _up_to(value: object) -> Decimal | None:
    return None if value is None else _quantity(value, "up_to")


def _size(value: object) -> Decimal:
    return _quantity(value, "size")


def _free_units(value: object) -> Decimal:
    return _quantity(value, "free_units")


def _price(value: object, field: str) -> Money:
    if not isinstance(value, Money):
        raise InvalidTypeError(
            f"must be Money, not {type(value).__name__}", field=field, value=value
        )
    if value.amount < 0:
        raise InvalidAmountError("must not be negative", field=field, value=value)
    return value


def _same_currency(currency: str, value: Money, field: str) -> None:
    if value.currency != currency:
        raise CurrencyMismatchError(
            f"must be in {currency} like the rest of the table, not {value.currency}",
            field=field,
            value=value,
        )


def _num(q: Decimal) -> str:
    """A quantity for a sentence: thousands separators, no exponent (``1,000``, ``2.5``)."""
    text = f"{q.normalize():,f}" if q == q.to_integral_value() else f"{q:,f}"
    return text


# -- results ---------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class ChargeLine:
    """One line behind a charge: ``quantity`` at ``unit_price`` for the exact ``amount``.

    For packages ``quantity`` counts started packages and ``unit_price`` is the package price;
    a flat fee has quantity 1 and no unit price.
    """

    description: str
    quantity: Decimal
    unit_price: Money | None
    amount: Money


@attrs.frozen(kw_only=True)
class Charge:
    """What a quantity costs: ``amount`` rounded once, ``exact`` before rounding, and the lines."""

    quantity: Decimal
    amount: Money
    exact: Money
    lines: tuple[ChargeLine, ...]

    @property
    def currency(self) -> str:
        return self.amount.currency

    @property
    def explanation(self) -> str:
        """``first 1,000 at 0.0100 USD, next 200 at 0.0080 USD = 11.60 USD``."""
        parts = ", ".join(line.description for line in self.lines)
        exact = "" if self.exact == self.amount else f" (exactly {self.exact})"
        return f"{parts} = {self.amount}{exact}"


def _charge(
    quantity: Decimal, currency: str, lines: list[ChargeLine], rounding: RoundingMode
) -> Charge:
    exact = sum((line.amount for line in lines), Money.zero(currency))
    return Charge(
        quantity=quantity, amount=exact.rounded(rounding), exact=exact, lines=tuple(lines)
    )


# -- models ----------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class PerUnit:
    """Every unit at ``unit_price`` (sub-cent precision allowed: 0.0015 USD per call)."""

    unit_price: Money = attrs.field()

    @unit_price.validator
    def _check(self, _a: object, value: object) -> None:
        _price(value, "unit_price")

    @property
    def currency(self) -> str:
        return self.unit_price.currency

    def price(
        self, quantity: Decimal | int | str, rounding: RoundingMode = ROUND_HALF_UP
    ) -> Charge:
        q = _quantity(quantity, "quantity")
        line = ChargeLine(
            description=f"{_num(q)} at {self.unit_price}",
            quantity=q,
            unit_price=self.unit_price,
            amount=self.unit_price * q,
        )
        return _charge(q, self.currency, [line], rounding)


@attrs.frozen(kw_only=True)
class Tier:
    """A tier up to ``up_to`` units inclusive (``None``: unbounded), at ``unit_price`` per unit,
    plus an optional ``flat_fee`` charged once when the quantity reaches the tier."""

    up_to: Decimal | None = attrs.field(converter=_up_to)
    unit_price: Money = attrs.field()
    flat_fee: Money | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        _price(self.unit_price, "unit_price")
        if self.flat_fee is not None:
            _price(self.flat_fee, "flat_fee")
            _same_currency(self.unit_price.currency, self.flat_fee, "flat_fee")
        if self.up_to is not None and self.up_to == 0:
            raise ConfigurationError("must be positive (or None for the last tier)", field="up_to")


def _tiers(value: object) -> tuple[Tier, ...]:
    """Accept Tier objects or mappings ``{"up_to": ..., "unit_price": ..., "flat_fee": ...}``."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise InvalidTypeError(
            f"must be a sequence of tiers, not {type(value).__name__}", field="tiers", value=value
        )
    result: list[Tier] = []
    for i, tier in enumerate(value):
        if isinstance(tier, Mapping):
            try:
                tier = Tier(**tier)
            except BillingError as err:
                raise err.at(f"tiers[{i}]") from None
            except TypeError as err:
                raise InvalidTypeError(str(err), field=f"tiers[{i}]", value=tier) from None
        if not isinstance(tier, Tier):
            raise InvalidTypeError(
                f"must be a Tier, not {type(tier).__name__}", field=f"tiers[{i}]", value=tier
            )
        result.append(tier)
    return tuple(result)


def _check_table(tiers: tuple[Tier, ...]) -> None:
    if not tiers:
        raise ConfigurationError("must hold at least one tier", field="tiers", value=())
    currency = tiers[0].unit_price.currency
    previous: Decimal | None = Decimal(0)
    for i, tier in enumerate(tiers):
        _same_currency(currency, tier.unit_price, f"tiers[{i}].unit_price")
        if tier.flat_fee is not None:
            _same_currency(currency, tier.flat_fee, f"tiers[{i}].flat_fee")
        if previous is None:
            raise ConfigurationError(
                f"only the last tier may be unbounded; tier {i} follows one",
                field=f"tiers[{i - 1}].up_to",
            )
        if tier.up_to is not None and tier.up_to <= previous:
            raise ConfigurationError(
                f"must be above the previous tier's bound {_num(previous)} "
                "(tiers are sorted and do not overlap)",
                field=f"tiers[{i}].up_to",
                value=tier.up_to,
            )
        previous = tier.up_to
    if previous is not None:
        raise ConfigurationError(
            "the last tier must be unbounded (up_to=None)",
            field=f"tiers[{len(tiers) - 1}].up_to",
            value=previous,
        )


def _bounds(tiers: tuple[Tier, ...], i: int) -> str:
    low = Decimal(0) if i == 0 else tiers[i - 1].up_to
    high = tiers[i].up_to
    if high is None:
        return f"tier {i + 1}, above {_num(low or Decimal(0))}"
    return f"tier {i + 1}, up to {_num(high)}"


def _flat(tiers: tuple[Tier, ...], i: int) -> ChargeLine | None:
    fee = tiers[i].flat_fee
    if fee is None:
        return None
    return ChargeLine(
        description=f"flat fee {fee} ({_bounds(tiers, i)})",
        quantity=Decimal(1),
        unit_price=None,
        amount=fee,
    )


@attrs.frozen(kw_only=True)
class Graduated:
    """Graduated tiers: each slice of the quantity at its own tier's unit price."""

    tiers: tuple[Tier, ...] = attrs.field(converter=_tiers)

    def __attrs_post_init__(self) -> None:
        _check_table(self.tiers)

    @property
    def currency(self) -> str:
        return self.tiers[0].unit_price.currency

    def price(
        self, quantity: Decimal | int | str, rounding: RoundingMode = ROUND_HALF_UP
    ) -> Charge:
        q = _quantity(quantity, "quantity")
        lines: list[ChargeLine] = []
        low = Decimal(0)
        for i, tier in enumerate(self.tiers):
            if i > 0 and q <= low:
                break
            high = q if tier.up_to is None else min(q, tier.up_to)
            units = _WIDE.subtract(high, low)
            word = "first" if i == 0 else "next"
            if units > 0 or i == 0:
                lines.append(
                    ChargeLine(
                        description=f"{word} {_num(units)} at {tier.unit_price}",
                        quantity=units,
                        unit_price=tier.unit_price,
                        amount=tier.unit_price * units,
                    )
                )
            fee = _flat(self.tiers, i)
            if fee is not None:
                lines.append(fee)
            if tier.up_to is None:
                break
            low = tier.up_to
        return _charge(q, self.currency, lines, rounding)


@attrs.frozen(kw_only=True)
class Volume:
    """Volume tiers: every unit at the unit price of the tier the quantity reaches."""

    tiers: tuple[Tier, ...] = attrs.field(converter=_tiers)

    def __attrs_post_init__(self) -> None:
        _check_table(self.tiers)

    @property
    def currency(self) -> str:
        return self.tiers[0].unit_price.currency

    def tier_for(self, quantity: Decimal) -> int:
        """The 0-based index of the tier ``quantity`` reaches (bounds are inclusive)."""
        for i, tier in enumerate(self.tiers):
            if tier.up_to is None or quantity <= tier.up_to:
                return i
        raise AssertionError("unreachable: the last tier is unbounded")  # pragma: no cover

    def price(
        self, quantity: Decimal | int | str, rounding: RoundingMode = ROUND_HALF_UP
    ) -> Charge:
        q = _quantity(quantity, "quantity")
        i = self.tier_for(q)
        tier = self.tiers[i]
        lines = [
            ChargeLine(
                description=f"all {_num(q)} at {tier.unit_price} ({_bounds(self.tiers, i)})",
                quantity=q,
                unit_price=tier.unit_price,
                amount=tier.unit_price * q,
            )
        ]
        fee = _flat(self.tiers, i)
        if fee is not None:
            lines.append(fee)
        return _charge(q, self.currency, lines, rounding)


@attrs.frozen(kw_only=True)
class Package:
    """``price`` per started package of ``size`` units, after ``free_units`` free units.

    250 units in packages of 100 at 5.00 USD: 3 packages, 15.00 USD. With 50 free units: 200
    billable units, 2 packages, 10.00 USD.
    """

    size: Decimal = attrs.field(converter=_size)
    price_per_package: Money = attrs.field()
    free_units: Decimal = attrs.field(default=Decimal(0), converter=_free_units)

    def __attrs_post_init__(self) -> None:
        _price(self.price_per_package, "price_per_package")
        if self.size == 0:
            raise ConfigurationError("must be positive", field="size", value=self.size)

    @property
    def currency(self) -> str:
        return self.price_per_package.currency

    def price(
        self, quantity: Decimal | int | str, rounding: RoundingMode = ROUND_HALF_UP
    ) -> Charge:
        q = _quantity(quantity, "quantity")
        billable = max(_WIDE.subtract(q, self.free_units), Decimal(0))
        packages = _WIDE.divide_int(billable, self.size)
        if _WIDE.remainder(billable, self.size):
            packages += 1
        free = f", {_num(min(q, self.free_units))} free" if self.free_units else ""
        line = ChargeLine(
            description=(
                f"{_num(packages)} started package{'' if packages == 1 else 's'} of "
                f"{_num(self.size)} at {self.price_per_package} ({_num(q)} units{free})"
            ),
            quantity=packages,
            unit_price=self.price_per_package,
            amount=self.price_per_package * packages,
        )
        return _charge(q, self.currency, [line], rounding)


PricingModel: TypeAlias = PerUnit | Graduated | Volume | Package
"""Any of the pricing models; each has ``.currency`` and ``.price(quantity, rounding)``."""

_MODELS = (PerUnit, Graduated, Volume, Package)


def price(
    model: PricingModel, quantity: Decimal | int | str, rounding: RoundingMode = ROUND_HALF_UP
) -> Charge:
    """``model.price(quantity)``, checking that ``model`` is one of the pricing models."""
    check_model(model, "model")
    return model.price(quantity, rounding)


def check_model(model: Any, field: str) -> PricingModel:
    """Return ``model`` if it is a pricing model; raise ``InvalidTypeError`` naming ``field``."""
    if not isinstance(model, _MODELS):
        raise InvalidTypeError(
            f"must be PerUnit, Graduated, Volume or Package, not {type(model).__name__}",
            field=field,
            value=model,
        )
    return model
