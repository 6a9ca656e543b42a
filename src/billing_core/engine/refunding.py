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

from collections.abc import Mapping
from datetime import datetime

import attrs

from ..errors import InvalidValueError, NotFoundError
from ..model import Transaction, TransactionKind, TransactionStatus
from ..money import Money
from ..plugins.protocols import (
    GatewayOutcome,
    OutcomeStatus,
    StoreSession,
)
from ..rules import refund_effects as effects
from ..rules.refund_requests import requested_amount, requested_lines
from ..rules.refunds import RefundStep
from ..rules.transitions import RefundAction
from ..serialization import unstructure
from .certificate_refunds import certificate_ids, certificate_status, provider_statuses
from .context import EngineContext, lookup
from .reconcile import reconcile
from .recording import locked_if_unchanged
from .refund_queue import process_refund_queue
from .refund_recording import (
    moved_on_result,
    queue_first_failure,
    record_completed,
    record_in_doubt,
    record_void_failed,
)
from .refund_records import (
    DOUBTFUL,
    IN_DOUBT,
    completed_result,
    in_flight,
    locked_parent,
    queue_id,
    send,
)
from .results import RefundOutcome, RefundResult
from .written_ahead import note_write_ahead

__all__ = [
    "completed_result",
    "process_refund_queue",
    "queue_id",
    "reconcile",
    "refund",
    "sync_settlement",
]


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
    fresh = provider_statuses(ctx, certificate_ids(unlocked, certificates))
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
            certificate=certificate_status(s, certificate_ids(original, certificates), fresh),
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
    outcome = send(ctx, original, record)
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
        return record_completed(ctx, record, outcome, actor=actor)
    if status in DOUBTFUL:
        return record_in_doubt(ctx, record, outcome, actor=actor)
    if record.kind is TransactionKind.VOID:
        nxt = effects.after_void(plan, effects.void_result(status.value, outcome.decline_code))
        if nxt.action is effects.NextAction.REFUND and nxt.step is not None:
            return _void_became_refund(ctx, plan, record, nxt.step, outcome, key=key, actor=actor)
        return record_void_failed(ctx, record, outcome, actor=actor)
    return queue_first_failure(ctx, record, outcome, actor=actor)


def _void_became_refund(
    ctx: EngineContext,
    plan: effects.OrderRefundPlan,
    void: Transaction,
    step: RefundStep,
    outcome: GatewayOutcome,
    *,
    key: str,
    actor: str,
) -> RefundResult:
    """The charge settled before the void: release the void, mark settled, refund instead.

    A compare-and-set like every recording: if the void moved on during its call (its lease ran
    out and ``reconcile`` failed it, releasing its amount), it is not released twice; the
    refund is still made when what is left allows it, else the caller is told what is stored."""
    with ctx.store.session() as s:
        original = locked_parent(s, void)
        current, unchanged = locked_if_unchanged(ctx, s, void, outcome, actor=actor)
        if unchanged:
            released = effects.release_refund(original, current)
            s.update_transaction(released.record)
            base = released.original
        elif current.status is TransactionStatus.FAILED and (
            original.refunded + original.reserved + step.amount <= original.amount
        ):
            base = original  # reconcile failed the void and released it already
        else:
            return moved_on_result(original, current)
        settled = attrs.evolve(base, settled=True, settled_at=ctx.now())
        ctx.audit(
            s,
            action="void.settled_meanwhile",
            subject_id=void.id,
            actor=actor,
            detail={"original": original.id},
        )
        record = _write_ahead(ctx, s, settled, step, key=key, actor=actor, now=ctx.now())
    answer = send(ctx, settled, record)
    return _record_outcome(ctx, plan, record, answer, key=key, actor=actor)


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


def _in_doubt_children(s: StoreSession, original: Transaction, now: datetime) -> list[str]:
    """The refunds and voids of ``original`` whose gateway outcome is in doubt: answered
    ``unknown``/``pending``, or written ahead by a call that has ended without recording an
    answer. A record written ahead by a call still running (its engine idempotency record is
    ``in_progress`` and its lease has not run out) is in flight, not in doubt: its amount is
    reserved, so concurrent refunds of the rest go on and are decided on what is left
    (``exceeds_refundable``). Once the lease has run out the call is taken for dead."""
    children = s.list_transactions(parent_id=original.id, statuses=IN_DOUBT)
    return sorted(t.id for t in children if not in_flight(s, t, now))
