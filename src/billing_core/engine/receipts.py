"""Receipts: the paid invoice of every subscription term charged at once.

A subscription's terms are charged when they start (``add_subscription`` and ``activate`` for
the first, ``renew_due`` for each next one, a chased renewal's retry, a trial's first paid term):
money taken then, as a ``sale``, never a pending line. So that those sales, and their refunds,
are visible in the customer's invoices like everything else billed (seed 000: a refund is
visible "in invoices"), each such sale gets a **receipt**: an invoice issued and ``paid`` at
once, numbered from its own sequence (``EngineContext.receipt_prefix``, ``RCT-`` by default;
``InvoiceSettings.receipt_prefix``), whose lines are the sale's lines and whose one payment is
the sale. Its refunds then show as ``amount_refunded`` like any invoice's
(``invoice_flows.with_refunds``); a credit memo can credit it; nothing collects it.

The receipt is written in the SAME store session as the term it pays for (the subscription's
insert or its new term), so a term is never stored without its receipt or the other way round,
and it is written once: its id is ``rct-<sale id>`` and the term's own compare-and-set (a term
is renewed once) guards it. One-off charges (``charge``) and invoice payments get none: the
first is a sale with its own record, the second pays an invoice already.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from ..invoices import Invoice, InvoiceStatus, InvoiceTotals
from ..model import InvoiceLine, InvoiceLineKind, Transaction
from ..money import Money
from ..plugins._store_invoice_common import format_number
from ..plugins.protocols import StoreSession
from .context import EngineContext

__all__ = ["receipt_id", "receipt_lines", "record_receipt"]


def receipt_id(sale_id: str) -> str:
    """The id of the receipt of sale ``sale_id``."""
    return f"rct-{sale_id}"


def receipt_lines(sale: Transaction, kind: InvoiceLineKind) -> tuple[InvoiceLine, ...]:
    """The receipt's lines: one per sale line (its total), or the whole sale in one line when
    it has none or they do not add up to it; they always total exactly ``sale.amount``."""
    lines = tuple(
        InvoiceLine(
            description=f"{line.certificate_type}" + (f" for {line.domain}" if line.domain else ""),
            amount=line.total,
            kind=kind,
            quantity=Decimal(line.quantity),
            unit_price=line.unit_price,
            subscription_id=sale.subscription_id,
        )
        for line in sale.lines
    )
    total = sum((line.amount for line in lines), Money.zero(sale.amount.currency))
    if not lines or total != sale.amount:  # no itemised lines: the sale in one line
        return (
            InvoiceLine(
                description=f"Sale {sale.id}",
                amount=sale.amount,
                kind=kind,
                subscription_id=sale.subscription_id,
            ),
        )
    return lines


def record_receipt(
    ctx: EngineContext,
    s: StoreSession,
    sale: Transaction | None,
    *,
    on: date,
    kind: InvoiceLineKind = InvoiceLineKind.SUBSCRIPTION,
    actor: str,
) -> Invoice | None:
    """Store the receipt of ``sale`` (a completed term sale) in ``s``, issued and paid ``on``
    (the customer's local date); None when there is no sale (nothing was charged) or it has
    one already."""
    if sale is None or sale.customer_id is None or s.get_invoice(receipt_id(sale.id)):
        return None
    zero = Money.zero(sale.amount.currency)
    n = s.next_invoice_number(ctx.receipt_prefix)  # held until the term's session commits
    number = format_number(ctx.receipt_prefix, n)
    receipt = Invoice(
        id=receipt_id(sale.id),
        customer_id=sale.customer_id,
        currency=sale.amount.currency,
        status=InvoiceStatus.PAID,
        lines=receipt_lines(sale, kind),
        number=number,
        issued_on=on,
        due_on=on,
        totals=InvoiceTotals(
            subtotal=sale.amount,
            discount=zero,
            tax=zero,
            total=sale.amount,
            credit_applied=zero,
            amount_due=sale.amount,
            explanation=f"Receipt {number}: {sale.amount} charged on {on.isoformat()} by sale "
            f"{sale.id}.",
        ),
        amount_paid=sale.amount,
        payments=(sale.id,),
        subscription_id=sale.subscription_id,
        created_at=ctx.now(),
        notes=f"Paid by sale {sale.id} when charged.",
        receipt_for=sale.id,
    )
    s.insert_invoice(receipt)
    ctx.audit(
        s,
        action="invoice.receipt",
        subject_id=receipt.id,
        actor=actor,
        detail={"number": number, "sale": sale.id, "amount": str(sale.amount)},
    )
    return receipt
