"""Recording the gateway's answer to a refund or void (step 3 of ``refunding``).

Every write here is a compare-and-set on the written-ahead record (``recording.locked_if_unchanged``):
a success moves the reservation to ``refunded`` once, whoever recorded it first; a doubtful
answer leaves the record ``unknown``/``pending`` for ``reconcile``; a failed void releases its
reservation; a failed refund keeps it and enters the retry queue (``schedule_retry`` queues the
next try or gives up, releases and notifies). Used by the refund flows, the queue and
``reconcile``.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from ..model import Transaction, TransactionKind, TransactionStatus
from ..plugins.events import (
    RefundFailed,
    RefundGaveUp,
    RefundIssued,
    VoidIssued,
)
from ..plugins.protocols import (
    GatewayOutcome,
    OutcomeStatus,
    StoreSession,
)
from ..plugins.records import Attempt, QueueEntry, QueueState
from ..rules import refund_effects as effects
from ..rules.retry import give_up_notice, next_retry
from ..serialization import unstructure
from .certificate_refunds import give_back
from .context import EngineContext
from .recording import locked_if_unchanged
from .refund_records import (
    IN_DOUBT,
    completed_result,
    error_text,
    locked_parent,
    queue_id,
    stale_detail,
)
from .results import RefundOutcome, RefundResult

__all__ = [
    "moved_on_result",
    "queue_first_failure",
    "record_completed",
    "record_in_doubt",
    "record_success",
    "record_void_failed",
    "schedule_retry",
]


def record_completed(
    ctx: EngineContext,
    record: Transaction,
    outcome: GatewayOutcome,
    *,
    actor: str,
    retried: bool = False,
    claim: QueueEntry | None = None,
) -> RefundResult:
    """The gateway carried out ``record``: move its amount from reserved to refunded, once."""
    return record_success(ctx, record, outcome, actor=actor, retried=retried, claim=claim)[0]


def record_success(
    ctx: EngineContext,
    record: Transaction,
    outcome: GatewayOutcome,
    *,
    actor: str,
    retried: bool,
    claim: QueueEntry | None,
) -> tuple[RefundResult, bool]:
    """``record_completed``, and whether this call recorded the success (False: it was already).

    ``claim`` is the queue entry as the retrying worker claimed it (None outside the queue). A
    record that is already ``completed`` (the worker that took the lease over, or
    ``reconcile``, recorded the same gateway refund first) is left alone and audited: the money
    is counted once. Otherwise the success is recorded whoever holds the lease, because the
    money has moved: a stale worker's success completes the refund and the entry, and the
    owner's own call, made with the same gateway key, gets the same success replayed and finds
    it recorded. If the entry had given up meanwhile (the owner's retry was declined before
    this call reached the gateway), its released reservation is taken again and completed."""
    with ctx.store.session() as s:
        original = locked_parent(s, record)
        current, _ = locked_if_unchanged(ctx, s, record, outcome, actor=actor)
        entry = s.get_queue_entry(queue_id(record.id), lock=True)
        stale = claim is not None and (entry is None or not entry.held_by(claim))
        if current.status is TransactionStatus.COMPLETED:
            ctx.audit(
                s,
                action="queue.lease_lost" if stale else f"{record.kind.value}.already_recorded",
                subject_id=record.id,
                actor=actor,
                detail=stale_detail(claim, entry, outcome, recorded=False),
            )
            return completed_result(original, current, recorded=False), False
        if _released(current, entry):  # failed meanwhile: the money moved after all
            original = attrs.evolve(original, reserved=original.reserved + current.amount)
        done = effects.complete_refund(original, current, gateway_reference=outcome.reference)
        s.update_transaction(done.original)
        s.update_transaction(attrs.evolve(done.record, settled=outcome.settled))
        if entry is not None and entry.state is not QueueState.SUCCEEDED:
            s.put_queue_entry(
                attrs.evolve(
                    entry,
                    state=QueueState.SUCCEEDED,
                    claimed_by=None,
                    lease_until=None,
                    attempts=(*entry.attempts, Attempt(at=ctx.now(), outcome="succeeded")),
                )
            )
        detail: dict[str, object] = {"original": original.id, "reference": outcome.reference}
        if stale:
            detail.update(stale_detail(claim, entry, outcome, recorded=True))
        ctx.audit(
            s,
            action=f"{record.kind.value}.succeeded",
            subject_id=record.id,
            actor=actor,
            detail=detail,
        )
    give_back(ctx, original, done.original, actor=actor)  # certificates and inventory
    event_at = ctx.now()
    if record.kind is TransactionKind.VOID:
        ctx.emit(
            VoidIssued(
                at=event_at,
                void=done.record,
                original=done.original,
                gateway=original.gateway or "",
            )
        )
    else:
        ctx.emit(
            RefundIssued(
                at=event_at,
                refund=done.record,
                original=done.original,
                gateway=original.gateway or "",
                retried=retried,
            )
        )
    return completed_result(done.original, done.record, recorded=True), True


def _released(record: Transaction, entry: QueueEntry | None) -> bool:
    """Whether the stored ``record`` gave its reservation back (a failed void, or a refund whose
    queue entry gave up): a late success then takes it again before completing."""
    if record.status is not TransactionStatus.FAILED:
        return False
    return record.kind is TransactionKind.VOID or entry is None or entry.state is QueueState.GAVE_UP


def _reopens(original: Transaction, stored: Transaction) -> bool:
    """Whether a late doubtful answer puts the stored ``void`` back in doubt: reconcile failed it
    (the gateway had not received it yet) and released its amount, which nothing has taken
    since. It is reserved again and left ``unknown`` for the next ``reconcile``. (A refund
    failed meanwhile is in the queue, whose retry with the same key learns the truth.)"""
    return (
        stored.kind is TransactionKind.VOID
        and stored.status is TransactionStatus.FAILED
        and original.refunded + original.reserved + stored.amount <= original.amount
    )


def moved_on_result(original: Transaction, stored: Transaction) -> RefundResult:
    """The answer of a call whose record another entry point moved on during its gateway call
    (its late answer was audited, not written): what the store says now."""
    if stored.status is TransactionStatus.COMPLETED:
        return completed_result(original, stored, recorded=False)
    if stored.status in IN_DOUBT:
        outcome = RefundOutcome.UNKNOWN
    elif stored.kind is TransactionKind.VOID:
        outcome = RefundOutcome.FAILED
    else:
        outcome = RefundOutcome.QUEUED
    return RefundResult(
        transaction_id=original.id,
        outcome=outcome,
        amount=stored.amount,
        refund_transaction_id=stored.id,
        queue_entry_id=queue_id(stored.id) if outcome is RefundOutcome.QUEUED else None,
        explanation=f"The {stored.kind.value} of {stored.amount} was recorded as "
        f"{stored.status.value} by another worker (reconcile or the queue) while this call "
        "waited for the gateway; its late answer was audited, not written.",
    )


def record_in_doubt(
    ctx: EngineContext, record: Transaction, outcome: GatewayOutcome, *, actor: str
) -> RefundResult:
    status = (
        TransactionStatus.PENDING
        if outcome.status is OutcomeStatus.PENDING
        else TransactionStatus.UNKNOWN
    )
    with ctx.store.session() as s:
        original = locked_parent(s, record)
        current, unchanged = locked_if_unchanged(ctx, s, record, outcome, actor=actor)
        reopened = not unchanged and _reopens(original, current)
        if reopened:  # reconcile failed a void that the gateway may carry out after all
            original = attrs.evolve(original, reserved=original.reserved + current.amount)
            s.update_transaction(original)
        if unchanged or reopened:
            s.update_transaction(attrs.evolve(current, status=status))
            ctx.audit(
                s,
                action=f"{record.kind.value}.{status.value}",
                subject_id=record.id,
                actor=actor,
                detail={"message": outcome.message},
            )
    if not (unchanged or reopened):
        return moved_on_result(original, current)
    return RefundResult(
        transaction_id=record.parent_id or "",
        outcome=RefundOutcome.UNKNOWN,
        amount=record.amount,
        refund_transaction_id=record.id,
        explanation=(
            f"The gateway's answer to the {record.kind.value} of {record.amount} was lost "
            f"({outcome.message or status.value}). The amount stays reserved and no other "
            "money moves on this payment until reconciliation asks the gateway."
        ),
    )


def record_void_failed(
    ctx: EngineContext,
    void: Transaction,
    outcome: GatewayOutcome,
    *,
    actor: str,
    answers: int | None = None,
) -> RefundResult:
    """A void that was declined (not for settlement) or never sent: nothing happened.
    (``answers``: ``reconcile``'s fence, see ``recording.answers_recorded``.)"""
    with ctx.store.session() as s:
        original = locked_parent(s, void)
        current, unchanged = locked_if_unchanged(
            ctx, s, void, outcome, actor=actor, answers=answers
        )
        if unchanged:
            released = effects.release_refund(original, current)
            s.update_transaction(released.original)
            s.update_transaction(released.record)
            ctx.audit(
                s,
                action="void.failed",
                subject_id=void.id,
                actor=actor,
                detail={"status": outcome.status.value, "message": outcome.message},
            )
    if not unchanged:
        return moved_on_result(original, current)
    why = "was never sent" if outcome.status is OutcomeStatus.NOT_SENT else "was declined"
    return RefundResult(
        transaction_id=original.id,
        outcome=RefundOutcome.FAILED,
        amount=void.amount,
        refund_transaction_id=void.id,
        reason=outcome.decline_code,
        explanation=f"The void of {void.amount} {why} ({outcome.message}); nothing was voided. "
        "Ask again with a new idempotency key.",
    )


def queue_first_failure(
    ctx: EngineContext, record: Transaction, outcome: GatewayOutcome, *, actor: str
) -> RefundResult:
    now = ctx.now()
    error = error_text(outcome)
    with ctx.store.session() as s:
        original = locked_parent(s, record)
        current, unchanged = locked_if_unchanged(ctx, s, record, outcome, actor=actor)
        if not unchanged:
            return moved_on_result(original, current)
        failed = attrs.evolve(current, status=TransactionStatus.FAILED)
        s.update_transaction(failed)
        entry = QueueEntry(
            id=queue_id(record.id),
            refund_transaction_id=record.id,
            original_transaction_id=record.parent_id or "",
            amount=record.amount,
            idempotency_key=record.idempotency_key or record.id,
            created_at=now,
            attempts=(Attempt(at=now, outcome=outcome.status.value, error=error),),
        )
        gave_up, entry = schedule_retry(ctx, s, entry, now)
        ctx.audit(
            s,
            action="refund.failed",
            subject_id=record.id,
            actor=actor,
            detail={"error": error, "queue_entry": entry.id},
        )
    if gave_up:
        return RefundResult(
            transaction_id=record.parent_id or "",
            outcome=RefundOutcome.GAVE_UP,
            amount=record.amount,
            refund_transaction_id=record.id,
            queue_entry_id=entry.id,
            explanation=f"The refund of {record.amount} failed ({error}) and the policy allows "
            "no retry; the merchant was notified.",
        )
    ctx.emit(RefundFailed(at=now, entry=entry, error=error, decline_code=outcome.decline_code))
    when = entry.next_attempt_at.isoformat() if entry.next_attempt_at else "later"
    return RefundResult(
        transaction_id=record.parent_id or "",
        outcome=RefundOutcome.QUEUED,
        amount=record.amount,
        refund_transaction_id=record.id,
        queue_entry_id=entry.id,
        reason=outcome.decline_code,
        explanation=f"The gateway did not refund {record.amount} ({error}). The refund is "
        f"queued and will be tried again at {when}, up to {ctx.retry_policy.retries} times; "
        "the amount stays reserved meanwhile.",
    )


def schedule_retry(
    ctx: EngineContext, s: StoreSession, entry: QueueEntry, now: datetime
) -> tuple[bool, QueueEntry]:
    """After a failed attempt: queue the next one, or give up, release and notify."""
    last = entry.attempts[-1].at if entry.attempts else now
    nxt = next_retry(entry.failures, last, ctx.retry_policy)
    if nxt is not None:
        queued = attrs.evolve(
            entry, state=QueueState.QUEUED, next_attempt_at=nxt, claimed_by=None, lease_until=None
        )
        s.put_queue_entry(queued)
        return False, queued
    gave_up = attrs.evolve(
        entry, state=QueueState.GAVE_UP, next_attempt_at=None, claimed_by=None, lease_until=None
    )
    s.put_queue_entry(gave_up)
    record = s.get_transaction(entry.refund_transaction_id, lock=True)
    original = s.get_transaction(entry.original_transaction_id, lock=True)
    if record is not None and original is not None:
        released = effects.release_refund(original, record)
        s.update_transaction(released.original)
        s.update_transaction(released.record)
    notice = give_up_notice(
        transaction_id=entry.original_transaction_id,
        refund_id=entry.refund_transaction_id,
        amount=entry.amount,
        attempts=entry.attempts,
        notify_emails=ctx.notify_emails,
        idempotency_key=entry.idempotency_key,
    )
    ctx.audit(
        s,
        action="refund.gave_up",
        subject_id=entry.refund_transaction_id,
        actor=ctx.worker_id,
        detail={"attempts": len(entry.attempts), "notify": list(ctx.notify_emails)},
    )
    ctx.emit(
        RefundGaveUp(
            at=now,
            entry=gave_up,
            notify_emails=ctx.notify_emails,
            subject=notice.subject,
            message=notice.explanation,
            detail=unstructure(notice),
        )
    )
    return True, gave_up
