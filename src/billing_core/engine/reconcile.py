"""Reconciliation: ask the gateway about every record whose outcome is unknown or pending.

Records whose engine call is still in flight are skipped; each record is resolved in its own
session, and one that fails is reported in the result while the others go on.
"""

from __future__ import annotations

import logging

import attrs

from ..model import Transaction, TransactionKind, TransactionStatus
from ..plugins.events import (
    OutcomeReconciled,
)
from ..plugins.protocols import (
    GatewayOutcome,
    OutcomeStatus,
)
from .context import EngineContext, lookup
from .recording import answers_recorded, locked_if_unchanged
from .refund_queue import register_failure
from .refund_recording import queue_first_failure, record_completed, record_void_failed
from .refund_records import (
    DOUBTFUL,
    IN_DOUBT,
    in_flight,
    locked_parent,
    queue_id,
    stored_transaction,
)
from .results import ReconcileResult

_log = logging.getLogger("billing_core.engine")

__all__ = ["reconcile"]

_log = logging.getLogger("billing_core.engine")


def reconcile(ctx: EngineContext) -> ReconcileResult:
    """Ask the gateway about every transaction whose outcome is unknown or pending, and record
    what it says. What the gateway itself cannot tell stays unknown (and is reported)."""
    now = ctx.now()
    with ctx.store.session() as s:
        doubtful = [t for t in s.list_transactions(statuses=IN_DOUBT) if not in_flight(s, t, now)]
    resolved = 0
    still: list[str] = []
    failed: list[tuple[str, str]] = []
    for record in doubtful:
        try:
            gateway = ctx.gateway(record.gateway)
            with ctx.store.session() as s:  # the fence: a late answer recorded after this
                seen = answers_recorded(s, record)  # read makes the lookup below stale
            outcome = lookup(gateway, record.id, record.idempotency_key or record.id)
            if outcome.status in DOUBTFUL:
                still.append(record.id)
                continue
            _resolve(ctx, record, outcome, seen)
            current = stored_transaction(ctx, record.id)
        except Exception as exc:  # one bad record is reported; the others are still reconciled
            _log.exception("reconcile failed on %s", record.id)
            failed.append((record.id, f"{type(exc).__name__}: {exc}"))
            continue
        if current.status in IN_DOUBT:  # an answer was recorded meanwhile: ask again next time
            still.append(record.id)
            continue
        resolved += 1
        ctx.emit(
            OutcomeReconciled(
                at=ctx.now(), transaction=current, outcome=outcome, gateway=gateway.name
            )
        )
    return ReconcileResult(
        checked=len(doubtful), resolved=resolved, still_unknown=tuple(still), failed=tuple(failed)
    )


def _resolve(ctx: EngineContext, record: Transaction, outcome: GatewayOutcome, seen: int) -> None:
    """Record ``outcome`` (looked up after ``seen`` answers were recorded on ``record``). A
    failure verdict is written only if no answer was recorded since: the lookup may have come
    before the gateway got a call that then went through (a success is the truth whenever it
    was heard; a refund written failed is retried with its key by the queue)."""
    actor = ctx.worker_id
    if record.kind in (TransactionKind.REFUND, TransactionKind.VOID):
        if outcome.status is OutcomeStatus.SUCCEEDED:
            record_completed(ctx, record, outcome, actor=actor)
        elif record.kind is TransactionKind.VOID:
            record_void_failed(ctx, record, outcome, actor=actor, answers=seen)
        else:
            with ctx.store.session() as s:
                entry = s.get_queue_entry(queue_id(record.id))
            if entry is None:
                queue_first_failure(ctx, record, outcome, actor=actor)
            else:
                with ctx.store.session() as s:
                    locked_parent(s, record)
                    current, unchanged = locked_if_unchanged(
                        ctx, s, record, outcome, actor=actor, answers=seen
                    )
                    if unchanged:
                        s.update_transaction(attrs.evolve(current, status=TransactionStatus.FAILED))
                if unchanged:
                    register_failure(ctx, entry.id, outcome, ctx.now())
        return
    with ctx.store.session() as s:
        current, unchanged = locked_if_unchanged(ctx, s, record, outcome, actor=actor, answers=seen)
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
