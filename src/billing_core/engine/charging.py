"""Taking money: a sale written ahead as ``unknown``, sent, and recorded as the gateway answers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from ..model import CertificateLine, Transaction, TransactionKind, TransactionStatus
from ..money import Money
from ..plugins.events import OutcomeUnknown
from ..plugins.protocols import GatewayOperation, GatewayRequest, OutcomeStatus, StoreSession
from .context import EngineContext, call_gateway
from .recording import locked_if_unchanged
from .results import ChargeOutcome, ChargeResult
from .written_ahead import note_write_ahead

__all__ = ["charge"]


def charge(
    ctx: EngineContext,
    *,
    amount: Money,
    key: str,
    actor: str,
    customer_id: str | None,
    subscription_id: str | None = None,
    lines: Sequence[CertificateLine] = (),
    description: str = "",
    claim: Callable[[StoreSession], None] | None = None,
) -> tuple[ChargeResult, Transaction | None]:
    """Charge ``amount`` through the configured gateway; returns the result and the stored sale.

    ``claim`` runs first in the session that writes the sale ahead: it raises to write nothing
    (``renewal_claims.claim_term``)."""
    if amount.amount == 0:
        return ChargeResult(
            outcome=ChargeOutcome.CHARGED, amount=amount, explanation="Nothing to charge."
        ), None
    gateway = ctx.gateway()
    now = ctx.now()
    sale = Transaction(
        id=ctx.ids("tx"),
        amount=amount,
        created_at=now,
        settled=False,
        status=TransactionStatus.UNKNOWN,
        kind=TransactionKind.SALE,
        lines=tuple(lines),
        customer_id=customer_id,
        subscription_id=subscription_id,
        gateway=gateway.name,
        idempotency_key=f"{key}:sale",
    )
    with ctx.store.session() as s:
        if claim is not None:
            claim(s)
        s.insert_transaction(sale)
        note_write_ahead(s, key, sale.id)  # the key's lease fence: raises if it was taken over
        ctx.audit(
            s,
            action="sale.write_ahead",
            subject_id=sale.id,
            actor=actor,
            detail={"amount": str(amount), "idempotency_key": sale.idempotency_key},
        )
    request = GatewayRequest(
        operation=GatewayOperation.SALE,
        transaction_id=sale.id,
        idempotency_key=sale.idempotency_key or sale.id,
        amount=amount,
        customer_id=customer_id,
        description=description,
    )
    outcome = call_gateway(gateway, request)
    status = {
        OutcomeStatus.SUCCEEDED: TransactionStatus.COMPLETED,
        OutcomeStatus.PENDING: TransactionStatus.PENDING,
        OutcomeStatus.DECLINED: TransactionStatus.FAILED,
        OutcomeStatus.NOT_SENT: TransactionStatus.FAILED,
        OutcomeStatus.UNKNOWN: TransactionStatus.UNKNOWN,
    }[outcome.status]
    with ctx.store.session() as s:
        current, unchanged = locked_if_unchanged(ctx, s, sale, outcome, actor=actor)
        stored = current
        # moved on: reconcile recorded it (and an agent may have voided it since): left alone,
        # except when reconcile heard ``not_sent`` and failed it but the gateway then charged
        # (a success is recorded) or may have (``unknown``/``pending``: in doubt again)
        reopened = current.status is TransactionStatus.FAILED and status is not (
            TransactionStatus.FAILED
        )
        if unchanged or reopened:
            stored = attrs.evolve(
                current,
                status=status,
                gateway_reference=outcome.reference,
                settled=outcome.settled,
                settled_at=now if outcome.settled else None,
            )
            s.update_transaction(stored)
            ctx.audit(
                s,
                action=f"sale.{outcome.status.value}",
                subject_id=sale.id,
                actor=actor,
                detail={"reference": outcome.reference, "message": outcome.message},
            )
    if (unchanged or reopened) and outcome.status in (OutcomeStatus.UNKNOWN, OutcomeStatus.PENDING):
        ctx.emit(OutcomeUnknown(at=now, transaction=stored, request=request, gateway=gateway.name))
    result = {
        OutcomeStatus.SUCCEEDED: (ChargeOutcome.CHARGED, f"Charged {amount}."),
        OutcomeStatus.DECLINED: (
            ChargeOutcome.DECLINED,
            f"The gateway declined the charge of {amount}: {outcome.message}",
        ),
        OutcomeStatus.NOT_SENT: (
            ChargeOutcome.FAILED,
            f"The charge of {amount} never reached the gateway ({outcome.message}); nothing "
            "was charged.",
        ),
        OutcomeStatus.UNKNOWN: (
            ChargeOutcome.UNKNOWN,
            f"The gateway's answer to the charge of {amount} was lost; reconciliation will ask "
            "the gateway.",
        ),
        OutcomeStatus.PENDING: (
            ChargeOutcome.UNKNOWN,
            f"The charge of {amount} is pending at the gateway; reconciliation will record "
            "its outcome.",
        ),
    }[outcome.status]
    return ChargeResult(
        outcome=result[0],
        amount=amount,
        transaction_id=sale.id,
        reason=outcome.decline_code,
        explanation=result[1],
    ), stored
