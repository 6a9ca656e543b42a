"""What the engine's flows answer. Each result is a frozen attrs value with an exact JSON form,
because the idempotency record stores it and every replay returns it unchanged.

Each result says what happened in ``outcome`` (a ``StrEnum``), carries the ids of the records it
wrote, and an ``explanation`` a support agent can read out.
"""

from __future__ import annotations

import enum
from datetime import date

import attrs

from ..model import InvoiceLine
from ..money import Money

__all__ = [
    "ChargeOutcome",
    "ChargeResult",
    "CloseResult",
    "InventoryResult",
    "QueueRunResult",
    "ReconcileResult",
    "RefundOutcome",
    "RefundResult",
    "RenewalResult",
    "SubscriptionResult",
]


class RefundOutcome(enum.StrEnum):
    """How a refund request ended."""

    REFUNDED = "refunded"  # the gateway refunded it
    VOIDED = "voided"  # the gateway voided the unsettled charge
    DENIED = "denied"  # the rules said no; ``reason`` says why
    QUEUED = "queued"  # the gateway declined or was unreachable: queued for daily retries
    GAVE_UP = "gave_up"  # failed and no retry is allowed: the merchant was notified
    FAILED = "failed"  # a void that was declined or never sent: nothing moved, ask again
    UNKNOWN = "unknown"  # the gateway's answer was lost: reconcile before anything else


@attrs.frozen(kw_only=True)
class RefundResult:
    transaction_id: str
    outcome: RefundOutcome
    explanation: str
    amount: Money | None = None
    reason: str | None = None
    refund_transaction_id: str | None = None
    queue_entry_id: str | None = None


class ChargeOutcome(enum.StrEnum):
    """How a charge ended."""

    CHARGED = "charged"
    DENIED = "denied"  # the rules said no (a backdate too far, a domain with a live certificate)
    DECLINED = "declined"  # the gateway declined the card
    FAILED = "failed"  # not sent: nothing happened, safe to try again with a new key
    UNKNOWN = "unknown"  # the gateway's answer was lost: reconcile


@attrs.frozen(kw_only=True)
class ChargeResult:
    outcome: ChargeOutcome
    explanation: str
    amount: Money | None = None
    transaction_id: str | None = None
    reason: str | None = None


@attrs.frozen(kw_only=True)
class SubscriptionResult:
    outcome: ChargeOutcome
    explanation: str
    subscription_id: str | None = None
    charge: ChargeResult | None = None
    term_start: date | None = None
    term_end: date | None = None
    certificate_ids: tuple[str, ...] = ()
    reason: str | None = None


@attrs.frozen(kw_only=True)
class InventoryResult:
    subscription_id: str
    explanation: str
    lines: tuple[InvoiceLine, ...] = ()
    allowed: bool = True
    reason: str | None = None


@attrs.frozen(kw_only=True)
class RenewalResult:
    subscription_id: str
    explanation: str
    renewed: bool
    charge: ChargeResult | None = None
    term_start: date | None = None
    term_end: date | None = None


@attrs.frozen(kw_only=True)
class CloseResult:
    subscription_id: str
    explanation: str
    lines: tuple[InvoiceLine, ...] = ()


@attrs.frozen(kw_only=True)
class QueueRunResult:
    """One pass over the refund retry queue."""

    claimed: int = 0
    succeeded: int = 0
    retry_later: int = 0
    gave_up: int = 0
    unknown: int = 0
    lease_lost: int = 0  # taken over by another worker meanwhile: nothing recorded twice


@attrs.frozen(kw_only=True)
class ReconcileResult:
    """One pass of reconciliation over transactions whose outcome was unknown."""

    checked: int = 0
    resolved: int = 0
    still_unknown: tuple[str, ...] = ()
