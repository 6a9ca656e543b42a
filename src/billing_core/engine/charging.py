"""Taking money: a sale written ahead as ``unknown``, sent, and recorded as the gateway answers.

**Before any gateway call** the charge reads the customer, its wallet (``Wallet``) and the
blocklist, in one session:

* a blocklist entry in force that matches the customer id, email, email domain, country, the
  caller's IP or any card fingerprint of the wallet denies the charge (``rules.blocklists``:
  the reason code names the kind, the sentence the entry); nothing is written but an audit entry;
* a customer with instruments is charged on them in payment order
  (``rules.collection.plan_payment``: the order's default, then the primary, then the backups,
  unusable ones left out); with instruments but none usable (inactive, expired, or none placed
  as primary, backup or default) the charge fails with ``no_usable_instrument``, nothing sent. A
  customer without instruments is charged as before, one attempt on the gateway's own default
  for the customer (``instrument=None``).

**Fallback.** Each instrument is one attempt with its own sale written ahead and its own gateway
idempotency key derived from the caller's key: ``<key>:sale`` for the first (the key renewals
claim their term by), then ``<key>:sale:2``, ``<key>:sale:3``... Only a **decline** moves on to
the next instrument. A timeout or any answer that leaves the outcome unknown (``unknown``,
``pending``) stops the charge: the first card may have been charged, so trying another could
charge the customer twice; reconciliation asks the gateway instead. ``not_sent`` stops too (the
gateway is unreachable; the same key may be tried again). Every attempt is audited
(``sale.write_ahead`` with the instrument, then ``sale.<status>``) and emitted
(``CollectionAttempted``, then ``CollectionDeclined`` or ``CollectionSucceeded``).

**The gateway** of an attempt: the instrument's sticky gateway, else the one
``billing_core_choose_gateway`` names for the request, else the default (``ctx.gateway_for``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

import attrs

from ..errors import NotFoundError
from ..instruments import PaymentInstrument
from ..model import CertificateLine, Customer, Transaction, TransactionKind, TransactionStatus
from ..money import Money
from ..plugins.events import (
    CollectionAttempted,
    CollectionDeclined,
    CollectionSucceeded,
    OutcomeUnknown,
)
from ..plugins.protocols import (
    GatewayOperation,
    GatewayOutcome,
    GatewayRequest,
    OutcomeStatus,
    StoreSession,
)
from ..rules import blocklists, collection
from ..timeutil import local_date, timezone
from ..wallets import Wallet
from .context import EngineContext, call_gateway
from .recording import locked_if_unchanged
from .results import ChargeOutcome, ChargeResult
from .written_ahead import note_write_ahead

__all__ = ["NO_USABLE_INSTRUMENT", "charge", "sale_key"]

NO_USABLE_INSTRUMENT = "no_usable_instrument"


def sale_key(key: str, attempt: int) -> str:
    """The gateway idempotency key of attempt ``attempt`` (from 1) of the charge keyed ``key``."""
    return f"{key}:sale" if attempt == 1 else f"{key}:sale:{attempt}"


@attrs.frozen(kw_only=True)
class _Payment:
    customer: Customer | None
    wallet: Wallet | None
    block: blocklists.BlockDecision
    plan: collection.PaymentPlan | None


def _prepare(
    ctx: EngineContext,
    s: StoreSession,
    customer_id: str | None,
    subscription_id: str | None,
    instrument_id: str | None,
    ip: str | None,
) -> _Payment:
    customer = s.get_customer(customer_id) if customer_id is not None else None
    wallet = s.get_wallet(customer_id) if customer_id is not None else None
    now = ctx.now()
    today: date = local_date(now, timezone(customer.timezone)) if customer else now.date()
    plan = None
    if wallet is not None and wallet.instruments:
        candidates = wallet.candidates(subscription_id)
        if instrument_id is not None:
            chosen = wallet.get(instrument_id)
            if chosen is None:
                raise NotFoundError(
                    f"customer {customer_id} has no instrument {instrument_id!r}",
                    field="instrument_id",
                    value=instrument_id,
                )
            candidates["order_default"] = collection.check_default(chosen, today=today)
        plan = collection.plan_payment(**candidates, today=today)
    elif instrument_id is not None:
        raise NotFoundError(
            f"customer {customer_id} has no payment instruments",
            field="instrument_id",
            value=instrument_id,
        )
    payer = blocklists.Payer(
        customer_id=customer_id,
        email=customer.email if customer else None,
        country=customer.country or None if customer else None,
        ip=ip,
        fingerprints=wallet.fingerprints() if wallet else (),
    )
    block = blocklists.check(s.list_blocklist(), payer, now=now)
    return _Payment(customer=customer, wallet=wallet, block=block, plan=plan)


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
    instrument_id: str | None = None,
    ip: str | None = None,
) -> tuple[ChargeResult, Transaction | None]:
    """Charge ``amount``, trying the customer's instruments in payment order (see the module
    docstring); returns the result and the stored sale of the last attempt.

    ``claim`` runs first in the session that writes the first sale ahead: it raises to write
    nothing (``renewal_claims.claim_term``). ``instrument_id`` is this order's default
    instrument (bad input when the customer has no such instrument, or it is inactive or
    expired); ``ip`` the payer's address, checked against the blocklist."""
    if amount.amount == 0:
        return ChargeResult(
            outcome=ChargeOutcome.CHARGED, amount=amount, explanation="Nothing to charge."
        ), None
    with ctx.store.session() as s:
        payment = _prepare(ctx, s, customer_id, subscription_id, instrument_id, ip)
        refusal: tuple[str, str] | None = None
        if not payment.block.allowed:
            refusal = (str(payment.block.reason), payment.block.explanation)
        elif payment.plan is not None and not payment.plan.instruments:
            refusal = (
                NO_USABLE_INSTRUMENT,
                f"No usable payment instrument, so nothing was charged: {payment.plan.explanation}",
            )
        if refusal is not None:
            entry = payment.block.entry
            ctx.audit(
                s,
                action="charge.blocked" if entry is not None else "charge.no_instrument",
                subject_id=customer_id or key,
                actor=actor,
                detail={"reason": refusal[0], "entry": entry.id if entry else None},
            )
    if refusal is not None:
        outcome = ChargeOutcome.DENIED if payment.block.denied else ChargeOutcome.FAILED
        return ChargeResult(
            outcome=outcome, amount=amount, reason=refusal[0], explanation=refusal[1]
        ), None
    instruments: Sequence[PaymentInstrument | None] = (
        payment.plan.instruments if payment.plan is not None else (None,)
    )
    notes: list[str] = []
    for attempt, instrument in enumerate(instruments, 1):
        following = instruments[attempt] if attempt < len(instruments) else None
        result, stored, status = _attempt(
            ctx,
            amount=amount,
            key=key,
            attempt=attempt,
            instrument=instrument,
            next_instrument=following,
            customer=payment.customer,
            actor=actor,
            subscription_id=subscription_id,
            lines=lines,
            description=description,
            claim=claim if attempt == 1 else None,
        )
        if status is not OutcomeStatus.DECLINED or following is None:
            break
        notes.append(f"Instrument {instrument.id if instrument else '-'} was declined.")
    if notes:
        result = attrs.evolve(result, explanation=" ".join([*notes, result.explanation]))
    return result, stored


def _attempt(
    ctx: EngineContext,
    *,
    amount: Money,
    key: str,
    attempt: int,
    instrument: PaymentInstrument | None,
    next_instrument: PaymentInstrument | None,
    customer: Customer | None,
    actor: str,
    subscription_id: str | None,
    lines: Sequence[CertificateLine],
    description: str,
    claim: Callable[[StoreSession], None] | None,
) -> tuple[ChargeResult, Transaction, OutcomeStatus]:
    """One attempt on one instrument: written ahead, sent, recorded, emitted. ``key`` is the
    caller's key; the attempt's gateway key is ``sale_key(key, attempt)``."""
    caller_key, key = key, sale_key(key, attempt)
    now = ctx.now()
    customer_id = customer.id if customer is not None else None
    sale_id = ctx.ids("tx")
    request = GatewayRequest(
        operation=GatewayOperation.SALE,
        transaction_id=sale_id,
        idempotency_key=key,
        amount=amount,
        customer_id=customer_id,
        description=description,
        instrument=instrument,
    )
    gateway = ctx.gateway_for(request, customer, instrument)  # raises before anything is written
    sale = Transaction(
        id=sale_id,
        amount=amount,
        created_at=now,
        settled=False,
        status=TransactionStatus.UNKNOWN,
        kind=TransactionKind.SALE,
        lines=tuple(lines),
        customer_id=customer_id,
        subscription_id=subscription_id,
        gateway=gateway.name,
        idempotency_key=key,
    )
    with ctx.store.session() as s:
        if claim is not None:
            claim(s)
        s.insert_transaction(sale)
        note_write_ahead(s, caller_key, sale.id)  # the key's lease fence: raises if taken over
        ctx.audit(
            s,
            action="sale.write_ahead",
            subject_id=sale.id,
            actor=actor,
            detail={
                "amount": str(amount),
                "idempotency_key": key,
                "instrument": instrument.id if instrument else None,
                "attempt": attempt,
                "gateway": gateway.name,
            },
        )
    name = gateway.name
    ctx.emit(
        CollectionAttempted(
            at=now, transaction=sale, instrument=instrument, attempt=attempt, gateway=name
        )
    )
    outcome = call_gateway(gateway, request)
    stored, recorded = _record(ctx, sale, outcome, actor=actor)
    if recorded and outcome.status in (OutcomeStatus.UNKNOWN, OutcomeStatus.PENDING):
        ctx.emit(OutcomeUnknown(at=now, transaction=stored, request=request, gateway=gateway.name))
    if outcome.status is OutcomeStatus.DECLINED:
        ctx.emit(
            CollectionDeclined(
                at=now,
                transaction=stored,
                decline_code=outcome.decline_code,
                message=outcome.message,
                next_instrument_id=next_instrument.id if next_instrument else None,
                instrument=instrument,
                attempt=attempt,
                gateway=name,
            )
        )
    elif stored.status is TransactionStatus.COMPLETED:
        ctx.emit(
            CollectionSucceeded(
                at=now, transaction=stored, instrument=instrument, attempt=attempt, gateway=name
            )
        )
    on = f" on instrument {instrument.id}" if instrument is not None else ""
    outcome_text = {
        OutcomeStatus.SUCCEEDED: (ChargeOutcome.CHARGED, f"Charged {amount}{on}."),
        OutcomeStatus.DECLINED: (
            ChargeOutcome.DECLINED,
            f"The gateway declined the charge of {amount}{on}: {outcome.message}",
        ),
        OutcomeStatus.NOT_SENT: (
            ChargeOutcome.FAILED,
            f"The charge of {amount}{on} never reached the gateway ({outcome.message}); "
            "nothing was charged.",
        ),
        OutcomeStatus.UNKNOWN: (
            ChargeOutcome.UNKNOWN,
            f"The gateway's answer to the charge of {amount}{on} was lost; reconciliation "
            "will ask the gateway (no other instrument is tried: this one may have been "
            "charged).",
        ),
        OutcomeStatus.PENDING: (
            ChargeOutcome.UNKNOWN,
            f"The charge of {amount}{on} is pending at the gateway; reconciliation will "
            "record its outcome.",
        ),
    }[outcome.status]
    result = ChargeResult(
        outcome=outcome_text[0],
        amount=amount,
        transaction_id=sale.id,
        reason=outcome.decline_code,
        explanation=outcome_text[1],
        instrument_id=instrument.id if instrument else None,
        attempts=attempt,
    )
    return result, stored, outcome.status


def _record(
    ctx: EngineContext, sale: Transaction, outcome: GatewayOutcome, *, actor: str
) -> tuple[Transaction, bool]:
    """Record the gateway's answer on ``sale`` (compare-and-set); the stored sale and whether
    this call recorded it."""
    status = {
        OutcomeStatus.SUCCEEDED: TransactionStatus.COMPLETED,
        OutcomeStatus.PENDING: TransactionStatus.PENDING,
        OutcomeStatus.DECLINED: TransactionStatus.FAILED,
        OutcomeStatus.NOT_SENT: TransactionStatus.FAILED,
        OutcomeStatus.UNKNOWN: TransactionStatus.UNKNOWN,
    }[outcome.status]
    now = ctx.now()
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
    return stored, unchanged or reopened
