"""Is a payment blocked? (seeds 002, 003)

``check(entries, payer, now=...)`` compares what a payment is made with (``Payer``: the
customer id, email, email domain, IP, country and every card fingerprint it may be charged on)
with the blocklist entries in force at ``now`` and answers with a ``BlockDecision``: allowed, or
denied with the reason code of the first matching entry's kind (``blocklisted_email_domain``...)
and a sentence naming the entry. Entries are tried in their order (the store's insertion order),
so the answer is stable. A fingerprint of any instrument in the payment plan blocks the whole
payment, not just that card: a blocked card is a fraud signal about its holder, and falling back
to another card would route around the block.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import attrs

from ..blocklists import BlocklistEntry, BlocklistKind, normalise
from ..decisions import Decision, Reason
from ..timeutil import require_aware

__all__ = ["BlockDecision", "BlockReason", "Payer", "check"]


class BlockReason(Reason):
    BLOCKLISTED_CUSTOMER_ID = "blocklisted_customer_id"
    BLOCKLISTED_FINGERPRINT = "blocklisted_fingerprint"
    BLOCKLISTED_EMAIL = "blocklisted_email"
    BLOCKLISTED_EMAIL_DOMAIN = "blocklisted_email_domain"
    BLOCKLISTED_IP = "blocklisted_ip"
    BLOCKLISTED_COUNTRY = "blocklisted_country"


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
class Payer:
    """What a payment is made with, as blocklists see it."""

    customer_id: str | None = None
    email: str | None = None
    ip: str | None = None
    country: str | None = None
    fingerprints: tuple[str, ...] = attrs.field(default=(), converter=_strings)

    def values(self, kind: BlocklistKind) -> tuple[str, ...]:
        """The payer's values of ``kind``, normalised."""
        email = self.email.strip() if self.email else None
        raw: tuple[str | None, ...] = {
            BlocklistKind.CUSTOMER_ID: (self.customer_id,),
            BlocklistKind.FINGERPRINT: self.fingerprints,
            BlocklistKind.EMAIL: (email,),
            BlocklistKind.EMAIL_DOMAIN: (
                email.rpartition("@")[2] if email and "@" in email else None,
            ),
            BlocklistKind.IP: (self.ip,),
            BlocklistKind.COUNTRY: (self.country,),
        }[kind]
        return tuple(normalise(kind, v) for v in raw if v)


@attrs.frozen(kw_only=True)
class BlockDecision(Decision):
    """Allowed, or blocked by ``entry``."""

    reason: BlockReason | None = None
    entry: BlocklistEntry | None = None


def check(entries: Iterable[BlocklistEntry], payer: Payer, *, now: datetime) -> BlockDecision:
    """Blocked by the first entry in force at ``now`` that matches one of ``payer``'s values?"""
    require_aware(now, "now")
    for entry in entries:
        if not entry.in_force(now) or entry.value not in payer.values(entry.kind):
            continue
        until = f" until {entry.expires_at.isoformat()}" if entry.expires_at else ""
        why = f" ({entry.reason})" if entry.reason else ""
        return BlockDecision(
            allowed=False,
            reason=BlockReason(f"blocklisted_{entry.kind.value}"),
            entry=entry,
            explanation=(
                f"The payment is blocked: its {entry.kind.value.replace('_', ' ')} "
                f"{entry.value} is blocklisted{until} by entry {entry.id}{why}. Nothing was "
                "sent to the gateway; only an admin can lift the entry."
            ),
        )
    return BlockDecision(allowed=True, explanation="No blocklist entry in force matches.")
