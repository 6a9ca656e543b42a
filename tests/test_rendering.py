"""An invoice rendered as plain text and JSON (issue 13): every figure a host sends."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import attrs
import pytest

from billing_core import (
    Coupon,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Money,
    TaxExemption,
    TaxRate,
)
from billing_core.errors import InvalidTypeError
from billing_core.rendering import render_json, render_text
from billing_core.rules import invoicing


def eur(amount: str) -> Money:
    return Money(amount, "EUR")


LINES = (
    InvoiceLine(
        description="Team plan",
        amount=eur("60.00"),
        quantity=3,
        unit_price=eur("20.00"),
        period_start=date(2026, 3, 1),
        period_end=date(2026, 4, 1),
    ),
    InvoiceLine(description="Extra seats", amount=eur("40.00")),
)
COUPONS = (Coupon(id="spring", percent_off=Decimal("20")),)
RATES = (TaxRate(name="VAT", percent=Decimal("20")),)
CUSTOMER = Customer(id="c1", company="Acme GmbH", address=("Hauptstr. 1", "10115 Berlin"))


def _invoice() -> Invoice:
    totals = invoicing.total(LINES, coupons=COUPONS, tax_rates=RATES, credit=eur("10.00"))
    return Invoice(
        id="in-1",
        customer_id="c1",
        currency="EUR",
        status=InvoiceStatus.OPEN,
        lines=LINES,
        number="INV-000007",
        issued_on=date(2026, 3, 1),
        due_on=date(2026, 3, 31),
        coupons=COUPONS,
        tax_rates=RATES,
        totals=totals,
        amount_paid=eur("20.00"),
        amount_refunded=eur("5.00"),
        notes="Thank you for your business.",
    )


TEXT = """\
INVOICE INV-000007 (open)
Issued 2026-03-01
Due 2026-03-31
Bill to: Acme GmbH (c1)
  Hauptstr. 1
  10115 Berlin
Tax ids: DE123456789
------------------------------------------------------------------------
Team plan (3 × 20.00 EUR)                                      60.00 EUR
  2026-03-01 to 2026-04-01
Extra seats                                                    40.00 EUR
------------------------------------------------------------------------
Subtotal                                                      100.00 EUR
Coupon spring (20% off)                                       -20.00 EUR
VAT 20%                                                        16.00 EUR
Total                                                          96.00 EUR
Credit applied                                                -10.00 EUR
Amount due                                                     86.00 EUR
Paid                                                           20.00 EUR
Refunded                                                        5.00 EUR
Left to pay                                                    66.00 EUR

Thank you for your business.
"""


def test_plain_text_shows_every_figure() -> None:
    assert render_text(_invoice(), customer=CUSTOMER, tax_ids=["DE123456789"]) == TEXT


def test_json_holds_the_same_figures_and_round_trips() -> None:
    data = render_json(_invoice(), customer=CUSTOMER, tax_ids=("DE123456789",))
    assert json.loads(json.dumps(data)) == data
    assert data["number"] == "INV-000007" and data["customer"]["tax_ids"] == ["DE123456789"]
    assert data["customer"]["company"] == "Acme GmbH"
    assert [line["amount"] for line in data["lines"]] == ["60.00", "40.00"]
    assert data["discounts"] == [
        {"coupon": "spring", "description": "Coupon spring (20% off)", "amount": "20.00"}
    ]
    assert data["taxes"] == [{"name": "VAT", "percent": "20", "amount": "16.00"}]
    figures = ("subtotal", "discount", "tax", "total", "credit_applied", "amount_due")
    assert [data[k] for k in figures] == ["100.00", "20.00", "16.00", "96.00", "10.00", "86.00"]
    assert (data["amount_paid"], data["amount_refunded"], data["amount_remaining"]) == (
        "20.00",
        "5.00",
        "66.00",
    )
    assert data["notes"] == "Thank you for your business."


def test_an_exempt_invoice_names_its_document() -> None:
    document = TaxExemption(status="valid", document_id="TX-9")
    totals = invoicing.total(LINES, tax_rates=RATES, exemption=document, on=date(2026, 3, 1))
    exempt = attrs.evolve(
        _invoice(),
        coupons=(),
        totals=totals,
        amount_paid=eur("0.00"),
        amount_refunded=eur("0.00"),
        exemption=document,
    )
    text = render_text(exempt)
    assert "Tax exempt (document TX-9)" in text and "Bill to: c1 (c1)" in text
    assert render_json(exempt)["tax_exempt"] == {"document": "TX-9"}


def test_a_long_label_wraps_above_its_amount() -> None:
    long = InvoiceLine(description=" ".join(["word"] * 20), amount=eur("1.00"))
    text = render_text(Invoice(id="in-3", customer_id="c1", currency="EUR", lines=(long,)))
    rows = text.splitlines()[3:5]
    assert rows[0] == " ".join(["word"] * 12)
    assert rows[1] == " ".join(["word"] * 8) + " " * 25 + "1.00 EUR"
    assert all(len(row) <= 72 for row in text.splitlines())


def test_a_draft_has_no_number_and_no_totals() -> None:
    draft = Invoice(id="in-2", customer_id="c1", currency="EUR", lines=LINES)
    text = render_text(draft)
    assert text.startswith("DRAFT INVOICE (draft)\nBill to: c1 (c1)\n")
    assert "Amount due" not in text
    data = render_json(draft)
    assert data["number"] is None and "amount_due" not in data


def test_bad_input_names_the_field() -> None:
    with pytest.raises(InvalidTypeError) as info:
        render_text("in-1")  # type: ignore[arg-type]
    assert info.value.field == "$.invoice"
    with pytest.raises(InvalidTypeError) as ids:
        render_json(_invoice(), tax_ids="DE1")
    assert ids.value.field == "$.tax_ids"
