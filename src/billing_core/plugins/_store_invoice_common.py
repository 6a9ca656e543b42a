"""Checks shared by the built-in stores' invoice tables (``memory_invoices``, ``sql_invoices``).

Both stores call the same checks, so they refuse the same input with the same error and field.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from ..currencies import minor_unit_exponent
from ..errors import InvalidTypeError, InvalidValueError
from ..timeutil import require_date

__all__ = ["check_prefix", "check_take", "format_number", "optional_date"]

MAX_PREFIX = 200


def optional_date(value: object, field: str, *, required: bool = False) -> date | None:
    """``value`` if it is a plain date (or None, unless ``required``)."""
    if value is None and not required:
        return None
    return require_date(value, field)


def check_prefix(prefix: object) -> str:
    """A numbering sequence's name: at most 200 printable characters (may be empty)."""
    if not isinstance(prefix, str):
        raise InvalidTypeError(
            f"must be a str, not {type(prefix).__name__}", field="prefix", value=prefix
        )
    if len(prefix) > MAX_PREFIX or not prefix.isprintable():
        raise InvalidValueError(
            f"must be at most {MAX_PREFIX} printable characters", field="prefix", value=prefix
        )
    return prefix


def check_take(
    subscription_ids: object, currency: object, up_to: object, invoice_id: object
) -> None:
    """The arguments of ``take_pending_lines``."""
    if isinstance(subscription_ids, str) or not isinstance(subscription_ids, Sequence):
        raise InvalidTypeError(
            "must be a sequence of subscription ids",
            field="subscription_ids",
            value=subscription_ids,
        )
    for i, sub in enumerate(subscription_ids):
        if not isinstance(sub, str) or not sub:
            raise InvalidTypeError(
                "must be a subscription id (non-empty str)",
                field=f"subscription_ids[{i}]",
                value=sub,
            )
    if not isinstance(currency, str):
        raise InvalidTypeError("must be a currency code", field="currency", value=currency)
    minor_unit_exponent(currency, "currency")
    require_date(up_to, "up_to")
    if not isinstance(invoice_id, str) or not invoice_id:
        raise InvalidTypeError(
            "must be an invoice id (non-empty str)", field="invoice_id", value=invoice_id
        )


def format_number(prefix: str, n: int) -> str:
    """The printed invoice number: the prefix, then the sequence number in at least 6 digits."""
    return f"{prefix}{n:06d}"
