"""The answer of a stuck idempotency key, read from what its call wrote ahead and reconciled.

A call that died after writing a transaction ahead leaves its key ``in_progress``. Once its lease
has run out and ``reconcile()`` has resolved every transaction it wrote ahead, the next caller
with that key gets the answer the call would have given, built here from the stored records,
and the key is completed with it: the money is never moved again (see ``idempotency`` and
docs/engine.md, "Idempotency keys: stuck keys").

Only charges and refunds (``ChargeResult``, ``RefundResult``) can be answered so; ``recovered``
returns None for any other result (a subscription, an inventory line, a metered close write more
than a transaction, so their stuck keys wait for an operator).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..model import Transaction, TransactionKind, TransactionStatus
from ..plugins.protocols import StoreSession
from ..plugins.records import QueueState
from .refund_records import completed_result, queue_id
from .results import ChargeOutcome, ChargeResult, RefundOutcome, RefundResult

__all__ = ["recovered"]

_NOTE = "recorded after its call ended without answering"


def recovered(
    result_type: type[object], s: StoreSession, written: Sequence[Transaction]
) -> object | None:
    """The answer of a call of ``result_type`` that wrote ``written`` ahead (all resolved),
    or None when it cannot be told from them."""
    if not written:
        return None
    last = written[-1]  # a void that became a refund wrote the void, then the refund
    if result_type is ChargeResult and last.kind is TransactionKind.SALE:
        return _charge(last)
    if result_type is RefundResult and last.kind in (TransactionKind.REFUND, TransactionKind.VOID):
        return _refund(s, last)
    return None


def _charge(sale: Transaction) -> ChargeResult:
    if sale.status is TransactionStatus.COMPLETED:
        return ChargeResult(
            outcome=ChargeOutcome.CHARGED,
            amount=sale.amount,
            transaction_id=sale.id,
            explanation=f"Charged {sale.amount} ({_NOTE}).",
        )
    return ChargeResult(
        outcome=ChargeOutcome.FAILED,
        amount=sale.amount,
        transaction_id=sale.id,
        explanation=f"The charge of {sale.amount} did not go through, as reconciliation found "
        f"({_NOTE}); nothing was charged. Ask again with a new idempotency key.",
    )


def _refund(s: StoreSession, record: Transaction) -> RefundResult | None:
    original = s.get_transaction(record.parent_id or "")
    if original is None:  # pragma: no cover - written in one session with the record
        return None
    if record.status is TransactionStatus.COMPLETED:
        done = completed_result(original, record, recorded=True)
        return RefundResult(
            transaction_id=done.transaction_id,
            outcome=done.outcome,
            amount=done.amount,
            refund_transaction_id=done.refund_transaction_id,
            explanation=f"{done.explanation} ({_NOTE})",
        )
    entry = s.get_queue_entry(queue_id(record.id))
    if entry is None:  # a void that failed: nothing moved
        return RefundResult(
            transaction_id=original.id,
            outcome=RefundOutcome.FAILED,
            amount=record.amount,
            refund_transaction_id=record.id,
            explanation=f"The {record.kind.value} of {record.amount} did not go through, as "
            f"reconciliation found ({_NOTE}); nothing moved. Ask again with a new "
            "idempotency key.",
        )
    gave_up = entry.state is QueueState.GAVE_UP
    return RefundResult(
        transaction_id=original.id,
        outcome=RefundOutcome.GAVE_UP if gave_up else RefundOutcome.QUEUED,
        amount=record.amount,
        refund_transaction_id=record.id,
        queue_entry_id=entry.id,
        explanation=f"The refund of {record.amount} did not go through ({_NOTE}); "
        + (
            "it gave up after its retries and the merchant was notified."
            if gave_up
            else "it is in the retry queue, and the amount stays reserved meanwhile."
        ),
    )
