"""The refund retry queue: claim the refunds due, retry each with its original gateway key, record.

The retry queue tries each failed refund once a day, up to 3 more times, always with the refund's
original gateway key (a gateway never refunds one key twice); after the last failure the entry
gives up, the reservation is released, and the merchant's notify emails get the notice. Claims
are leases with a fencing number (``QueueEntry.held_by``); see docs/reliability.md.
"""

from __future__ import annotations

import logging
from datetime import datetime

import attrs

from ..plugins.events import (
    RefundFailed,
)
from ..plugins.protocols import (
    GatewayOutcome,
    OutcomeStatus,
    StoreSession,
)
from ..plugins.records import Attempt, QueueEntry, QueueState
from .context import EngineContext
from .refund_recording import record_in_doubt, record_success, schedule_retry
from .refund_records import DOUBTFUL, error_text, locked_parent, send, stale_detail
from .results import QueueRunResult

_log = logging.getLogger("billing_core.engine")

__all__ = ["process_refund_queue", "register_failure"]

_log = logging.getLogger("billing_core.engine")


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
    ``queue.lease_lost`` audit line, except a gateway success, which ``record_completed`` records
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
    outcome = send(ctx, original, record)
    if outcome.status is OutcomeStatus.SUCCEEDED:
        _, recorded = record_success(
            ctx, record, outcome, actor=ctx.worker_id, retried=True, claim=claim
        )
        return "succeeded" if recorded else "lease_lost"
    if outcome.status in DOUBTFUL:
        with ctx.store.session() as s:
            locked_parent(
                s, record
            )  # the lock order of every refund write: original, record, entry
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
            record_in_doubt(ctx, record, outcome, actor=ctx.worker_id)
        return "unknown"
    return register_failure(ctx, claim.id, outcome, now, claim=claim)


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
        detail=stale_detail(claim, s.get_queue_entry(claim.id), outcome, stage=stage),
    )


def register_failure(
    ctx: EngineContext,
    entry_id: str,
    outcome: GatewayOutcome,
    now: datetime,
    *,
    claim: QueueEntry | None = None,
) -> str:
    """A retry failed: add the attempt, then queue the next one or give up. With ``claim``,
    only while the claim still holds the lease (else a ``queue.lease_lost`` audit line)."""
    error = error_text(outcome)
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
        gave_up, updated = schedule_retry(ctx, s, failed, now)
    if gave_up:
        return "gave_up"
    ctx.emit(RefundFailed(at=now, entry=updated, error=error, decline_code=outcome.decline_code))
    return "retry_later"
