"""An invoice as a host prints or sends it: plain text and a JSON-ready mapping.

``render_text(invoice, customer=None, tax_ids=())`` and ``render_json(...)`` show the number, the
status, the dates, the customer and its tax ids, every line (quantity × unit price, its service
period), each coupon's discount, the subtotal, tax per rate (or the exemption document), the
total, the store credit applied, the amount due, what was paid and refunded, what is left, and
the notes. A draft shows ``DRAFT`` instead of a number and no totals. Pure: values in, text out.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

from .errors import InvalidTypeError
from .invoices import Invoice
from .model import Customer, InvoiceLine
from .money import Money

__all__ = ["render_json", "render_text"]

_WIDTH = 72


def _check(invoice: object, customer: object, tax_ids: object) -> tuple[str, ...]:
    if not isinstance(invoice, Invoice):
        raise InvalidTypeError(
            f"must be an Invoice, not {type(invoice).__name__}", field="invoice", value=invoice
        )
    if customer is not None and not isinstance(customer, Customer):
        raise InvalidTypeError(
            f"must be a Customer or None, not {type(customer).__name__}",
            field="customer",
            value=customer,
        )
    if isinstance(tax_ids, str) or not isinstance(tax_ids, Sequence):
        raise InvalidTypeError("must be a sequence of str", field="tax_ids", value=tax_ids)
    for i, tax_id in enumerate(tax_ids):
        if not isinstance(tax_id, str):
            raise InvalidTypeError("must be a str", field=f"tax_ids[{i}]", value=tax_id)
    return tuple(tax_ids)


def _m(value: Money) -> str:
    return f"{value.amount} {value.currency}"


def _period(line: InvoiceLine) -> str | None:
    if line.period_start is None or line.period_end is None:
        return None
    return f"{line.period_start.isoformat()} to {line.period_end.isoformat()}"


def render_json(
    invoice: Invoice, *, customer: Customer | None = None, tax_ids: Sequence[str] = ()
) -> dict[str, Any]:
    """The invoice as a JSON-ready mapping (amounts as exact decimal strings)."""
    ids = _check(invoice, customer, tax_ids)
    totals = invoice.totals
    out: dict[str, Any] = {
        "id": invoice.id,
        "number": invoice.number,
        "status": invoice.status.value,
        "receipt_for": invoice.receipt_for,
        "currency": invoice.currency,
        "issued_on": invoice.issued_on.isoformat() if invoice.issued_on else None,
        "due_on": invoice.due_on.isoformat() if invoice.due_on else None,
        "customer": {
            "id": invoice.customer_id,
            "company": customer.company if customer else None,
            "address": list(customer.address) if customer else [],
            "country": customer.country if customer else None,
            "tax_ids": list(ids),
        },
        "lines": [
            {
                "description": line.description,
                "kind": line.kind.value,
                "quantity": str(line.quantity),
                "unit_price": str(line.unit_price.amount) if line.unit_price else None,
                "amount": str(line.amount.amount),
                "period": _period(line),
            }
            for line in invoice.lines
        ],
        "notes": invoice.notes,
    }
    if totals is not None:
        out["discounts"] = [
            {"coupon": c.id, "description": c.describe(), "amount": str(d.amount)}
            for c, d in zip(invoice.coupons, totals.coupon_discounts, strict=False)
        ]
        out["taxes"] = [
            {"name": r.name, "percent": str(r.percent), "amount": str(t.amount)}
            for r, t in zip(invoice.tax_rates, totals.tax_amounts, strict=False)
        ]
        out["tax_exempt"] = {"document": totals.exempted_by} if totals.exempt else None
        out.update(
            {
                name: str(getattr(totals, name).amount)
                for name in ("subtotal", "discount", "tax", "total", "credit_applied")
            }
        )
        out["amount_due"] = str(totals.amount_due.amount)
        out["amount_paid"] = str(invoice.amount_paid.amount)
        out["amount_refunded"] = str(invoice.amount_refunded.amount)
        out["amount_remaining"] = str(invoice.amount_remaining.amount)
    return out


def _row(label: str, value: str) -> str:
    """``label`` then ``value`` right-aligned at column 72; a long label wraps above it."""
    parts = textwrap.wrap(label, _WIDTH - len(value) - 1) or [""]
    last = parts[-1]
    return "\n".join([*parts[:-1], f"{last}{value:>{_WIDTH - len(last)}}"])


def render_text(
    invoice: Invoice, *, customer: Customer | None = None, tax_ids: Sequence[str] = ()
) -> str:
    """The invoice as plain text, 72 columns wide, amounts right-aligned."""
    ids = _check(invoice, customer, tax_ids)
    title = f"INVOICE {invoice.number}" if invoice.number else "DRAFT INVOICE"
    if invoice.receipt_for is not None:  # engine.receipts: a term sale's paid invoice
        title = f"RECEIPT {invoice.number} for sale {invoice.receipt_for}"
    out = [f"{title} ({invoice.status.value})"]
    if invoice.issued_on:
        out.append(f"Issued {invoice.issued_on.isoformat()}")
    if invoice.due_on:
        out.append(f"Due {invoice.due_on.isoformat()}")
    who = customer.company if customer and customer.company else invoice.customer_id
    out.append(f"Bill to: {who} ({invoice.customer_id})")
    if customer:
        out.extend(f"  {part}" for part in customer.address)
    if ids:
        out.append("Tax ids: " + ", ".join(ids))
    out.append("-" * _WIDTH)
    for line in invoice.lines:
        label = line.description or line.kind.value
        if line.unit_price is not None:
            label += f" ({line.quantity} × {_m(line.unit_price)})"
        out.append(_row(label, _m(line.amount)))
        if (span := _period(line)) is not None:
            out.append(f"  {span}")
    out.append("-" * _WIDTH)
    totals = invoice.totals
    if totals is not None:
        out.append(_row("Subtotal", _m(totals.subtotal)))
        for coupon, taken in zip(invoice.coupons, totals.coupon_discounts, strict=False):
            out.append(_row(coupon.describe(), "-" + _m(taken)))
        if totals.exempt:
            out.append(_row(f"Tax exempt (document {totals.exempted_by})", _m(totals.tax)))
        for rate, taxed in zip(invoice.tax_rates, totals.tax_amounts, strict=False):
            out.append(_row(f"{rate.name} {rate.percent}%", _m(taxed)))
        out.append(_row("Total", _m(totals.total)))
        if totals.credit_applied:
            out.append(_row("Credit applied", "-" + _m(totals.credit_applied)))
        out.append(_row("Amount due", _m(totals.amount_due)))
        if invoice.amount_paid:
            out.append(_row("Paid", _m(invoice.amount_paid)))
        if invoice.amount_refunded:
            out.append(_row("Refunded", _m(invoice.amount_refunded)))
        out.append(_row("Left to pay", _m(invoice.amount_remaining)))
    if invoice.notes:
        out.extend(["", invoice.notes])
    return "\n".join(out) + "\n"
