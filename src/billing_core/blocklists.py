"""Blocklist entries (seeds 002, 003): a value that blocks every payment it appears in.

``BlocklistEntry(id=..., kind="email_domain", value="fraud.example", added_at=...)`` blocks a
payment whose customer's email is at ``fraud.example``. The kinds: ``customer_id``,
``fingerprint`` (a card's fingerprint), ``email``, ``email_domain``, ``ip`` and ``country`` (ISO
3166 alpha-2). Values are compared normalised (:func:`normalise`: emails, domains and countries
case-insensitively, surrounding spaces dropped). ``expires_at`` (optional) is the instant the entry
stops blocking; ``lifted_at`` is set when an admin lifts it (the entry is kept, for the record).
Whether a payment is blocked is the rule ``rules.blocklists.check``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import attrs

from .errors import InvalidValueError
from .model import _aware, _enum_value, _non_empty_str, _optional_aware, _str

__all__ = ["BlocklistEntry", "BlocklistKind", "normalise"]


class BlocklistKind(enum.StrEnum):
    """What a blocklist entry matches."""

    CUSTOMER_ID = "customer_id"
    FINGERPRINT = "fingerprint"
    EMAIL = "email"
    EMAIL_DOMAIN = "email_domain"
    IP = "ip"
    COUNTRY = "country"


_CASELESS = (BlocklistKind.EMAIL, BlocklistKind.EMAIL_DOMAIN, BlocklistKind.COUNTRY)


def normalise(kind: BlocklistKind, value: str) -> str:
    """``value`` as entries of ``kind`` compare it."""
    text = value.strip()
    if kind is BlocklistKind.EMAIL_DOMAIN:
        text = text.lstrip("@")
    return text.lower() if kind in _CASELESS else text


def _to_kind(value: object) -> BlocklistKind:
    return _enum_value(BlocklistKind, value, "kind")


def _value(inst: BlocklistEntry, attribute: attrs.Attribute[Any], value: object) -> None:
    _non_empty_str(inst, attribute, value)
    assert isinstance(value, str)
    if normalise(inst.kind, value) != value:
        raise InvalidValueError(
            f"must be normalised: {normalise(inst.kind, value)!r}", field="value", value=value
        )
    if inst.kind is BlocklistKind.EMAIL and "@" not in value:
        raise InvalidValueError("must be an email address", field="value", value=value)
    if inst.kind is BlocklistKind.COUNTRY and (len(value) != 2 or not value.isalpha()):
        raise InvalidValueError(
            "must be a two-letter ISO 3166 country code", field="value", value=value
        )


@attrs.frozen(kw_only=True)
class BlocklistEntry:
    """One blocked value; see the module docstring."""

    id: str = attrs.field(validator=_non_empty_str)
    kind: BlocklistKind = attrs.field(converter=_to_kind)
    value: str = attrs.field(validator=_value)
    added_at: datetime = attrs.field(validator=_aware)
    added_by: str = attrs.field(default="", validator=_str)
    reason: str = attrs.field(default="", validator=_str)
    expires_at: datetime | None = attrs.field(default=None, validator=_optional_aware)
    lifted_at: datetime | None = attrs.field(default=None, validator=_optional_aware)
    lifted_by: str | None = None

    def in_force(self, now: datetime) -> bool:
        """Blocking at ``now``: not lifted, not expired (``expires_at`` itself no longer blocks)."""
        if self.lifted_at is not None and self.lifted_at <= now:
            return False
        return self.expires_at is None or now < self.expires_at

    def describe(self) -> str:
        """``email_domain fraud.example (entry bl-1)``."""
        return f"{self.kind.value} {self.value} (entry {self.id})"
