"""What a void or refund does to the books, and the void-first order flow (SPEC 3.5, 3.6).

Pure functions, so a store only persists what the rules computed. Every one returns an
``AppliedRefund(original, record)`` (it unpacks: ``original, record = apply_refund(...)``):

* ``apply_refund(original, step, refund_id=, at=)``: a void or refund that has succeeded at the
  gateway. ``original`` takes its new status (``voided``, ``partially_refunded`` or ``refunded``),
  refunded total and per-line ``refunded_quantity``; ``record`` is the new ``void``/``refund``
  transaction (``parent_id`` = the original's id), ``completed``.
* With a write-ahead record (the engine's way): ``reserve_refund`` before the gateway call (the
  amount is *reserved* on the original, the record is ``pending``), then ``complete_refund`` when
  the gateway succeeded, or ``release_refund`` when it is given up (the record is ``failed``, the
  reservation returns). ``apply_refund`` is ``complete_refund(*reserve_refund(...))``.

They refuse, raising, what the transition table does not allow from the original's state (a void
of a settled charge, a partial void, a refund of a refund) and anything that would take the
refunded plus reserved total above the captured amount (``ExceedsRefundableError``).

``plan_order_refund`` turns "refund this order" into steps: an unsettled charge is voided first,
with a whole refund as the fallback; ``after_void`` says what to do once the void's outcome is
known (done, refund because it can no longer be voided, retry the void, reconcile, or stop).
Every decline code in ``CANNOT_VOID_CODES`` means "this can no longer be voided" (settled,
captured, the void window closed, ...) and falls back to the refund; any other decline stops.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Final

import attrs

from ..errors import CurrencyMismatchError, InvalidAmountError, InvalidTypeError, InvalidValueError
from ..model import (
    CertificateLine,
    CertificateStatus,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from ..money import Money
from ..timeutil import require_aware
from .refunds import RefundDecision, RefundPolicy, RefundStep, assess_refund
from .transitions import RefundAction, Request, row_for

__all__ = [
    "ALREADY_SETTLED",
    "CANNOT_VOID_CODES",
    "AppliedRefund",
    "ExceedsRefundableError",
    "NextAction",
    "OrderRefundPlan",
    "PlanNext",
    "VoidResult",
    "after_void",
    "apply_refund",
    "complete_refund",
    "plan_order_refund",
    "release_refund",
    "reserve_refund",
    "void_result",
]

ALREADY_SETTLED: Final = "already_settled"
"""The gateway decline code of a void refused because the charge settled meanwhile."""

CANNOT_VOID_CODES: Final = frozenset(
    {
        ALREADY_SETTLED,  # the charge settled meanwhile (the sandbox and the gateway contract)
        "already_captured",  # the authorization behind the charge was captured
        "settled",  # the same as already_settled, as some processors spell it
        "settlement_in_progress",  # the batch is settling: the refund waits in the retry queue
        "batch_closed",  # the settlement batch holding the charge has closed
        "void_window_closed",  # the processor's void window has passed
        "void_window_expired",
    }
)
"""Gateway decline codes of a void that mean "this can no longer be voided": the "refund this
order" flow refunds instead. Compared without case or surrounding spaces. Any other decline
(``already_voided``, ``void_amount_mismatch``, a generic refusal) ends the flow as failed."""


class ExceedsRefundableError(InvalidAmountError):
    """Carrying this out would take refunded plus reserved above the captured amount."""


@attrs.frozen
class AppliedRefund:
    """The original transaction as it now stands, and the void or refund transaction."""

    original: Transaction
    record: Transaction

    def __iter__(self) -> Iterator[Transaction]:
        return iter((self.original, self.record))


_KIND: Final = {
    RefundAction.VOID: TransactionKind.VOID,
    RefundAction.REFUND: TransactionKind.REFUND,
}


def _as_step(what: object, original: Transaction) -> RefundStep:
    if isinstance(what, RefundStep):
        return what
    if isinstance(what, RefundDecision):
        if what.transaction_id != original.id:
            raise InvalidValueError(
                f"was made for transaction {what.transaction_id}, not {original.id}",
                field="decision",
                value=what.transaction_id,
            )
        step = what.step
        if step is None:
            raise InvalidValueError(
                f"is a denial ({what.reason}); there is nothing to carry out",
                field="decision",
                value=what.reason,
            )
        return step
    if isinstance(what, Money):
        return RefundStep(action=RefundAction.REFUND, amount=what)
    raise InvalidTypeError(
        f"must be a RefundDecision, a RefundStep or Money, not {type(what).__name__}",
        field="step",
        value=what,
    )


def _check_step(original: Transaction, step: RefundStep) -> None:
    amount = step.amount
    if amount.currency != original.currency:
        raise CurrencyMismatchError(
            f"must be in {original.currency}, not {amount.currency}", field="amount", value=amount
        )
    if amount.amount <= 0 or not amount.is_rounded:
        raise InvalidAmountError(
            "must be a positive whole number of minor units", field="amount", value=amount
        )
    left = original.refundable
    if amount > left:
        raise ExceedsRefundableError(
            f"{step.action.value} of {amount} exceeds what is left of {original.id}: {left} of "
            f"{original.amount} (refunded {original.refunded}, reserved {original.reserved})",
            field="amount",
            value=amount,
        )
    row = row_for(original.kind, original.status, original.settled)
    cell = row.cell(Request.WHOLE if amount == left else Request.PART)
    if cell.action is not step.action:
        why = cell.reason.value if cell.reason is not None else f"the state calls for {cell.action}"
        raise InvalidValueError(
            f"cannot {step.action.value} {amount} of a {original.kind.value} that is "
            f"{original.status.value} and {'settled' if original.settled else 'not settled'} "
            f"({why})",
            field="action",
            value=step.action,
        )
    for lr in step.lines:
        if not 0 <= lr.line < len(original.lines):
            raise InvalidValueError("names no line of the original", field="lines", value=lr.line)
        if not 0 < lr.quantity <= original.lines[lr.line].remaining_quantity:
            raise InvalidAmountError(
                f"must be between 1 and the {original.lines[lr.line].remaining_quantity} left",
                field=f"lines[{lr.line}].quantity",
                value=lr.quantity,
            )


def reserve_refund(
    original: Transaction,
    step: RefundDecision | RefundStep | Money,
    *,
    refund_id: str,
    at: datetime,
    idempotency_key: str | None = None,
) -> AppliedRefund:
    """Write ahead: reserve ``step``'s amount on ``original`` and make the ``pending`` record.

    ``step`` is an allowed ``RefundDecision``, a ``RefundStep`` or a ``Money`` (a refund of that
    amount). Refuses what the state does not allow and what exceeds what is left.
    """
    if not isinstance(original, Transaction):
        raise InvalidTypeError(
            f"must be a Transaction, not {type(original).__name__}",
            field="original",
            value=original,
        )
    require_aware(at, "at")
    s = _as_step(step, original)
    _check_step(original, s)
    if at < original.created_at:
        raise InvalidValueError("must not be before the original transaction", field="at", value=at)
    lines = tuple(
        CertificateLine(
            certificate_type=original.lines[lr.line].certificate_type,
            quantity=lr.quantity,
            unit_price=original.lines[lr.line].unit_price,
            domain=original.lines[lr.line].domain,
            certificate_id=original.lines[lr.line].certificate_id,
        )
        for lr in s.lines
    )
    record = Transaction(
        id=refund_id,
        amount=s.amount,
        created_at=at,
        settled=False,
        status=TransactionStatus.PENDING,
        kind=_KIND[s.action],
        lines=lines,
        parent_id=original.id,
        customer_id=original.customer_id,
        subscription_id=original.subscription_id,
        gateway=original.gateway,
        idempotency_key=idempotency_key,
    )
    return AppliedRefund(attrs.evolve(original, reserved=original.reserved + s.amount), record)


IN_FLIGHT = frozenset(
    {TransactionStatus.PENDING, TransactionStatus.UNKNOWN, TransactionStatus.FAILED}
)
"""Statuses of a refund or void record whose amount is still reserved on the original: written
ahead (``pending``; an engine stores ``unknown`` until the gateway answers), or ``failed`` and
waiting in the retry queue. ``complete_refund`` and ``release_refund`` take only these."""


def _check_pair(original: Transaction, record: Transaction) -> None:
    for name, value in (("original", original), ("record", record)):
        if not isinstance(value, Transaction):
            raise InvalidTypeError(
                f"must be a Transaction, not {type(value).__name__}", field=name, value=value
            )
    if record.parent_id != original.id or record.kind not in _KIND.values():
        raise InvalidValueError(
            f"must be a refund or void of {original.id}", field="record", value=record.id
        )
    if record.status not in IN_FLIGHT:
        raise InvalidValueError(
            f"must be in flight (pending, unknown, or failed and waiting for a retry), "
            f"not {record.status.value}",
            field="record.status",
            value=record.status,
        )
    if record.amount > original.reserved:
        raise ExceedsRefundableError(
            f"{record.amount} was never reserved on {original.id} (reserved {original.reserved})",
            field="record.amount",
            value=record.amount,
        )


def _same_line(a: CertificateLine, b: CertificateLine) -> bool:
    return (a.certificate_type, a.unit_price, a.domain, a.certificate_id) == (
        b.certificate_type,
        b.unit_price,
        b.domain,
        b.certificate_id,
    )


def complete_refund(
    original: Transaction, record: Transaction, *, gateway_reference: str | None = None
) -> AppliedRefund:
    """The gateway carried out the pending ``record``: move its amount from reserved to refunded.

    The original becomes ``voided`` (a void), ``refunded`` (nothing left) or
    ``partially_refunded``; the record's certificate lines are added to the original's
    ``refunded_quantity`` (capped at each line's quantity); every line counts as refunded once
    the whole amount is.
    """
    _check_pair(original, record)
    refunded = original.refunded + record.amount
    if refunded > original.amount:  # pragma: no cover - the reservation already guarantees it
        raise ExceedsRefundableError(
            f"would refund {refunded} of {original.amount}", field="record.amount"
        )
    if record.kind is TransactionKind.VOID:
        status = TransactionStatus.VOIDED
    elif refunded == original.amount:
        status = TransactionStatus.REFUNDED
    else:
        status = TransactionStatus.PARTIALLY_REFUNDED
    lines = list(original.lines)
    for done in record.lines:
        todo = done.quantity
        for i, line in enumerate(lines):
            if todo and _same_line(line, done) and line.remaining_quantity:
                take = min(todo, line.remaining_quantity)
                lines[i] = attrs.evolve(line, refunded_quantity=line.refunded_quantity + take)
                todo -= take
    if status is not TransactionStatus.PARTIALLY_REFUNDED:
        lines = [attrs.evolve(line, refunded_quantity=line.quantity) for line in lines]
    updated = attrs.evolve(
        original,
        refunded=refunded,
        reserved=original.reserved - record.amount,
        status=status,
        lines=tuple(lines),
    )
    reference = gateway_reference if gateway_reference is not None else record.gateway_reference
    done_record = attrs.evolve(
        record, status=TransactionStatus.COMPLETED, gateway_reference=reference
    )
    return AppliedRefund(updated, done_record)


def release_refund(original: Transaction, record: Transaction) -> AppliedRefund:
    """The pending ``record`` is given up (its last retry failed): release the reservation."""
    _check_pair(original, record)
    updated = attrs.evolve(original, reserved=original.reserved - record.amount)
    return AppliedRefund(updated, attrs.evolve(record, status=TransactionStatus.FAILED))


def apply_refund(
    original: Transaction,
    step: RefundDecision | RefundStep | Money,
    *,
    refund_id: str,
    at: datetime,
    idempotency_key: str | None = None,
    gateway_reference: str | None = None,
) -> AppliedRefund:
    """A void or refund that succeeded: the updated original and the ``completed`` record."""
    reserved = reserve_refund(
        original, step, refund_id=refund_id, at=at, idempotency_key=idempotency_key
    )
    return complete_refund(*reserved, gateway_reference=gateway_reference)


# -- the "refund this order" flow ----------------------------------------------------------------
class VoidResult(enum.StrEnum):
    """What became of the void a plan tried first."""

    VOIDED = "voided"
    SETTLED_MEANWHILE = "settled_meanwhile"  # can no longer be voided (``CANNOT_VOID_CODES``)
    DECLINED = "declined"
    NOT_SENT = "not_sent"
    UNKNOWN = "unknown"


def void_result(status: str, decline_code: str | None = None) -> VoidResult:
    """Map a gateway outcome (its status value and decline code) to a ``VoidResult``.

    ``succeeded`` is voided; ``declined`` with a code of ``CANNOT_VOID_CODES`` is settled
    meanwhile (it can no longer be voided), other declines are declined; ``not_sent`` is not
    sent; ``pending`` and ``unknown`` are unknown.
    """
    table = {
        "succeeded": VoidResult.VOIDED,
        "declined": VoidResult.DECLINED,
        "not_sent": VoidResult.NOT_SENT,
        "pending": VoidResult.UNKNOWN,
        "unknown": VoidResult.UNKNOWN,
    }
    if status not in table:
        raise InvalidValueError(f"must be one of {', '.join(table)}", field="status", value=status)
    code = decline_code.strip().lower() if isinstance(decline_code, str) else None
    if table[status] is VoidResult.DECLINED and code in CANNOT_VOID_CODES:
        return VoidResult.SETTLED_MEANWHILE
    return table[status]


class NextAction(enum.StrEnum):
    """What the engine does after the void."""

    DONE = "done"
    REFUND = "refund"
    RETRY_VOID = "retry_void"
    RECONCILE = "reconcile"
    STOP = "stop"


@attrs.frozen(kw_only=True)
class OrderRefundPlan:
    """Steps for "refund this order": try ``steps[0]``; ``steps[1:]`` are fallbacks.

    No steps when ``decision`` is a denial.
    """

    transaction_id: str
    decision: RefundDecision
    steps: tuple[RefundStep, ...]
    explanation: str

    @property
    def allowed(self) -> bool:
        return self.decision.allowed


@attrs.frozen(kw_only=True)
class PlanNext:
    """The next move: ``action``, the ``step`` to execute (for refund or retry_void), whether to
    record the original as settled first (``mark_settled``), and why."""

    action: NextAction
    step: RefundStep | None = None
    mark_settled: bool = False
    explanation: str


def plan_order_refund(
    transaction: Transaction,
    *,
    now: datetime,
    amount: object = None,
    certificates: Mapping[int | str, int] | None = None,
    certificate: CertificateStatus | str | None = None,
    policy: RefundPolicy | None = None,
) -> OrderRefundPlan:
    """Plan "refund this order": ``assess_refund``, then void first where a void is the answer.

    An unsettled charge: void, and if the gateway says it settled meanwhile, refund it whole.
    An authorization: void only. A settled charge: refund. A denial: no steps.
    """
    decision = assess_refund(
        transaction,
        now=now,
        amount=amount,
        certificates=certificates,
        certificate=certificate,
        policy=policy,
    )
    step = decision.step
    if step is None:
        return OrderRefundPlan(
            transaction_id=transaction.id,
            decision=decision,
            steps=(),
            explanation=decision.explanation,
        )
    steps: tuple[RefundStep, ...] = (step,)
    how = f"Refund {step.amount}."
    if step.action is RefundAction.VOID:
        if transaction.kind is TransactionKind.AUTHORIZATION:
            how = f"Void the authorization of {step.amount} (release the hold)."
        else:
            steps = (step, attrs.evolve(step, action=RefundAction.REFUND))
            how = (
                f"Void {step.amount} first; if the gateway answers that the charge has settled "
                f"meanwhile, refund {step.amount} instead."
            )
    return OrderRefundPlan(
        transaction_id=transaction.id,
        decision=decision,
        steps=steps,
        explanation=f"{decision.explanation} {how}",
    )


def after_void(plan: OrderRefundPlan, result: VoidResult | str) -> PlanNext:
    """What to do once the plan's void has an outcome."""
    if not isinstance(plan, OrderRefundPlan):
        raise InvalidTypeError(
            f"must be an OrderRefundPlan, not {type(plan).__name__}", field="plan", value=plan
        )
    if not plan.steps or plan.steps[0].action is not RefundAction.VOID:
        raise InvalidValueError("does not start with a void", field="plan", value=plan.steps)
    try:
        outcome = VoidResult(result)
    except ValueError:
        raise InvalidValueError(
            f"must be one of {', '.join(VoidResult)}", field="result", value=result
        ) from None
    void = plan.steps[0]
    if outcome is VoidResult.VOIDED:
        return PlanNext(action=NextAction.DONE, explanation=f"{void.amount} was voided.")
    if outcome is VoidResult.NOT_SENT:
        return PlanNext(
            action=NextAction.RETRY_VOID,
            step=void,
            explanation="The void never reached the gateway; send it again with the same key.",
        )
    if outcome is VoidResult.UNKNOWN:
        return PlanNext(
            action=NextAction.RECONCILE,
            explanation="The void may or may not have happened; ask the gateway before anything "
            "else, and never refund on top of it blindly.",
        )
    if outcome is VoidResult.SETTLED_MEANWHILE and len(plan.steps) > 1:
        refund = plan.steps[1]
        return PlanNext(
            action=NextAction.REFUND,
            step=refund,
            mark_settled=True,
            explanation="The charge can no longer be voided (it settled or its void window "
            f"closed); refund {refund.amount} instead (record the charge as settled first).",
        )
    return PlanNext(
        action=NextAction.STOP,
        explanation=f"The gateway declined the void of {void.amount} and there is no fallback; "
        "check the charge with the gateway.",
    )
