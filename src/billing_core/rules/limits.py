"""Limits on quantities and amounts: one validator for every path that takes them.

A quantity of certificates (or seats) is an ``int`` from 0 (or 1 where nothing is meaningless)
to ``MAX_QUANTITY``; an amount is ``Money`` in whole minor units, positive (or zero where a free
price is fine) and at most ``MAX_AMOUNT`` in the currency's major units. Anything else is bad
input: a ``BillingError`` naming the field, raised before anything is written.

The engine runs these checks on ``charge`` (the amount), ``add_subscription`` (each inventory
quantity, each unit price, and the order's full-price total), ``add_inventory`` (the quantity,
the inventory it leads to, and the line's full-term price) and ``change_renewal_inventory``
(each quantity and the renewal's total): the same limits on every path.

    limits.quantity(3, "quantity")                     # -> 3
    limits.quantity(10**12, "inventory.dv")            # InvalidAmountError @ $.inventory.dv
    limits.amount(Money("0.00", "USD"), "amount")      # InvalidAmountError: must be positive
    limits.amount(Money("0.0015", "USD"), "unit_prices.dv", allow_zero=True, price=True)
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from ..errors import (
    CurrencyMismatchError,
    InvalidAmountError,
    InvalidTypeError,
    InvalidValueError,
    PrecisionError,
)
from ..money import Money

__all__ = [
    "MAX_AMOUNT",
    "MAX_ID_LENGTH",
    "MAX_QUANTITY",
    "amount",
    "identifier",
    "inventory",
    "order",
    "quantity",
    "total",
]

MAX_QUANTITY: Final = 1_000_000
"""The most units of one certificate type (or seats) in one order, inventory or change."""

MAX_AMOUNT: Final = Decimal(10**12)
"""The largest amount of one charge, price or line, in the currency's major units
(1,000,000,000,000.00 USD; 1,000,000,000,000 JPY)."""


MAX_ID_LENGTH: Final = 255
"""The longest id or idempotency key, in characters (every store keeps at least that)."""


def identifier(value: object, field: str) -> str:
    """``value`` if it is an id every store can keep and look up: a non-empty ``str`` of at most
    ``MAX_ID_LENGTH`` printable characters (no NUL, no control character, no lone surrogate).
    A wrong type raises ``InvalidTypeError``, a bad string ``InvalidValueError``: both name
    ``field`` and are raised before anything is written."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidTypeError(
            f"must be an id (a non-empty str), not {value!r}", field=field, value=value
        )
    if len(value) > MAX_ID_LENGTH:
        raise InvalidValueError(
            f"must be at most {MAX_ID_LENGTH} characters long, not {len(value)}",
            field=field,
            value=value[:40] + "...",
        )
    bad = next((c for c in value if not c.isprintable() or "\ud800" <= c <= "\udfff"), None)
    if bad is not None:
        raise InvalidValueError(
            f"must hold printable characters only, not {bad!r} (U+{ord(bad):04X})",
            field=field,
            value=value.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace"),
        )
    return value


def quantity(value: object, field: str, *, minimum: int = 0) -> int:
    """``value`` if it is an ``int`` (not a bool) in ``[minimum, MAX_QUANTITY]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(
            f"must be an int, not {type(value).__name__}", field=field, value=value
        )
    if value < minimum:
        text = "must be positive" if minimum == 1 else f"must be at least {minimum}"
        raise InvalidAmountError(text, field=field, value=value)
    if value > MAX_QUANTITY:
        raise InvalidAmountError(
            f"must be at most {MAX_QUANTITY:,} units, not {value:,}", field=field, value=value
        )
    return value


def amount(value: object, field: str, *, allow_zero: bool = False, price: bool = False) -> Money:
    """``value`` if it is ``Money``, positive (or zero when ``allow_zero``) and at most
    ``MAX_AMOUNT``; in whole minor units unless it is a unit ``price`` (which may be finer)."""
    if not isinstance(value, Money):
        raise InvalidTypeError(
            f"must be Money, not {type(value).__name__}", field=field, value=value
        )
    if value.amount < 0 or (value.amount == 0 and not allow_zero):
        raise InvalidAmountError(
            "must not be negative" if allow_zero else "must be positive", field=field, value=value
        )
    if not price and not value.is_rounded:
        raise PrecisionError(
            f"must be a whole number of {value.currency} minor units", field=field, value=value
        )
    return total(value, field)


def total(value: Money, field: str) -> Money:
    """``value`` if it is at most ``MAX_AMOUNT`` (a computed total: a price times a quantity)."""
    if value.amount > MAX_AMOUNT:
        raise InvalidAmountError(
            f"comes to {value}, more than the maximum of {MAX_AMOUNT:,} {value.currency}",
            field=field,
            value=value,
        )
    return value


def inventory(value: object, field: str) -> dict[str, int]:
    """A mapping of certificate type to quantity, each checked by :func:`quantity`."""
    if not isinstance(value, Mapping):
        raise InvalidTypeError(
            f"must be a mapping of certificate type to quantity, not {type(value).__name__}",
            field=field,
            value=value,
        )
    out: dict[str, int] = {}
    for key, count in value.items():
        if not isinstance(key, str) or not key:
            raise InvalidTypeError(
                f"keys must be certificate types (non-empty str), not {key!r}",
                field=field,
                value=key,
            )
        out[key] = quantity(count, f"{field}.{key}")
    return out


def order(
    quantities: Mapping[str, int], unit_prices: Mapping[str, Money], field: str
) -> Money | None:
    """The full-price total of ``quantities`` at ``unit_prices`` (types without a price are left
    to the flow, which names them), refused above ``MAX_AMOUNT`` naming ``field``; ``None``
    when nothing is priced. Every quantity is checked by :func:`quantity` first."""
    checked = {t: quantity(q, f"{field}.{t}") for t, q in quantities.items()}
    priced = [unit_prices[t] * q for t, q in sorted(checked.items()) if t in unit_prices]
    if not priced:
        return None
    currencies = sorted({m.currency for m in priced})
    if len(currencies) > 1:
        raise CurrencyMismatchError(
            f"must share one currency, not {currencies}", field="unit_prices", value=currencies
        )
    return total(sum(priced[1:], priced[0]), field)
