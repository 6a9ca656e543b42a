"""Invoice totals (SPEC 6.2): worked examples, figures from Lago and Stripe, properties."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import (
    BillingError,
    Coupon,
    CurrencyMismatchError,
    ExemptionStatus,
    InvalidAmountError,
    InvalidTypeError,
    InvalidValueError,
    InvoiceLine,
    InvoiceLineKind,
    Money,
    TaxExemption,
    TaxRate,
)
from billing_core.rules import invoicing, tax
from billing_core.testing import invoice_strategies as ist

EUR = "EUR"


def _lines(*amounts: str, currency: str = EUR) -> list[InvoiceLine]:
    return [
        InvoiceLine(description=f"line {i}", amount=Money(a, currency))
        for i, a in enumerate(amounts)
    ]


VAT = TaxRate(name="VAT", percent=Decimal("20"))
PERCENT_20 = Coupon(id="spring", percent_off=Decimal("20"))
EUR_12 = Coupon(id="welcome", amount_off=Money("12.00", EUR))


def test_the_whole_calculation_step_by_step() -> None:
    t = invoicing.total(
        _lines("60.00", "40.00"),
        coupons=[PERCENT_20, EUR_12],
        tax_rates=[VAT],
        credit=Money("10.00", EUR),
    )
    assert t.subtotal == Money("100.00", EUR)
    assert t.coupon_discounts == (Money("20.00", EUR), Money("12.00", EUR))
    assert t.discount == Money("32.00", EUR)
    assert t.line_discounts == (Money("19.20", EUR), Money("12.80", EUR))
    assert t.tax == Money("13.60", EUR)
    assert t.total == Money("81.60", EUR)
    assert t.credit_applied == Money("10.00", EUR)
    assert t.amount_due == Money("71.60", EUR)
    assert not t.exempt
    assert t.explanation == (
        "Subtotal 100.00 EUR (2 lines). Coupon spring (20% off) of 100.00 EUR: -20.00 EUR. "
        "Coupon welcome (12.00 EUR off) on 80.00 EUR: -12.00 EUR. Discount 32.00 EUR, leaving "
        "68.00 EUR. VAT 20% of 68.00 EUR: 13.60 EUR. Total 81.60 EUR. Credit applied 10.00 EUR "
        "of the 10.00 EUR available. Amount due 71.60 EUR."
    )


def test_coupon_order_matters() -> None:
    first = invoicing.total(_lines("100.00"), coupons=[EUR_12, PERCENT_20])
    assert first.coupon_discounts == (Money("12.00", EUR), Money("17.60", EUR))
    assert first.discount == Money("29.60", EUR)


def test_lago_applied_coupon_figures() -> None:
    """getlago/lago-api spec/services/credits/applied_coupon_service_spec.rb: a 0.12 EUR coupon
    on a 1.23 EUR invoice takes 0.12; on a 0.10 invoice it is limited to 0.10; a 20% coupon on
    1.23 takes 0.25 (0.246 rounded half-up)."""
    coupon = Coupon(id="c", amount_off=Money("0.12", EUR))
    assert invoicing.total(_lines("1.23"), coupons=[coupon]).discount == Money("0.12", EUR)
    capped = invoicing.total(_lines("0.10"), coupons=[coupon])
    assert capped.discount == Money("0.10", EUR)
    assert capped.total == Money("0.00", EUR)
    percent = Coupon(id="p", percent_off=Decimal("20.00"))
    assert invoicing.total(_lines("1.23"), coupons=[percent]).discount == Money("0.25", EUR)


def test_stripe_amount_off_never_makes_a_total_negative() -> None:
    """Stripe API reference, "Create a coupon" (amount_off): a coupon of 200 on a subtotal of
    100 gives a total of 0; on a subtotal of 300, a total of 100."""
    coupon = Coupon(id="c", amount_off=Money(200, "JPY"))
    assert invoicing.total(_lines("100", currency="JPY"), coupons=[coupon]).total == Money(0, "JPY")
    assert invoicing.total(_lines("300", currency="JPY"), coupons=[coupon]).total == Money(
        100, "JPY"
    )


def test_lago_taxes_on_invoice_figures() -> None:
    """getlago/lago-api spec/services/invoices/apply_taxes_service_spec.rb: fees of 10.00 and
    20.00 at 10% tax: 3.00; with a 10.00 coupon the 10% tax is on 20.00: 2.00."""
    ten = TaxRate(name="tax1", percent=10)
    assert invoicing.total(_lines("10.00", "20.00"), tax_rates=[ten]).tax == Money("3.00", EUR)
    coupon = Coupon(id="c", amount_off=Money("10.00", EUR))
    t = invoicing.total(_lines("10.00", "20.00"), coupons=[coupon], tax_rates=[ten])
    assert t.tax == Money("2.00", EUR)
    assert t.line_discounts == (Money("3.33", EUR), Money("6.67", EUR))


def test_lago_credit_note_invoice_v3_figures() -> None:
    """getlago/lago-api spec/services/credit_notes/validate_service_spec.rb ("invoice is v3 with
    coupons"): fees 1.00, coupons 0.10, taxes 20% = 0.18, total 1.08."""
    t = invoicing.total(
        _lines("1.00"), coupons=[Coupon(id="c", amount_off=Money("0.10", EUR))], tax_rates=[VAT]
    )
    assert (t.discount, t.tax, t.total) == (
        Money("0.10", EUR),
        Money("0.18", EUR),
        Money("1.08", EUR),
    )


def test_lago_prepaid_credit_figures() -> None:
    """getlago/lago-api spec/services/credits/applied_prepaid_credit_service_spec.rb: 10.00 of
    credit on a 1.00 invoice applies 1.00; on a 15.00 invoice it applies 10.00."""
    small = invoicing.total(_lines("1.00"), credit=Money("10.00", EUR))
    assert (small.credit_applied, small.amount_due) == (Money("1.00", EUR), Money("0.00", EUR))
    large = invoicing.total(_lines("15.00"), credit=Money("10.00", EUR))
    assert (large.credit_applied, large.amount_due) == (Money("10.00", EUR), Money("5.00", EUR))


def test_each_rate_is_rounded_once_on_the_whole_invoice() -> None:
    rates = [TaxRate(name="state", percent="6.25"), TaxRate(name="city", percent="2.5")]
    t = invoicing.total(_lines("0.99", "0.99", "0.99"), tax_rates=rates)
    # 2.97 × 6.25% = 0.185625 -> 0.19; 2.97 × 2.5% = 0.07425 -> 0.07 (never per line: 3 × 0.06)
    assert t.tax_amounts == (Money("0.19", EUR), Money("0.07", EUR))
    assert t.tax == Money("0.26", EUR)
    assert "state 6.25% of 2.97 EUR: 0.19 EUR. city 2.5% of 2.97 EUR: 0.07 EUR. Tax: 0.26 EUR." in (
        t.explanation
    )


def test_credit_lines_get_no_share_of_the_discount() -> None:
    lines = [
        *_lines("50.00", "30.00"),
        InvoiceLine(description="unused", amount=Money("-20.00", EUR), kind=InvoiceLineKind.CREDIT),
    ]
    t = invoicing.total(lines, coupons=[Coupon(id="half", percent_off=50)])
    assert t.subtotal == Money("60.00", EUR)
    assert t.discount == Money("30.00", EUR)
    assert t.line_discounts == (Money("18.75", EUR), Money("11.25", EUR), Money("0.00", EUR))


def test_a_zero_invoice() -> None:
    t = invoicing.total(_lines("0.00"), coupons=[EUR_12], tax_rates=[VAT])
    assert t.discount == t.tax == t.total == t.amount_due == Money("0.00", EUR)
    assert t.line_discounts == (Money("0.00", EUR),)


VALID = TaxExemption(status=ExemptionStatus.VALID, valid_until=date(2027, 1, 1), document_id="TX-9")


def test_a_valid_exemption_zeroes_the_tax_and_says_which_document() -> None:
    t = invoicing.total(_lines("100.00"), tax_rates=[VAT], exemption=VALID, on=date(2027, 1, 1))
    assert t.exempt
    assert t.exempted_by == "TX-9"
    assert t.tax == Money("0.00", EUR)
    assert t.tax_amounts == (Money("0.00", EUR),)
    assert t.total == Money("100.00", EUR)
    assert (
        "Tax exempt on 2027-01-01: tax exemption document TX-9 is valid, valid until 2027-01-01."
        in t.explanation
    )


@pytest.mark.parametrize(
    ("exemption", "on", "exempt"),
    [
        (VALID, date(2027, 1, 1), True),
        (VALID, date(2027, 1, 2), False),
        (TaxExemption(status="valid"), date(2099, 1, 1), True),
        (TaxExemption(status="new"), date(2026, 1, 1), False),
        (TaxExemption(status="in_review", valid_until=date(2030, 1, 1)), date(2026, 1, 1), False),
        (TaxExemption(status="expired"), date(2026, 1, 1), False),
    ],
)
def test_is_exempt(exemption: TaxExemption, on: date, exempt: bool) -> None:
    assert tax.is_exempt(exemption, on=on) is exempt
    t = invoicing.total(_lines("100.00"), tax_rates=[VAT], exemption=exemption, on=on)
    assert t.exempt is exempt
    assert t.tax == (Money("0.00", EUR) if exempt else Money("20.00", EUR))
    assert ("Tax exempt on" in t.explanation) is exempt


def test_an_exemption_that_does_not_apply_says_why() -> None:
    lapsed = tax.describe_exemption(VALID, on=date(2027, 2, 1))
    assert lapsed == (
        "Not tax exempt on 2027-02-01: tax exemption document TX-9 was valid until 2027-01-01, "
        "so tax applies."
    )
    review = tax.describe_exemption(TaxExemption(status="in_review"), on=date(2027, 2, 1))
    assert (
        review == "Not tax exempt: tax exemption document is in review, not valid, so tax applies."
    )


def test_bad_input_raises_naming_the_field() -> None:
    cases: list[tuple[dict[str, object], type[BillingError], str]] = [
        ({"lines": []}, InvalidValueError, "$.lines"),
        (
            {"lines": [*_lines("1.00"), *_lines("1.00", currency="USD")]},
            CurrencyMismatchError,
            "$.lines[1].amount",
        ),
        ({"lines": _lines("1.005")}, InvalidAmountError, "$.lines[0].amount"),
        ({"lines": _lines("1.00", "-2.00")}, InvalidAmountError, "$.lines"),
        ({"lines": ["1.00"]}, InvalidTypeError, "$.lines[0]"),
        (
            {"coupons": [Coupon(id="c", amount_off=Money(1, "USD"))]},
            CurrencyMismatchError,
            "$.coupons[0].amount_off",
        ),
        ({"coupons": ["c"]}, InvalidTypeError, "$.coupons[0]"),
        ({"tax_rates": [20]}, InvalidTypeError, "$.tax_rates[0]"),
        ({"exemption": VALID}, InvalidValueError, "$.on"),
        ({"exemption": "valid", "on": date(2026, 1, 1)}, InvalidTypeError, "$.exemption"),
        ({"credit": Money(1, "USD")}, CurrencyMismatchError, "$.credit"),
        ({"credit": Money("-1.00", EUR)}, InvalidAmountError, "$.credit"),
        ({"credit": Money("0.001", EUR)}, InvalidAmountError, "$.credit"),
        ({"credit": "5.00"}, InvalidTypeError, "$.credit"),
    ]
    for kwargs, error, field in cases:
        args: dict[str, object] = {"lines": _lines("10.00")}
        args.update(kwargs)
        lines = args.pop("lines")
        with pytest.raises(error) as info:
            invoicing.total(lines, **args)  # type: ignore[arg-type]
        assert info.value.field == field, kwargs


# -- properties ---------------------------------------------------------------------------------
coupon_lists = st.lists(ist.coupons(EUR), max_size=4)
rate_lists = st.lists(ist.tax_rates(), max_size=3)
credits = st.none() | st.integers(0, 10**9).map(lambda n: Money.from_minor_units(n, EUR))


@given(ist.invoice_lines_for_total(EUR), coupon_lists, rate_lists, credits)
def test_totals_always_add_up(
    lines: list[InvoiceLine], coupons: list[Coupon], rates: list[TaxRate], credit: Money | None
) -> None:
    t = invoicing.total(lines, coupons=coupons, tax_rates=rates, credit=credit)
    zero = Money.zero(EUR)
    assert zero <= t.discount <= t.subtotal
    assert sum(t.line_discounts, zero) == t.discount
    assert len(t.line_discounts) == len(lines)
    assert sum(t.coupon_discounts, zero) == t.discount
    assert all(d >= zero for d in t.line_discounts)
    assert sum(t.tax_amounts, zero) == t.tax
    assert t.total == t.subtotal - t.discount + t.tax
    assert t.total >= zero
    assert t.credit_applied <= t.total
    if credit is not None:
        assert t.credit_applied <= credit
    else:
        assert t.credit_applied == zero
    assert t.amount_due == t.total - t.credit_applied >= zero
    for m in (t.subtotal, t.discount, t.tax, t.total, t.amount_due, *t.line_discounts):
        assert m.is_rounded


@given(ist.invoice_lines_for_total(EUR), rate_lists, ist.exemptions(), st.dates())
def test_exemption_zeroes_tax_exactly_when_valid(
    lines: list[InvoiceLine], rates: list[TaxRate], exemption: TaxExemption, on: date
) -> None:
    t = invoicing.total(lines, tax_rates=rates, exemption=exemption, on=on)
    expected = exemption.status is ExemptionStatus.VALID and (
        exemption.valid_until is None or on <= exemption.valid_until
    )
    assert t.exempt is expected is tax.is_exempt(exemption, on=on)
    if expected:
        assert t.tax == Money.zero(EUR)
        assert t.exempted_by == exemption.document_id
    else:
        assert t.tax == invoicing.total(lines, tax_rates=rates).tax


@given(ist.invoice_lines_for_total(EUR), st.lists(ist.percents, min_size=1, max_size=3))
def test_percent_coupons_apply_to_what_is_left(
    lines: list[InvoiceLine], percents: list[Decimal]
) -> None:
    coupons = [Coupon(id=f"c{i}", percent_off=p) for i, p in enumerate(percents)]
    t = invoicing.total(lines, coupons=coupons)
    left = t.subtotal
    for p, taken in zip(percents, t.coupon_discounts, strict=True):
        assert taken == Money(left.amount * p / 100, EUR).rounded()
        left -= taken
