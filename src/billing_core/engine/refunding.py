"""Refunds: decide, write ahead, call the gateway, record what happened, retry, reconcile.

The order of every refund or void, whatever the caller:

1. **Decide and reserve**, in one store session holding the original transaction locked: the
   rules (``refund_effects.plan_order_refund``) decide on the transaction as stored, never on a
   copy in memory; the decided amount is *reserved* on the original, and the refund (or void)
   transaction is written ahead with status ``unknown`` and its gateway idempotency key. A second
   worker asking at the same moment waits for the lock and then sees the reservation, so the
   refunded plus reserved total never exceeds the captured amount (the store refuses such a write
   too).
2. **Call the gateway**, outside any session, with the written-ahead id and key.
3. **Record the outcome**, in a second session: succeeded moves the reservation to ``refunded``
   and sets the statuses; a void declined because the charge settled meanwhile becomes a refund
   (void first, refund on fallback); a declined or unsent refund keeps its reservation and enters
   the retry queue; an unknown answer leaves the record ``unknown``, which blocks any other money
   movement on the transaction until ``reconcile`` asks the gateway.

The retry queue tries each failed refund once a day, up to 3 more times, always with the refund's
original gateway key (a gateway never refunds one key twice); after the last failure the entry
gives up, the reservation is released, and the merchant's notify emails get the notice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

import attrs

from ..errors import InvalidValueError, NotFoundError
from ..model import CertificateStatus, Transaction, TransactionKind, TransactionStatus
from ..money import Money
from ..plugins.events import (
    OutcomeReconciled,
    OutcomeUnknown,
    RefundFailed,
    RefundGaveUp,
    RefundIssued,
    VoidIssued,
)
from ..plugins.protocols import (
    GatewayOperation,
    GatewayOutcome,
    GatewayRequest,
    OutcomeStatus,
    StoreSession,
)
from ..plugins.records import Attempt, IdempotencyState, QueueEntry, QueueState
from ..rules import refund_effects as effects
from ..rules.refund_requests import requested_amount, requested_lines
from ..rules.refunds import RefundStep
from ..rules.retry import give_up_notice, next_retry
from ..rules.transitions import RefundAction
from ..serialization import unstructure
from .certificate_refunds import give_back
from .context import EngineContext, call_gateway, lookup
from .recording import locked_if_unchanged
from .results import QueueRunResult, ReconcileResult, RefundOutcome, RefundResult
from .written_ahead import note_write_ahead

_log = logging.getLogger("billing_core.engine")

__all__ = ["process_refund_queue", "reconcile", "refund", "sync_settlement"]

_IN_DOUBT = (TransactionStatus.UNKNOWN, TransactionStatus.PENDING)
"""Records whose gateway outcome is not known yet: they block money movement and get reconciled."""
_DOUBTFUL = (OutcomeStatus.UNKNOWN, OutcomeStatus.PENDING)
"""Gateway answers that leave the outcome open."""


def queue_id(refund_id: str) -> str:
    """The queue entry of a refund transaction has a derived id: one entry per refund, ever."""
    return f"q-{refund_id}"


# -- 1. decide and reserve ---------------------------------------------------------------------
def refund(
    ctx: EngineContext,
    transaction_id: str,
    *,
    amount: Money | None,
    certificates: Mapping[int | str, int] | None,
    key: str,
    actor: str,
) -> RefundResult:
    """Refund (or void) ``transaction_id``: the whole remainder, an amount, or certificates."""
    unlocked = _check_request(ctx, transaction_id, amount, certificates)
    sync_settlement(ctx, transaction_id)
    # the provider is asked before the row lock is taken: a slow provider must not hold it
    # (certificate lines never change after the sale, so the unlocked read names the same ones)
    fresh = _provider_statuses(ctx, _certificate_ids(unlocked, certificates))
    now = ctx.now()
    with ctx.store.session() as s:
        original = s.get_transaction(transaction_id, lock=True)
        if original is None:
            raise NotFoundError(f"no transaction {transaction_id!r}", field="transaction_id")
        doubt = _in_doubt_children(s, original, now)
        if doubt:
            ctx.audit(
                s,
                action="refund.blocked",
                subject_id=original.id,
                actor=actor,
                detail={"in_doubt": doubt},
            )
            return RefundResult(
                transaction_id=original.id,
                outcome=RefundOutcome.DENIED,
                reason="outcome_unknown",
                explanation=(
                    f"A refund or void of this payment ({', '.join(doubt)}) has an unknown "
                    "outcome at the gateway; no more money can move on it until it is "
                    "reconciled."
                ),
            )
        plan = effects.plan_order_refund(
            original,
            now=now,
            amount=amount,
            certificates=certificates,
            certificate=_certificate_status(s, _certificate_ids(original, certificates), fresh),
            policy=ctx.refund_policy,
        )
        if not plan.steps:
            decision = plan.decision
            ctx.audit(
                s,
                action="refund.denied",
                subject_id=original.id,
                actor=actor,
                detail={"reason": str(decision.reason), "explanation": decision.explanation},
            )
            return RefundResult(
                transaction_id=original.id,
                outcome=RefundOutcome.DENIED,
                reason=str(decision.reason),
                explanation=decision.explanation,
            )
        first = plan.steps[0]
        record = _write_ahead(ctx, s, original, first, key=key, actor=actor, now=now)
    outcome = _send(ctx, original, record)
    return _record_outcome(ctx, plan, record, outcome, key=key, actor=actor)


def _check_request(
    ctx: EngineContext,
    transaction_id: str,
    amount: object,
    certificates: Mapping[int | str, int] | None,
) -> Transaction:
    """Refuse bad input (an amount or certificate lines that cannot be asked of this payment)
    before anything is written, even the settlement ``sync_settlement`` learns; returns the
    transaction as read (unlocked)."""
    with ctx.store.session() as s:
        original = s.get_transaction(transaction_id)
    if original is None:
        raise NotFoundError(f"no transaction {transaction_id!r}", field="transaction_id")
    if amount is not None and certificates is not None:
        raise InvalidValueError(
            "give either amount or certificates, not both", field="certificates", value=certificates
        )
    requested_amount(amount, original)
    if certificates is not None:
        requested_lines(certificates, original)
    return original


def _write_ahead(
    ctx: EngineContext,
    s: StoreSession,
    original: Transaction,
    step: RefundStep,
    *,
    key: str,
    actor: str,
    now: datetime,
) -> Transaction:
    """Reserve ``step`` on ``original`` and store the ``unknown`` record before the gateway call."""
    refund_id = ctx.ids("rf" if step.action is RefundAction.REFUND else "vd")
    gateway_key = f"{key}:{step.action.value}"
    applied = effects.reserve_refund(
        original, step, refund_id=refund_id, at=now, idempotency_key=gateway_key
    )
    record = attrs.evolve(applied.record, status=TransactionStatus.UNKNOWN)
    s.update_transaction(applied.original)
    s.insert_transaction(record)
    note_write_ahead(s, key, record.id)  # the key's lease fence: raises if it was taken over
    ctx.audit(
        s,
        action=f"{step.action.value}.write_ahead",
        subject_id=record.id,
        actor=actor,
        detail={
            "original": original.id,
            "amount": unstructure(step.amount),
            "idempotency_key": gateway_key,
        },
    )
    return record


# -- 2. call the gateway -------------------------------------------------------------------------
def _send(ctx: EngineContext, original: Transaction, record: Transaction) -> GatewayOutcome:
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


# -- 3. record the outcome -----------------------------------------------------------------------
def _record_outcome(
    ctx: EngineContext,
    plan: effects.OrderRefundPlan,
    record: Transaction,
    outcome: GatewayOutcome,
    *,
    key: str,
    actor: str,
) -> RefundResult:
    status = outcome.status
    if status is OutcomeStatus.SUCCEEDED:
        return _completed(ctx, record, outcome, actor=actor)
    if status in _DOUBTFUL:
        return _in_doubt(ctx, record, outcome, actor=actor)
    if record.kind is TransactionKind.VOID:
        nxt = effects.after_void(plan, effects.void_result(status.value, outcome.decline_code))
        if nxt.action is effects.NextAction.REFUND and nxt.step is not None:
            return _void_became_refund(ctx, plan, record, nxt.step, key=key, actor=actor)
        return _void_failed(ctx, record, outcome, actor=actor)
    return _queue_first_failure(ctx, record, outcome, actor=actor)


def _completed(
    ctx: EngineContext,
    record: Transaction,
    outcome: GatewayOutcome,
    *,
    actor: str,
    retried: bool = False,
    claim: QueueEntry | None = None,
) -> RefundResult:
    """The gateway carried out ``record``: move its amount from reserved to refunded, once."""
    return _record_success(ctx, record, outcome, actor=actor, retried=retried, claim=claim)[0]


def _record_success(
    ctx: EngineContext,
    record: Transaction,
    outcome: GatewayOutcome,
    *,
    actor: str,
    retried: bool,
    claim: QueueEntry | None,
) -> tuple[RefundResult, bool]:
    """``_completed``, and whether this call recorded the success (False: it was already).

    ``claim`` is the queue entry as the retrying worker claimed it (None outside the queue). A
    record that is already ``completed`` (the worker that took the lease over, or
    ``reconcile``, recorded the same gateway refund first) is left alone and audited: the money
    is counted once. Otherwise the success is recorded whoever holds the lease, because the
    money has moved: a stale worker's success completes the refund and the entry, and the
    owner's own call, made with the same gateway key, gets the same success replayed and finds
    it recorded. If the entry had given up meanwhile (the owner's retry was declined before
    this call reached the gateway), its released reservation is taken again and completed."""
    with ctx.store.session() as s:
        original = _parent(s, record)
        current, _ = locked_if_unchanged(ctx, s, record, outcome, actor=actor)
        entry = s.get_queue_entry(queue_id(record.id), lock=True)
        stale = claim is not None and (entry is None or not entry.held_by(claim))
        if current.status is TransactionStatus.COMPLETED:
            ctx.audit(
                s,
                action="queue.lease_lost" if stale else f"{record.kind.value}.already_recorded",
                subject_id=record.id,
                actor=actor,
                detail=_stale_detail(claim, entry, outcome, recorded=False),
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
            detail.update(_stale_detail(claim, entry, outcome, recorded=True))
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


def _moved_on(original: Transaction, stored: Transaction) -> RefundResult:
    """The answer of a call whose record another entry point moved on during its gateway call
    (its late answer was audited, not written): what the store says now."""
    if stored.status is TransactionStatus.COMPLETED:
        return completed_result(original, stored, recorded=False)
    if stored.status in _IN_DOUBT:
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


def _stale_detail(
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


def _in_doubt(
    ctx: EngineContext, record: Transaction, outcome: GatewayOutcome, *, actor: str
) -> RefundResult:
    status = (
        TransactionStatus.PENDING
        if outcome.status is OutcomeStatus.PENDING
        else TransactionStatus.UNKNOWN
    )
    with ctx.store.session() as s:
        original = _parent(s, record)
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
        return _moved_on(original, current)
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


def _void_became_refund(
    ctx: EngineContext,
    plan: effects.OrderRefundPlan,
    void: Transaction,
    step: RefundStep,
    *,
    key: str,
    actor: str,
) -> RefundResult:
    """The charge settled before the void: release the void, mark settled, refund instead."""
    with ctx.store.session() as s:
        original = _parent(s, void)
        current = s.get_transaction(void.id, lock=True) or void
        released = effects.release_refund(original, current)
        s.update_transaction(released.record)
        settled = attrs.evolve(released.original, settled=True, settled_at=ctx.now())
        ctx.audit(
            s,
            action="void.settled_meanwhile",
            subject_id=void.id,
            actor=actor,
            detail={"original": original.id},
        )
        record = _write_ahead(ctx, s, settled, step, key=key, actor=actor, now=ctx.now())
    outcome = _send(ctx, settled, record)
    return _record_outcome(ctx, plan, record, outcome, key=key, actor=actor)


def _void_failed(
    ctx: EngineContext, void: Transaction, outcome: GatewayOutcome, *, actor: str
) -> RefundResult:
    """A void that was declined (not for settlement) or never sent: nothing happened."""
    with ctx.store.session() as s:
        original = _parent(s, void)
        current, unchanged = locked_if_unchanged(ctx, s, void, outcome, actor=actor)
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
        return _moved_on(original, current)
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


def _queue_first_failure(
    ctx: EngineContext, record: Transaction, outcome: GatewayOutcome, *, actor: str
) -> RefundResult:
    now = ctx.now()
    error = _error(outcome)
    with ctx.store.session() as s:
        original = _parent(s, record)
        current, unchanged = locked_if_unchanged(ctx, s, record, outcome, actor=actor)
        if not unchanged:
            return _moved_on(original, current)
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
        gave_up, entry = _schedule(ctx, s, entry, now)
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


def _schedule(
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


# -- the retry queue -------------------------------------------------------------------------------
def process_refund_queue(
    ctx: EngineContext, *, now: datetime | None = None, limit: int = 100
) -> QueueRunResult:
    """Retry every refund due at ``now``: claim, call the gateway with the original key, record."""
    at = now or ctx.now()
    with ctx.store.session() as s:
        entries = s.claim_due(
            now=at, worker=ctx.worker_id, lease_seconds=ctx.lease_seconds, limit=limit
        )
    counts = {"succeeded": 0, "retry_later": 0, "gave_up": 0, "unknown": 0, "lease_lost": 0}
    failed: list[tuple[str, str]] = []
    for entry in entries:
        try:
            counts[_retry(ctx, entry, at)] += 1
        except Exception as exc:  # one bad entry is reported; the others are still retried
            _log.exception("the refund queue failed on %s", entry.id)
            failed.append((entry.id, f"{type(exc).__name__}: {exc}"))
    return QueueRunResult(
        failed=tuple(failed),
        claimed=len(entries),
        succeeded=counts["succeeded"],
        retry_later=counts["retry_later"],
        gave_up=counts["gave_up"],
        unknown=counts["unknown"],
        lease_lost=counts["lease_lost"],
    )


def _retry(ctx: EngineContext, claim: QueueEntry, now: datetime) -> str:
    """Retry the refund of ``claim`` (the entry as this worker claimed it, with its fence).

    Every write checks, under the entry's row lock, that the claim still holds the lease (see
    ``QueueEntry.held_by``); a worker whose lease was taken over records nothing but a
    ``queue.lease_lost`` audit line, except a gateway success, which ``_completed`` records
    once whoever holds the lease. The interleavings are listed in docs/reliability.md."""
    with ctx.store.session() as s:
        record = s.get_transaction(claim.refund_transaction_id)
        original = s.get_transaction(claim.original_transaction_id)
        stored = s.get_queue_entry(claim.id)
    if record is None or original is None:  # pragma: no cover - written in one session
        return "unknown"
    if stored is None or not stored.held_by(claim):  # taken over before the call: no call
        with ctx.store.session() as s:
            _lease_lost(ctx, s, claim, None, stage="before the gateway call")
        return "lease_lost"
    outcome = _send(ctx, original, record)
    if outcome.status is OutcomeStatus.SUCCEEDED:
        _, recorded = _record_success(
            ctx, record, outcome, actor=ctx.worker_id, retried=True, claim=claim
        )
        return "succeeded" if recorded else "lease_lost"
    if outcome.status in _DOUBTFUL:
        with ctx.store.session() as s:
            _parent(s, record)  # the lock order of every refund write: original, record, entry
            s.get_transaction(record.id, lock=True)
            current = s.get_queue_entry(claim.id, lock=True)
            if current is None or not current.held_by(claim):
                _lease_lost(ctx, s, claim, outcome, stage="after the gateway call")
                return "lease_lost"
            s.put_queue_entry(
                attrs.evolve(
                    current,
                    state=QueueState.QUEUED,
                    next_attempt_at=None,
                    claimed_by=None,
                    lease_until=None,
                    attempts=(*current.attempts, Attempt(at=now, outcome=outcome.status.value)),
                )
            )
            _in_doubt(ctx, record, outcome, actor=ctx.worker_id)
        return "unknown"
    return _register_failure(ctx, claim.id, outcome, now, claim=claim)


def _lease_lost(
    ctx: EngineContext,
    s: StoreSession,
    claim: QueueEntry,
    outcome: GatewayOutcome | None,
    *,
    stage: str,
) -> None:
    """Audit a write this worker did not make because its lease was taken over."""
    ctx.audit(
        s,
        action="queue.lease_lost",
        subject_id=claim.refund_transaction_id,
        actor=ctx.worker_id,
        detail=_stale_detail(claim, s.get_queue_entry(claim.id), outcome, stage=stage),
    )


def _register_failure(
    ctx: EngineContext,
    entry_id: str,
    outcome: GatewayOutcome,
    now: datetime,
    *,
    claim: QueueEntry | None = None,
) -> str:
    """A retry failed: add the attempt, then queue the next one or give up. With ``claim``,
    only while the claim still holds the lease (else a ``queue.lease_lost`` audit line)."""
    error = _error(outcome)
    with ctx.store.session() as s:
        peek = s.get_queue_entry(entry_id)
        if peek is None:  # pragma: no cover - entries are never deleted
            return "unknown"
        s.get_transaction(peek.original_transaction_id, lock=True)  # lock order: original,
        s.get_transaction(peek.refund_transaction_id, lock=True)  # record, entry
        current = s.get_queue_entry(entry_id, lock=True) or peek
        if claim is not None and not current.held_by(claim):
            _lease_lost(ctx, s, claim, outcome, stage="after the gateway call")
            return "lease_lost"
        if current.state in (QueueState.SUCCEEDED, QueueState.GAVE_UP):
            return "unknown"
        failed = attrs.evolve(
            current,
            attempts=(
                *current.attempts,
                Attempt(at=now, outcome=outcome.status.value, error=error),
            ),
        )
        gave_up, updated = _schedule(ctx, s, failed, now)
    if gave_up:
        return "gave_up"
    ctx.emit(RefundFailed(at=now, entry=updated, error=error, decline_code=outcome.decline_code))
    return "retry_later"


# -- reconciliation ----------------------------------------------------------------------------------
def reconcile(ctx: EngineContext) -> ReconcileResult:
    """Ask the gateway about every transaction whose outcome is unknown or pending, and record
    what it says. What the gateway itself cannot tell stays unknown (and is reported)."""
    now = ctx.now()
    with ctx.store.session() as s:
        doubtful = [t for t in s.list_transactions(statuses=_IN_DOUBT) if not _in_flight(s, t, now)]
    resolved = 0
    still: list[str] = []
    failed: list[tuple[str, str]] = []
    for record in doubtful:
        try:
            gateway = ctx.gateway(record.gateway)
            outcome = lookup(gateway, record.id, record.idempotency_key or record.id)
            if outcome.status in _DOUBTFUL:
                still.append(record.id)
                continue
            _resolve(ctx, record, outcome)
        except Exception as exc:  # one bad record is reported; the others are still reconciled
            _log.exception("reconcile failed on %s", record.id)
            failed.append((record.id, f"{type(exc).__name__}: {exc}"))
            continue
        resolved += 1
        ctx.emit(
            OutcomeReconciled(
                at=ctx.now(),
                transaction=_stored(ctx, record.id),
                outcome=outcome,
                gateway=gateway.name,
            )
        )
    return ReconcileResult(
        checked=len(doubtful), resolved=resolved, still_unknown=tuple(still), failed=tuple(failed)
    )


def _resolve(ctx: EngineContext, record: Transaction, outcome: GatewayOutcome) -> None:
    actor = ctx.worker_id
    if record.kind in (TransactionKind.REFUND, TransactionKind.VOID):
        if outcome.status is OutcomeStatus.SUCCEEDED:
            _completed(ctx, record, outcome, actor=actor)
        elif record.kind is TransactionKind.VOID:
            _void_failed(ctx, record, outcome, actor=actor)
        else:
            with ctx.store.session() as s:
                entry = s.get_queue_entry(queue_id(record.id))
            if entry is None:
                _queue_first_failure(ctx, record, outcome, actor=actor)
            else:
                with ctx.store.session() as s:
                    _parent(s, record)
                    current, unchanged = locked_if_unchanged(ctx, s, record, outcome, actor=actor)
                    if unchanged:
                        s.update_transaction(attrs.evolve(current, status=TransactionStatus.FAILED))
                if unchanged:
                    _register_failure(ctx, entry.id, outcome, ctx.now())
        return
    with ctx.store.session() as s:
        current, unchanged = locked_if_unchanged(ctx, s, record, outcome, actor=actor)
        if not unchanged:  # the charge's own answer was recorded meanwhile
            return
        if outcome.status is OutcomeStatus.SUCCEEDED:
            updated = attrs.evolve(
                current,
                status=TransactionStatus.COMPLETED,
                gateway_reference=outcome.reference,
                settled=outcome.settled,
                settled_at=ctx.now() if outcome.settled else None,
            )
        else:
            updated = attrs.evolve(current, status=TransactionStatus.FAILED)
        s.update_transaction(updated)
        ctx.audit(
            s,
            action=f"{record.kind.value}.reconciled",
            subject_id=record.id,
            actor=actor,
            detail={"status": outcome.status.value},
        )


def sync_settlement(ctx: EngineContext, transaction_id: str) -> None:
    """Learn from the gateway whether an unsettled charge has settled (a read, moves nothing)."""
    with ctx.store.session() as s:
        t = s.get_transaction(transaction_id)
    if (
        t is None
        or t.settled
        or t.kind not in (TransactionKind.SALE, TransactionKind.CAPTURE)
        or t.status not in (TransactionStatus.COMPLETED, TransactionStatus.PARTIALLY_REFUNDED)
        or t.gateway not in ctx.gateways
    ):
        return
    outcome = lookup(ctx.gateway(t.gateway), t.id, t.idempotency_key or t.id)
    if outcome.status is OutcomeStatus.SUCCEEDED and outcome.settled:
        with ctx.store.session() as s:
            current = s.get_transaction(transaction_id, lock=True)
            if current is not None and not current.settled:
                s.update_transaction(attrs.evolve(current, settled=True, settled_at=ctx.now()))


# -- helpers ---------------------------------------------------------------------------------------
def _parent(s: StoreSession, record: Transaction) -> Transaction:
    original = s.get_transaction(record.parent_id or "", lock=True)
    if original is None:  # pragma: no cover - written in one session with the record
        raise NotFoundError(f"no transaction {record.parent_id!r}", field="parent_id")
    return original


def _stored(ctx: EngineContext, transaction_id: str) -> Transaction:
    with ctx.store.session() as s:
        t = s.get_transaction(transaction_id)
    if t is None:  # pragma: no cover
        raise NotFoundError(f"no transaction {transaction_id!r}", field="transaction_id")
    return t


def _in_doubt_children(s: StoreSession, original: Transaction, now: datetime) -> list[str]:
    """The refunds and voids of ``original`` whose gateway outcome is in doubt: answered
    ``unknown``/``pending``, or written ahead by a call that has ended without recording an
    answer. A record written ahead by a call still running (its engine idempotency record is
    ``in_progress`` and its lease has not run out) is in flight, not in doubt: its amount is
    reserved, so concurrent refunds of the rest go on and are decided on what is left
    (``exceeds_refundable``). Once the lease has run out the call is taken for dead."""
    children = s.list_transactions(parent_id=original.id, statuses=_IN_DOUBT)
    return sorted(t.id for t in children if not _in_flight(s, t, now))


def _in_flight(s: StoreSession, record: Transaction, now: datetime) -> bool:
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


def _certificate_ids(
    original: Transaction, certificates: Mapping[int | str, int] | None
) -> list[str]:
    """The certificates the refund is for: those on the chosen lines, or on every line."""
    chosen = {str(k) for k in certificates} if certificates else None
    return [
        line.certificate_id
        for i, line in enumerate(original.lines)
        if line.certificate_id
        and (chosen is None or {str(i), line.certificate_id, line.certificate_type} & chosen)
    ]


def _provider_statuses(ctx: EngineContext, ids: list[str]) -> dict[str, CertificateStatus]:
    """What the certificate provider says now (called outside any store session)."""
    if ctx.certificate_provider is None:
        return {}
    return {cid: CertificateStatus(ctx.certificate_provider.status(cid)) for cid in ids}


def _certificate_status(
    s: StoreSession, ids: list[str], fresh: Mapping[str, CertificateStatus]
) -> CertificateStatus | None:
    """The status that decides the refund: issued wins over pending wins over the rest, so one
    issued certificate blocks a refund of the lines it is on. The provider's answer wins over
    the stored record, which is brought up to date."""
    statuses = []
    for cid in ids:
        stored = s.get_certificate(cid)
        status = fresh.get(cid, stored.status if stored is not None else None)
        if stored is not None and status is not None and status is not stored.status:
            s.put_certificate(attrs.evolve(stored, status=status))
        if status is not None:
            statuses.append(status)
    for worst in (CertificateStatus.ISSUED, CertificateStatus.PENDING):
        if worst in statuses:
            return worst
    return statuses[0] if statuses else None


def _error(outcome: GatewayOutcome) -> str:
    if outcome.status is OutcomeStatus.DECLINED:
        return f"declined: {outcome.decline_code or 'no code'}: {outcome.message}".rstrip(": ")
    return f"{outcome.status.value}: {outcome.message}".rstrip(": ")
