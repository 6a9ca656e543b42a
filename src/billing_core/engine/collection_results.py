"""What the collection calls answer: instruments, blocklist entries, pending orders."""

from __future__ import annotations

import enum

import attrs

from ..blocklists import BlocklistEntry
from ..wallets import Wallet

__all__ = [
    "AbandonResult",
    "BlocklistOutcome",
    "BlocklistResult",
    "InstrumentOutcome",
    "InstrumentResult",
]


class InstrumentOutcome(enum.StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    DEACTIVATED = "deactivated"
    ORDER_SET = "order_set"  # primary and backups, or an order's default, were chosen
    UNCHANGED = "unchanged"
    DENIED = "denied"


@attrs.frozen(kw_only=True)
class InstrumentResult:
    """What an instrument call did; ``wallet`` is the customer's wallet after it."""

    customer_id: str
    outcome: InstrumentOutcome
    explanation: str
    wallet: Wallet | None = None
    reason: str | None = None


class BlocklistOutcome(enum.StrEnum):
    ADDED = "added"
    LIFTED = "lifted"
    UNCHANGED = "unchanged"
    DENIED = "denied"


@attrs.frozen(kw_only=True)
class BlocklistResult:
    """What a blocklist call did; ``entry`` is the entry after it."""

    outcome: BlocklistOutcome
    explanation: str
    entry: BlocklistEntry | None = None
    reason: str | None = None


@attrs.frozen(kw_only=True)
class AbandonResult:
    """``abandon_pending_orders``: the subscriptions abandoned, each with its sentence."""

    abandoned: tuple[str, ...] = ()
    explanations: tuple[str, ...] = ()
