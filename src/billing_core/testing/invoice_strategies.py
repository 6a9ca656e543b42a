"""Hypothesis strategies for the invoice and collection values (coupons, taxes, invoices,
credit memos, payment instruments), beside ``billing_core.testing.strategies``.

from billing_core.testing import invoice_strategies as ist

@given(ist.invoice_lines_for_total("EUR"), ist.coupons("EUR"))
def test_something(lines, coupon): ...
"""

from __future__ import annotations

from datetime import date

from hypothesis import strategies as st

from ..instruments import InstrumentKind, PaymentInstrument
from ..invoices import (
    Coupon,
    CouponDuration,
    CreditMemoBalance,
    CreditMemoItem,
    ExemptionStatus,
    Invoice,
    InvoiceStatus,
    TaxExemption,
    TaxRate,
)
from ..model import InvoiceLine, InvoiceLineKind
from ..money import Money
from ..rules.invoicing import total
from .strategies import amounts, aware_datetimes, dates, money

__all__ = [
    "coupons",
    "credit_memo_balances",
    "credit_memo_items",
    "exemptions",
    "invoice_lines_for_total",
    "invoices",
    "payment_instruments",
    "percents",
    "tax_rates",
]

_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)

percents = amounts(2, min_units=1, max_units=10_000)
"""Decimals in ``(0, 100]`` with two decimal places."""


def coupons(currency: str = "EUR") -> st.SearchStrategy[Coupon]:
    """Valid coupons of either kind and any duration, ``amount_off`` in ``currency``."""

    @st.composite
    def build(draw: st.DrawFn) -> Coupon:
        duration = draw(st.sampled_from(list(CouponDuration)))
        off = draw(
            st.one_of(
                st.builds(
                    lambda a: {"amount_off": a}, money(currency, min_units=1, max_units=10**6)
                ),
                st.builds(lambda p: {"percent_off": p}, percents),
            )
        )
        return Coupon(
            id=draw(_ids),
            duration=duration,
            duration_periods=draw(st.integers(1, 24))
            if duration is CouponDuration.REPEATING
            else None,
            max_redemptions=draw(st.none() | st.integers(1, 1000)),
            redeem_by=draw(st.none() | dates()),
            **off,
        )

    return build()


def tax_rates() -> st.SearchStrategy[TaxRate]:
    return st.builds(
        TaxRate,
        name=st.sampled_from(["VAT", "GST", "state", "city"]),
        percent=amounts(3, min_units=0, max_units=100_000),
    )


def exemptions() -> st.SearchStrategy[TaxExemption]:
    return st.builds(
        TaxExemption,
        status=st.sampled_from(list(ExemptionStatus)),
        valid_until=st.none() | dates(),
        document_id=st.none() | _ids,
        tax_id=st.none() | _ids,
    )


def invoice_lines_for_total(
    currency: str = "EUR", *, max_size: int = 6
) -> st.SearchStrategy[list[InvoiceLine]]:
    """Rounded lines in one currency, credits included, whose sum is not negative."""
    line = st.builds(
        InvoiceLine,
        description=st.sampled_from(["seats", "usage", "setup", "credit"]),
        amount=money(currency, min_units=-(10**6), max_units=10**8),
        kind=st.sampled_from(list(InvoiceLineKind)),
    )
    return st.lists(line, min_size=1, max_size=max_size).filter(
        lambda ls: sum(x.amount.amount for x in ls) >= 0
    )


def credit_memo_items(currency: str = "EUR") -> st.SearchStrategy[CreditMemoItem]:
    return st.builds(
        CreditMemoItem,
        description=st.sampled_from(["refund of seats", "goodwill", "overcharge"]),
        quantity=amounts(0, min_units=1, max_units=1000, extra_digits=2),
        unit_price=money(currency, min_units=0, max_units=10**6, extra_digits=2),
        tax=st.none() | money(currency, min_units=0, max_units=10**5),
    )


def credit_memo_balances(currency: str = "EUR") -> st.SearchStrategy[CreditMemoBalance]:
    return st.builds(
        CreditMemoBalance,
        memo_id=_ids,
        remaining=money(currency, min_units=0, max_units=10**6),
        created_at=aware_datetimes(),
    )


def payment_instruments() -> st.SearchStrategy[PaymentInstrument]:
    return st.builds(
        PaymentInstrument,
        id=st.sampled_from(["pi-1", "pi-2", "pi-3", "pi-4", "pi-5"]),
        active=st.booleans(),
        expires_on=st.none() | st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31)),
        kind=st.none() | st.sampled_from(list(InstrumentKind)),
        fingerprint=st.none() | _ids,
    )


@st.composite
def invoices(draw: st.DrawFn, currency: str = "EUR") -> Invoice:
    """Invoices in any lifecycle status, with consistent totals, numbers and payments."""
    status = draw(st.sampled_from(list(InvoiceStatus)))
    lines = draw(invoice_lines_for_total(currency, max_size=3))
    cs = draw(st.lists(coupons(currency), max_size=2))
    rates = draw(st.lists(tax_rates(), max_size=2))
    issued = status is not InvoiceStatus.DRAFT and (
        status is not InvoiceStatus.VOID or draw(st.booleans())
    )
    totals = total(lines, coupons=cs, tax_rates=rates) if issued else None
    issued_on = draw(dates()) if issued else None
    paid = Money.zero(currency)
    if totals is not None and status in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE):
        paid = Money.from_minor_units(draw(st.integers(0, totals.amount_due.minor_units)), currency)
    elif totals is not None and status is InvoiceStatus.PAID:
        paid = totals.amount_due
    refunded = (
        paid
        if status is InvoiceStatus.VOID
        else Money.from_minor_units(draw(st.integers(0, paid.minor_units)), currency)
    )
    return Invoice(
        id=draw(_ids),
        customer_id=draw(_ids),
        currency=currency,
        status=status,
        lines=lines,
        number=draw(_ids) if issued else None,
        issued_on=issued_on,
        due_on=issued_on,
        coupons=cs,
        tax_rates=rates,
        exemption=draw(st.none() | exemptions()),
        totals=totals,
        amount_paid=paid,
        amount_refunded=refunded,
        notes=draw(st.sampled_from(["", "Thank you for your order."])),
    )
