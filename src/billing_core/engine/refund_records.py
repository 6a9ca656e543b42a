"""Refund records: the small shared helpers of the refund flows, the queue and ``reconcile``.

The queue entry id of a refund, the gateway call of a written-ahead refund or void (``send``),
reading a record's parent under its row lock, whether a written-ahead record's engine call is
still in flight, and the wording of results and audit details.
"""

from __future__ import annotations

from datetime import datetime

from ..errors import NotFoundError
from ..model import Transaction, TransactionKind, TransactionStatus
from ..plugins.events import (
    OutcomeUnknown,
)
from ..plugins.protocols import (
    GatewayOperation,
    GatewayOutcome,
    GatewayRequest,
    OutcomeStatus,
    StoreSession,
)
from ..plugins.records import IdempotencyState, QueueEntry
from .context import EngineContext, call_gateway
from .results import RefundOutcome, RefundResult

__all__ = [
    "DOUBTFUL",
    "IN_DOUBT",
    "completed_result",
    "error_text",
    "in_flight",
    "locked_parent",
    "queue_id",
    "send",
    "stale_detail",
    "stored_transaction",
]

IN_DOUBT = (TransactionStatus.UNKNOWN, TransactionStatus.PENDING)
"""Records whose gateway outcome is not known yet: they block money movement and get reconciled."""
DOUBTFUL = (OutcomeStatus.UNKNOWN, OutcomeStatus.PENDING)
"""Gateway answers that leave the outcome open."""


def queue_id(refund_id: str) -> str:
    """The queue entry of a refund transaction has a derived id: one entry per refund, ever."""
    return f"q-{refund_id}"


def send(ctx: EngineContext, original: Transaction, record: Transaction) -> GatewayOutcome:
    gateway = ctx.gateway(original.gateway)
    operation = (
        GatewayOperation.VOID if record.kind is TransactionKind.VOID else GatewayOperation.REFUND
    )
    request = GatewayRequest(
        operation=operation,
        transaction_id=record.id,
        idempotency_key=record.idempotency_key or record.id,
        amount=record.amount,
        parent_transaction_id=original.id,
        parent_reference=original.gateway_reference,
        customer_id=original.customer_id,
    )
    outcome = call_gateway(gateway, request)
    if outcome.status in (OutcomeStatus.UNKNOWN, OutcomeStatus.PENDING):
        ctx.emit(
            OutcomeUnknown(at=ctx.now(), transaction=record, request=request, gateway=gateway.name)
        )
    return outcome


def locked_parent(s: StoreSession, record: Transaction) -> Transaction:
    original = s.get_transaction(record.parent_id or "", lock=True)
    if original is None:  # pragma: no cover - written in one session with the record
        raise NotFoundError(f"no transaction {record.parent_id!r}", field="parent_id")
    return original


def stored_transaction(ctx: EngineContext, transaction_id: str) -> Transaction:
    with ctx.store.session() as s:
        t = s.get_transaction(transaction_id)
    if t is None:  # pragma: no cover
        raise NotFoundError(f"no transaction {transaction_id!r}", field="transaction_id")
    return t


def in_flight(s: StoreSession, record: Transaction, now: datetime) -> bool:
    if record.status is not TransactionStatus.UNKNOWN or record.idempotency_key is None:
        return False
    key, _, action = record.idempotency_key.rpartition(":")
    if action != record.kind.value or not key:
        return False
    call = s.get_idempotency(key)
    return (
        call is not None
        and call.state is IdempotencyState.IN_PROGRESS
        and (call.lease_until is None or now < call.lease_until)
    )


def stale_detail(
    claim: QueueEntry | None,
    entry: QueueEntry | None,
    outcome: GatewayOutcome | None,
    *,
    stage: str = "after the gateway call",
    recorded: bool = False,
) -> dict[str, object]:
    """The audit detail of a write by a worker whose lease may have been taken over."""
    return {
        "queue_entry": entry.id if entry is not None else None,
        "stage": stage,
        "fence": claim.fence if claim is not None else None,
        "current_fence": entry.fence if entry is not None else None,
        "current_state": entry.state.value if entry is not None else None,
        "current_owner": entry.claimed_by if entry is not None else None,
        "outcome": outcome.status.value if outcome is not None else None,
        "recorded": recorded,
    }


def completed_result(original: Transaction, record: Transaction, *, recorded: bool) -> RefundResult:
    """The answer for a completed refund or void ``record`` of ``original``."""
    if record.kind is TransactionKind.VOID:
        what, result = "voided", RefundOutcome.VOIDED
    else:
        what, result = "refunded", RefundOutcome.REFUNDED
    already = "" if recorded else " (already recorded)"
    return RefundResult(
        transaction_id=original.id,
        outcome=result,
        amount=record.amount,
        refund_transaction_id=record.id,
        explanation=f"{record.amount} was {what}{already}; the payment is now "
        f"{original.status.value} ({original.refunded} of {original.amount} given back).",
    )


def error_text(outcome: GatewayOutcome) -> str:
    if outcome.status is OutcomeStatus.DECLINED:
        return f"declined: {outcome.decline_code or 'no code'}: {outcome.message}".rstrip(": ")
    return f"{outcome.status.value}: {outcome.message}".rstrip(": ")
