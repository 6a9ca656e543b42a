"""The invoice lifecycle table: every state has one row, every cell is what ``assess`` does,
and the docs show the table in the code."""

from __future__ import annotations

import itertools
import re
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given

from billing_core import (
    CurrencyMismatchError,
    InvalidAmountError,
    InvalidTypeError,
    InvalidValueError,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Money,
)
from billing_core.rules import invoice_transitions, invoicing
from billing_core.rules.invoice_transitions import (
    TABLE,
    InvoiceEvent,
    InvoiceReason,
    assess,
    payment_event,
    row_for,
)
from billing_core.testing import invoice_strategies as ist

DOCS = Path(__file__).resolve().parent.parent / "docs" / "invoices.md"
EUR = "EUR"
LINES = [InvoiceLine(description="plan", amount=Money("50.00", EUR))]
STATES = list(itertools.product(InvoiceStatus, (False, True)))


def test_every_state_has_exactly_one_row() -> None:
    for status, has_payments in STATES:
        matching = [row for row in TABLE if row.matches(status, has_payments)]
        assert len(matching) == 1, (status, has_payments)
    for row in TABLE:
        assert set(row.cells) == set(InvoiceEvent)


def _invoice(status: InvoiceStatus, has_payments: bool) -> Invoice | None:
    """An invoice in that state, or None when the state cannot exist."""
    if has_payments and status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID):
        return None
    if status is InvoiceStatus.DRAFT:
        return Invoice(id="inv-1", customer_id="c", currency=EUR, lines=LINES)
    totals = invoicing.total(LINES)
    paid = Money("0.00", EUR)
    if status is InvoiceStatus.PAID:
        paid = totals.amount_due if has_payments else paid
        totals = totals if has_payments else invoicing.total(LINES, credit=Money("50.00", EUR))
    elif has_payments:
        paid = Money("20.00", EUR)
    return Invoice(
        id="inv-1",
        customer_id="c",
        currency=EUR,
        status=status,
        lines=LINES,
        number="INV-7",
        issued_on=date(2026, 3, 1),
        due_on=date(2026, 3, 31),
        totals=totals,
        amount_paid=paid,
    )


CELLS = [(s, p, e) for s, p in STATES for e in InvoiceEvent if _invoice(s, p) is not None]


def test_draft_and_void_invoices_cannot_hold_payments() -> None:
    """The two states left out of CELLS cannot be built."""
    with pytest.raises(InvalidValueError, match=r"@ \$\.amount_paid"):
        Invoice(
            id="d",
            customer_id="c",
            currency=EUR,
            totals=invoicing.total(LINES),
            amount_paid=Money("1.00", EUR),
        )
    with pytest.raises(InvalidValueError, match=r"@ \$\.amount_paid"):
        Invoice(
            id="v",
            customer_id="c",
            currency=EUR,
            status=InvoiceStatus.VOID,
            totals=invoicing.total(LINES),
            amount_paid=Money("1.00", EUR),
        )
    assert len(CELLS) == (len(STATES) - 2) * len(InvoiceEvent)


@pytest.mark.parametrize(("status", "has_payments", "event"), CELLS)
def test_every_cell_is_what_assess_does(
    status: InvoiceStatus, has_payments: bool, event: InvoiceEvent
) -> None:
    invoice = _invoice(status, has_payments)
    assert invoice is not None
    assert invoice.has_payments is has_payments
    cell = row_for(status, has_payments).cell(event)
    d = assess(invoice, event)
    assert d.reason == cell.reason
    assert d.allowed is cell.allowed
    assert d.becomes == cell.becomes
    assert d.status is status
    assert d.event is event
    assert "Invoice " in d.explanation


def test_explanations_read_out_the_figures() -> None:
    open_part = _invoice(InvoiceStatus.OPEN, True)
    assert open_part is not None
    assert assess(open_part, InvoiceEvent.OVERPAY).explanation == (
        "Invoice INV-7 (open): cannot take the payment, because only 30.00 EUR is still to pay."
    )
    assert assess(open_part, InvoiceEvent.VOID).explanation == (
        "Invoice INV-7 (open): cannot void, because it holds payments: refund them first."
    )
    assert assess(open_part, InvoiceEvent.PAY_REST).explanation == (
        "Invoice INV-7 (open): pay rest makes it paid."
    )
    draft = _invoice(InvoiceStatus.DRAFT, False)
    assert draft is not None
    assert assess(draft, InvoiceEvent.ISSUE).explanation == (
        "Invoice inv-1 (draft): issue makes it open."
    )


def test_payment_event_compares_with_what_is_still_to_pay() -> None:
    invoice = _invoice(InvoiceStatus.OPEN, True)  # 50.00 due, 20.00 paid
    assert invoice is not None
    assert payment_event(invoice, Money("29.99", EUR)) is InvoiceEvent.PAY_PART
    assert payment_event(invoice, Money("30.00", EUR)) is InvoiceEvent.PAY_REST
    assert payment_event(invoice, Money("30.01", EUR)) is InvoiceEvent.OVERPAY
    with pytest.raises(CurrencyMismatchError, match=r"@ \$\.amount"):
        payment_event(invoice, Money("1.00", "USD"))
    with pytest.raises(InvalidAmountError, match=r"@ \$\.amount"):
        payment_event(invoice, Money("0.00", EUR))
    with pytest.raises(InvalidTypeError, match=r"@ \$\.amount"):
        payment_event(invoice, "1.00")  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match=r"@ \$\.invoice"):
        assess("inv-1", InvoiceEvent.VOID)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match=r"@ \$\.event"):
        assess(invoice, "void")  # type: ignore[arg-type]


@given(ist.invoices())
def test_a_payment_moves_an_invoice_as_the_table_says(invoice: Invoice) -> None:
    """Any invoice, any payment of what is left: the table's cell, and final states stay final."""
    event = (
        payment_event(invoice, invoice.amount_remaining)
        if invoice.amount_remaining
        else InvoiceEvent.PAY_REST
    )
    d = assess(invoice, event)
    if invoice.status in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
        assert d.becomes is InvoiceStatus.PAID
    else:
        assert d.denied
    for e in InvoiceEvent:
        after = assess(invoice, e)
        if invoice.status in (InvoiceStatus.PAID, InvoiceStatus.VOID):
            assert after.denied
            assert after.reason in (
                InvoiceReason.ALREADY_PAID,
                InvoiceReason.INVOICE_VOID,
                InvoiceReason.LINES_FROZEN,
                InvoiceReason.ALREADY_ISSUED,
            )


def test_the_table_in_the_docs_is_the_table_in_the_code() -> None:
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(
        r"<!-- invoice-transitions:start -->\n(.*?)<!-- invoice-transitions:end -->",
        text,
        flags=re.S,
    )
    assert found, "docs/invoices.md lacks the invoice-transitions markers"
    assert found.group(1) == invoice_transitions.render_markdown(), (
        "docs/invoices.md is out of date; paste invoice_transitions.render_markdown() there"
    )


def test_rendering_names_every_reason_and_a_cell_is_one_thing() -> None:
    rendered = invoice_transitions.render_markdown()
    for reason in InvoiceReason:
        assert f"`{reason.value}`" in rendered
    assert rendered.count("\n") == len(TABLE) + 2
    with pytest.raises(ValueError, match="either"):
        invoice_transitions.Cell()
    with pytest.raises(ValueError, match="either"):
        invoice_transitions.Cell(becomes=InvoiceStatus.PAID, reason=InvoiceReason.ALREADY_PAID)
