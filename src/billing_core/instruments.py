"""Payment instruments: the cards, bank accounts and other means a customer pays with (seed 003).

``PaymentInstrument(id="pi-1", active=True, expires_on=None)`` is enough to build one.
``expires_on`` is the *last* day it may be charged (a card valid "through 12/27" expires on
2027-12-31); ``kind``, ``fingerprint`` (the gateway's stable hash of the card number, used by
blocklists) and ``gateway`` (a sticky gateway: the one that holds the card's token, so every charge
of this instrument goes there, whatever ``billing_core_choose_gateway`` says) are optional. Which instrument is tried first is the rule
``billing_core.rules.collection.payment_order``.
"""

from __future__ import annotations

import enum
from datetime import date
from typing import Any

import attrs

from .errors import InvalidTypeError
from .model import _enum_value, _non_empty_str, _optional_str, _plain_date

__all__ = ["InstrumentKind", "PaymentInstrument"]


class InstrumentKind(enum.StrEnum):
    """What a payment instrument is."""

    PAYMENT_CARD = "payment_card"
    BANK_ACCOUNT = "bank_account"
    OTHER = "other"


def _to_optional_kind(value: object) -> InstrumentKind | None:
    return None if value is None else _enum_value(InstrumentKind, value, "kind")


def _check_active(_inst: object, _a: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidTypeError(
            f"must be a bool, not {type(value).__name__}", field="active", value=value
        )


@attrs.frozen(kw_only=True)
class PaymentInstrument:
    """A means of payment on a customer's account; ``expires_on`` is its last valid date."""

    id: str = attrs.field(validator=_non_empty_str)
    active: bool = attrs.field(default=True, validator=_check_active)
    expires_on: date | None = attrs.field(
        default=None, validator=attrs.validators.optional(_plain_date)
    )
    kind: InstrumentKind | None = attrs.field(default=None, converter=_to_optional_kind)
    fingerprint: str | None = attrs.field(default=None, validator=_optional_str)
    gateway: str | None = attrs.field(default=None, validator=_optional_str)

    def usable_on(self, today: date) -> bool:
        """Active and not expired on ``today`` (``expires_on`` itself is still usable)."""
        return self.active and (self.expires_on is None or today <= self.expires_on)
