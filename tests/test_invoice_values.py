"""The invoice values validate on construction (naming the field) and round-trip through JSON."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given

from billing_core import (
    BillingError,
    Coupon,
    CouponDuration,
    CreditMemoBalance,
    CreditMemoItem,
    CurrencyMismatchError,
    InvalidAmountError,
    InvalidTypeError,
    InvalidValueError,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Money,
    PaymentInstrument,
    PrecisionError,
    TaxExemption,
    TaxRate,
)
from billing_core.rules import invoicing
from billing_core.serialization import loads, unstructure
from billing_core.testing import invoice_strategies as ist

EUR = "EUR"
LINE = InvoiceLine(description="seats", amount=Money("100.00", EUR))


def _round_trip(value: Any, cls: type) -> None:
    data = unstructure(value)
    back: Any = loads(json.dumps(data), cls)
    assert back == value
    assert unstructure(back) == data


@given(ist.coupons())
def test_coupons_round_trip(c: Coupon) -> None:
    _round_trip(c, Coupon)


@given(ist.tax_rates())
def test_tax_rates_round_trip(r: TaxRate) -> None:
    _round_trip(r, TaxRate)


@given(ist.exemptions())
def test_exemptions_round_trip(e: TaxExemption) -> None:
    _round_trip(e, TaxExemption)


@given(ist.invoices())
def test_invoices_round_trip(i: Invoice) -> None:
    _round_trip(i, Invoice)


@given(ist.credit_memo_items())
def test_credit_memo_items_round_trip(item: CreditMemoItem) -> None:
    _round_trip(item, CreditMemoItem)


@given(ist.credit_memo_balances())
def test_credit_memo_balances_round_trip(b: CreditMemoBalance) -> None:
    _round_trip(b, CreditMemoBalance)


@given(ist.payment_instruments())
def test_payment_instruments_round_trip(p: PaymentInstrument) -> None:
    _round_trip(p, PaymentInstrument)


def test_json_of_a_coupon_refuses_a_float_percent() -> None:
    with pytest.raises(BillingError, match=r"percent_off"):
        loads('{"id": "c", "percent_off": 20.5}', Coupon)


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({}, InvalidValueError, "$.percent_off"),
        ({"amount_off": Money("1.00", EUR), "percent_off": 5}, InvalidValueError, "$.amount_off"),
        ({"percent_off": 0}, InvalidAmountError, "$.percent_off"),
        ({"percent_off": "100.01"}, InvalidAmountError, "$.percent_off"),
        ({"percent_off": -5}, InvalidAmountError, "$.percent_off"),
        ({"percent_off": 20.0}, InvalidTypeError, "$.percent_off"),
        ({"amount_off": Money("0.00", EUR)}, InvalidAmountError, "$.amount_off"),
        ({"amount_off": Money("-1.00", EUR)}, InvalidAmountError, "$.amount_off"),
        ({"amount_off": Money("0.005", EUR)}, PrecisionError, "$.amount_off"),
        ({"amount_off": "12.00"}, InvalidTypeError, "$.amount_off"),
        ({"percent_off": 5, "duration": "repeating"}, InvalidValueError, "$.duration_periods"),
        (
            {"percent_off": 5, "duration": "once", "duration_periods": 2},
            InvalidValueError,
            "$.duration_periods",
        ),
        (
            {"percent_off": 5, "duration": "repeating", "duration_periods": 0},
            InvalidAmountError,
            "$.duration_periods",
        ),
        ({"percent_off": 5, "duration": "weekly"}, InvalidValueError, "$.duration"),
        ({"percent_off": 5, "max_redemptions": 0}, InvalidAmountError, "$.max_redemptions"),
        ({"percent_off": 5, "redeem_by": "2027-01-01"}, InvalidTypeError, "$.redeem_by"),
    ],
)
def test_bad_coupons_raise_naming_the_field(
    kwargs: dict[str, Any], error: type[BillingError], field: str
) -> None:
    with pytest.raises(error) as info:
        Coupon(id="c", **kwargs)
    assert info.value.field == field


def test_a_coupon_of_exactly_one_kind_and_percent_up_to_100() -> None:
    assert Coupon(id="c", percent_off=100).percent_off == Decimal(100)
    assert Coupon(id="c", percent_off="0.01").percent_off == Decimal("0.01")
    c = Coupon(id="c", amount_off=Money("12.00", EUR), duration="repeating", duration_periods=3)
    assert c.duration is CouponDuration.REPEATING
    assert c.describe() == "Coupon c (12.00 EUR off)"


@pytest.mark.parametrize(
    ("percent", "error"),
    [(-1, InvalidAmountError), ("100.5", InvalidAmountError), (0.2, InvalidTypeError)],
)
def test_bad_tax_rates(percent: Any, error: type[BillingError]) -> None:
    with pytest.raises(error) as info:
        TaxRate(name="VAT", percent=percent)
    assert info.value.field == "$.percent"
    assert TaxRate(name="zero-rated", percent=0).percent == 0
    with pytest.raises(InvalidValueError, match=r"@ \$\.name"):
        TaxRate(name="", percent=1)


def test_bad_exemptions() -> None:
    with pytest.raises(InvalidValueError, match=r"@ \$\.status"):
        TaxExemption(status="approved")
    with pytest.raises(InvalidTypeError, match=r"@ \$\.valid_until"):
        TaxExemption(status="valid", valid_until=datetime(2027, 1, 1, tzinfo=UTC))


def test_credit_memo_items() -> None:
    item = CreditMemoItem(
        description="3 seats", quantity=3, unit_price=Money("3.333", EUR), tax=Money("2.00", EUR)
    )
    assert item.amount == Money("10.00", EUR)  # 9.999 rounded once
    assert item.tax_amount == Money("2.00", EUR)
    assert CreditMemoItem(description="", quantity=1, unit_price=Money(1, EUR)).tax_amount == (
        Money("0.00", EUR)
    )
    cases: list[tuple[dict[str, Any], str]] = [
        ({"quantity": 0}, "$.quantity"),
        ({"unit_price": Money("-1.00", EUR)}, "$.unit_price"),
        ({"tax": Money("-1.00", EUR)}, "$.tax"),
        ({"tax": Money("1.00", "USD")}, "$.tax"),
        ({"tax": Money("0.001", EUR)}, "$.tax"),
    ]
    for kwargs, field in cases:
        args: dict[str, Any] = {"description": "x", "quantity": 1, "unit_price": Money(1, EUR)}
        args.update(kwargs)
        with pytest.raises(BillingError) as info:
            CreditMemoItem(**args)
        assert info.value.field == field, kwargs


def test_credit_memo_balances() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidAmountError, match=r"@ \$\.remaining"):
        CreditMemoBalance(memo_id="m", remaining=Money("-0.01", EUR), created_at=at)
    with pytest.raises(BillingError, match=r"@ \$\.created_at"):
        CreditMemoBalance(memo_id="m", remaining=Money(1, EUR), created_at=datetime(2026, 1, 1))  # noqa: DTZ001


def _issued(**kwargs: Any) -> Invoice:
    args: dict[str, Any] = {
        "id": "inv-1",
        "customer_id": "cus-1",
        "currency": EUR,
        "status": InvoiceStatus.OPEN,
        "lines": [LINE],
        "number": "INV-0001",
        "issued_on": date(2026, 3, 1),
        "due_on": date(2026, 3, 31),
        "totals": invoicing.total([LINE]),
    }
    args.update(kwargs)
    return Invoice(**args)


def test_an_invoice_adds_up() -> None:
    inv = _issued(amount_paid=Money("40.00", EUR), amount_refunded=Money("10.00", EUR))
    assert inv.amount_remaining == Money("60.00", EUR)
    assert inv.partially_paid
    assert inv.has_payments
    draft = Invoice(id="d", customer_id="c", currency=EUR, lines=[LINE])
    assert draft.status is InvoiceStatus.DRAFT
    assert draft.amount_paid == Money("0.00", EUR)
    assert draft.amount_remaining == Money("0.00", EUR)
    assert not draft.partially_paid


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"status": "draft"}, "$.number"),
        ({"number": None}, "$.number"),
        ({"issued_on": None}, "$.issued_on"),
        ({"totals": None}, "$.totals"),
        ({"due_on": date(2026, 2, 28)}, "$.due_on"),
        ({"currency": "XXY"}, "$.currency"),
        ({"lines": [InvoiceLine(description="x", amount=Money(1, "USD"))]}, "$.lines[0].amount"),
        ({"coupons": [Coupon(id="c", amount_off=Money(1, "USD"))]}, "$.coupons[0].amount_off"),
        ({"amount_paid": Money("100.01", EUR)}, "$.amount_paid"),
        ({"amount_paid": Money("-1.00", EUR)}, "$.amount_paid"),
        ({"amount_paid": Money(1, "USD")}, "$.amount_paid"),
        ({"amount_refunded": Money("1.00", EUR)}, "$.amount_refunded"),
        ({"status": "paid", "amount_paid": Money("99.00", EUR)}, "$.amount_paid"),
        ({"status": "void", "amount_paid": Money("5.00", EUR)}, "$.amount_paid"),
        ({"status": "sent"}, "$.status"),
        ({"lines": ["seats"]}, "$.lines[0]"),
        ({"coupons": ["spring"]}, "$.coupons[0]"),
        ({"tax_rates": [20]}, "$.tax_rates[0]"),
        ({"exemption": "valid"}, "$.exemption"),
        ({"totals": "100.00"}, "$.totals"),
    ],
)
def test_bad_invoices_raise_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(BillingError) as info:
        _issued(**kwargs)
    assert info.value.field == field


def test_a_draft_takes_no_payment() -> None:
    with pytest.raises(InvalidValueError, match=r"@ \$\.amount_paid"):
        Invoice(
            id="d",
            customer_id="c",
            currency=EUR,
            totals=invoicing.total([LINE]),
            amount_paid=Money("1.00", EUR),
        )


def test_mixed_currency_totals_raise() -> None:
    with pytest.raises(CurrencyMismatchError, match=r"@ \$\.totals\.subtotal"):
        _issued(currency="USD", lines=[], coupons=[])


def test_payment_instruments() -> None:
    p = PaymentInstrument(id="pi-1", expires_on=date(2027, 12, 31), kind="payment_card")
    assert p.usable_on(date(2027, 12, 31))
    assert not p.usable_on(date(2028, 1, 1))
    assert not PaymentInstrument(id="pi-2", active=False).usable_on(date(2026, 1, 1))
    with pytest.raises(InvalidValueError, match=r"@ \$\.kind"):
        PaymentInstrument(id="pi-1", kind="cash")
    with pytest.raises(InvalidTypeError, match=r"@ \$\.active"):
        PaymentInstrument(id="pi-1", active=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match=r"@ \$\.id"):
        PaymentInstrument(id="")
