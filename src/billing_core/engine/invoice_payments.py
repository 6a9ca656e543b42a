"""Paying invoices (``BillingEngine.pay_invoice``) and settling payments whose answer was lost.

A sale through ``engine.charging`` for what the invoice still owes (or part of it). Its amount
is reserved on the invoice (``payments_in_flight``) in the session that writes the sale ahead,
so concurrent payments never pay more than is due; it is recorded as paid when the gateway
charged it, released when it declined or never got the request, and left reserved while its
fate is unknown, until ``reconcile()`` learns it (``settle_payments_in_flight``).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from ..invoices import Invoice, InvoiceStatus
from ..model import Transaction, TransactionStatus
from ..money import Money
from ..plugins.events import InvoicePaid
from ..plugins.protocols import StoreSession
from ..rules import invoice_transitions as transitions
from ..rules.invoice_transitions import InvoiceEvent
from ..serialization import unstructure
from . import charging, dunning
from .context import EngineContext
from .invoice_flows import _denied, _get, read_invoice, retrying
from .invoice_results import InvoiceOutcome, InvoiceResult
from .results import ChargeOutcome

__all__ = ["pay_invoice", "settle_payments_in_flight"]


_CHARGE_OUTCOMES = {
    ChargeOutcome.DECLINED: InvoiceOutcome.DECLINED,
    ChargeOutcome.FAILED: InvoiceOutcome.FAILED,
    ChargeOutcome.UNKNOWN: InvoiceOutcome.UNKNOWN,
    ChargeOutcome.DENIED: InvoiceOutcome.DENIED,
}


def _settle(
    ctx: EngineContext,
    invoice_id: str,
    key: str,
    pay: Money,
    sale: Transaction | None,
    actor: str,
) -> tuple[Invoice, str]:
    """Take the payment under ``key`` out of flight: recorded as paid by ``sale`` when given,
    released otherwise. Answers the invoice as stored and the table's sentence."""
    with ctx.store.session() as s:
        current = _get(s, invoice_id, lock=True)
        flights = tuple(f for f in current.payments_in_flight if f[0] != key)
        current = attrs.evolve(current, payments_in_flight=flights)
        why = ""
        if sale is not None:
            step = transitions.assess(current, transitions.payment_event(current, pay))
            assert step.allowed and step.becomes is not None  # reserved: it fits
            why = step.explanation
            current = attrs.evolve(
                current,
                status=step.becomes,
                amount_paid=current.amount_paid + pay,
                payments=(*current.payments, sale.id),
            )
            ctx.audit(
                s,
                action="invoice.paid",
                subject_id=current.id,
                actor=actor,
                detail={"amount": unstructure(pay), "transaction_id": sale.id},
            )
        s.update_invoice(current)
    return current, why


_TAKEN = frozenset(
    {
        TransactionStatus.COMPLETED,
        TransactionStatus.PARTIALLY_REFUNDED,
        TransactionStatus.REFUNDED,
        TransactionStatus.VOIDED,
    }
)


def settle_payments_in_flight(ctx: EngineContext, *, actor: str) -> int:
    """Payments whose gateway answer was lost, once reconciliation knows their sale's fate:
    recorded as paid when the gateway took the money (its refunds or void then show on the
    invoice), released when it failed; still ``unknown`` or ``pending``: left in flight.
    Answers how many it settled. Run by ``reconcile()``."""
    with ctx.store.session() as s:
        waiting = [i for i in s.list_invoices() if i.payments_in_flight]
    settled = 0
    for invoice in waiting:
        with ctx.store.session() as s:
            sales = {
                t.idempotency_key: t
                for t in s.list_transactions(customer_id=invoice.customer_id)
                if t.idempotency_key is not None
            }
        for key, pay in invoice.payments_in_flight:
            attempts = _attempts(sales, key)
            if not attempts or any(
                t.status not in (*_TAKEN, TransactionStatus.FAILED) for t in attempts
            ):
                continue  # not sent yet, or an attempt still in doubt: reconcile decides first
            taken = next((t for t in attempts if t.status in _TAKEN), None)
            paid, _ = retrying(
                lambda i=invoice.id, k=key, p=pay, t=taken: _settle(  # type: ignore[misc]
                    ctx, i, k, p, t, actor
                )
            )
            settled += 1
            if taken is not None:
                ctx.emit(InvoicePaid(at=ctx.now(), invoice=paid, payment=taken))
                dunning.reactivate(ctx, paid, actor=actor)  # a past_due subscription: active
    return settled


def _attempts(sales: Mapping[str, Transaction], key: str) -> list[Transaction]:
    """The sales of a payment's charge: one per instrument tried, keyed ``<key>:sale`` (the
    first) and ``<key>:sale:2``, ``<key>:sale:3``... (the backups after a decline)."""
    prefix = f"{key}:sale"
    return [
        t
        for k, t in sales.items()
        if k == prefix or (k.startswith(f"{prefix}:") and k[len(prefix) + 1 :].isdigit())
    ]


class _Refused(Exception):
    """Raised inside the payment's write-ahead session: nothing is written, nothing charged."""

    def __init__(self, result: InvoiceResult) -> None:
        super().__init__(result.explanation)
        self.result = result


def _payment_decision(
    invoice: Invoice, pay: Money | None
) -> tuple[Money, transitions.InvoiceTransition]:
    """The amount to pay and the table's cell for it, counting payments still in flight as paid
    (they are reserved: two payments at once never pay more than is due)."""
    held = invoice.amount_in_flight
    seen = attrs.evolve(invoice, amount_paid=invoice.amount_paid + held) if held else invoice
    amount = seen.amount_remaining if pay is None else pay
    if not amount:  # nothing left: the answer of a full payment of a settled invoice
        decision = transitions.assess(seen, InvoiceEvent.PAY_REST)
        if decision.allowed:
            decision = attrs.evolve(
                decision,
                allowed=False,
                reason=transitions.InvoiceReason.ALREADY_PAID,
                becomes=None,
                explanation=f"Invoice {invoice.number or invoice.id} has nothing left to pay"
                + (f" ({held} is being paid right now)." if held else "."),
            )
        return amount, decision
    return amount, transitions.assess(seen, transitions.payment_event(seen, amount))


def pay_invoice(
    ctx: EngineContext, invoice_id: str, *, amount: Money | None, key: str, actor: str
) -> InvoiceResult:
    """Charge ``amount`` (default: all that is left) through the gateway and record it on the
    invoice: ``paid`` when nothing is left, still open (partly paid) otherwise.

    The amount is reserved on the invoice (``payments_in_flight``) in the session that writes
    the sale ahead, so concurrent payments never pay more than is due; it is recorded as paid
    when the gateway charged it, and released when it declined or never got the request. A
    payment whose answer was lost (``unknown``) stays reserved until ``reconcile()`` learns its
    fate (``settle_payments_in_flight``)."""
    invoice = read_invoice(ctx, invoice_id)
    pay, decision = _payment_decision(invoice, amount)  # bad input raises here
    if not decision.allowed:
        return _denied(invoice, decision)

    def claim(s: StoreSession) -> None:
        current = _get(s, invoice_id, lock=True)
        _, step = _payment_decision(current, pay)
        if not step.allowed:
            raise _Refused(_denied(current, step))
        s.update_invoice(
            attrs.evolve(current, payments_in_flight=(*current.payments_in_flight, (key, pay)))
        )

    try:
        charged, sale = charging.charge(
            ctx,
            amount=pay,
            key=key,
            actor=actor,
            customer_id=invoice.customer_id,
            description=f"Invoice {invoice.number}",
            claim=claim,
        )
    except _Refused as refused:
        return refused.result

    if charged.outcome is not ChargeOutcome.CHARGED or sale is None:
        if charged.outcome is not ChargeOutcome.UNKNOWN:
            retrying(lambda: _settle(ctx, invoice_id, key, pay, None, actor))  # release it
        return InvoiceResult(
            outcome=_CHARGE_OUTCOMES.get(charged.outcome, InvoiceOutcome.FAILED),
            reason=charged.reason,
            invoice_id=invoice.id,
            invoice=read_invoice(ctx, invoice_id),
            transaction_id=charged.transaction_id,
            amount=pay,
            explanation=f"Invoice {invoice.number}: the payment was not recorded. "
            f"{charged.explanation}",
        )
    paid, why = retrying(lambda: _settle(ctx, invoice_id, key, pay, sale, actor))
    ctx.emit(InvoicePaid(at=ctx.now(), invoice=paid, payment=sale))
    dunning.reactivate(ctx, paid, actor=actor)  # a past_due subscription: active again
    full = paid.status is InvoiceStatus.PAID
    return InvoiceResult(
        outcome=InvoiceOutcome.PAID if full else InvoiceOutcome.PARTIALLY_PAID,
        invoice_id=paid.id,
        invoice=paid,
        transaction_id=sale.id,
        amount=pay,
        explanation=f"Paid {pay} of invoice {paid.number}; {paid.amount_remaining} left to pay"
        f" ({why.split(': ', 1)[-1].rstrip('.')}).",
    )
