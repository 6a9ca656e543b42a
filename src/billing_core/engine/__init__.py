"""The BillingEngine: the seed flows end to end, with idempotency keys, a write-ahead record before
every gateway call, the refund retry queue and reconciliation of unknown outcomes."""

from .engine import BillingEngine
from .results import (
    ChargeOutcome,
    ChargeResult,
    CloseResult,
    InventoryResult,
    QueueRunResult,
    ReconcileResult,
    RefundOutcome,
    RefundResult,
    RenewalResult,
    SubscriptionResult,
)

__all__ = [
    "BillingEngine",
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
