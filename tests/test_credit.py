"""Credit memo arithmetic and store-credit consumption: oldest first, invoice currency only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import (
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
    TaxRate,
)
from billing_core.rules import credit, invoicing
from billing_core.rules.credit import CreditReason
from billing_core.testing import invoice_strategies as ist

EUR = "EUR"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _item(qty: str, price: str, tax: str | None = None, currency: str = EUR) -> CreditMemoItem:
    return CreditMemoItem(
        description="seat",
        quantity=qty,
        unit_price=Money(price, currency),
        tax=None if tax is None else Money(tax, currency),
    )


def _balance(memo: str, amount: str, days: int, currency: str = EUR) -> CreditMemoBalance:
    return CreditMemoBalance(
        memo_id=memo, remaining=Money(amount, currency), created_at=T0 + timedelta(days=days)
    )


def test_a_memo_is_quantity_times_unit_price_plus_tax() -> None:
    d = credit.assess_credit_memo([_item("3", "9.99", "6.00"), _item("0.5", "0.05")])
    assert d.allowed
    assert (d.subtotal, d.tax, d.total) == (
        Money("30.00", EUR),  # 29.97 + (0.025 -> 0.03: each item rounded once)
        Money("6.00", EUR),
        Money("36.00", EUR),
    )
    assert d.explanation == (
        "seat: 3 × 9.99 EUR = 29.97 EUR + tax 6.00 EUR; seat: 0.5 × 0.05 EUR = 0.03 EUR. "
        "Credit memo total 30.00 EUR + tax 6.00 EUR = 36.00 EUR."
    )


def _invoice(total: str, refunded: str = "0.00") -> Invoice:
    lines = [InvoiceLine(description="plan", amount=Money(total, EUR))]
    return Invoice(
        id="inv",
        customer_id="c",
        currency=EUR,
        status=InvoiceStatus.PAID,
        lines=lines,
        number="INV-1",
        issued_on=date(2026, 1, 1),
        totals=invoicing.total(lines),
        amount_paid=Money(total, EUR),
        amount_refunded=Money(refunded, EUR),
    )


def test_lago_credit_higher_than_the_invoice_is_refused() -> None:
    """getlago/lago-api spec/services/credit_notes/validate_service_spec.rb: on an invoice of
    1.20 (1.00 + 20% tax), a credit of 2.50 is higher_than_remaining_invoice_amount; 1.00 plus
    0.20 tax is exactly what it can credit."""
    lines = [InvoiceLine(description="fee", amount=Money("1.00", EUR))]
    totals = invoicing.total(lines, tax_rates=[TaxRate(name="VAT", percent=20)])
    assert totals.total == Money("1.20", EUR)
    invoice = Invoice(
        id="inv",
        customer_id="c",
        currency=EUR,
        status="open",
        lines=lines,
        number="INV-2",
        issued_on=date(2026, 1, 1),
        totals=totals,
    )
    cap = credit.creditable(invoice)
    assert cap == Money("1.20", EUR)
    too_much = credit.assess_credit_memo([_item("1", "2.50")], creditable=cap)
    assert too_much.reason is CreditReason.EXCEEDS_CREDITABLE
    assert too_much.explanation.endswith(
        "Credit memo total 2.50 EUR + tax 0.00 EUR = 2.50 EUR, more than the 1.20 EUR its "
        "invoice can still credit."
    )
    exact = credit.assess_credit_memo([_item("1", "1.00", "0.20")], creditable=cap)
    assert exact.allowed
    assert exact.total == cap


def test_creditable_deducts_earlier_memos_and_refunds() -> None:
    invoice = _invoice("100.00", refunded="30.00")
    assert credit.creditable(invoice) == Money("70.00", EUR)
    assert credit.creditable(invoice, credited=Money("60.00", EUR)) == Money("10.00", EUR)
    assert credit.creditable(invoice, credited=Money("90.00", EUR)) == Money("0.00", EUR)
    draft = Invoice(id="d", customer_id="c", currency=EUR)
    assert credit.creditable(draft) == Money("0.00", EUR)
    with pytest.raises(CurrencyMismatchError, match=r"@ \$\.credited"):
        credit.creditable(invoice, credited=Money("1.00", "USD"))
    with pytest.raises(InvalidTypeError, match=r"@ \$\.invoice"):
        credit.creditable("inv")  # type: ignore[arg-type]


def test_a_void_invoice_credits_nothing() -> None:
    """A void invoice is owed nothing and kept no payment (its store credit went back to the
    memos): a memo against it would be credit out of nothing."""
    paid_back = _invoice("100.00", refunded="100.00")
    void = Invoice(
        id="inv",
        customer_id="c",
        currency=EUR,
        status=InvoiceStatus.VOID,
        lines=paid_back.lines,
        number="INV-1",
        issued_on=date(2026, 1, 1),
        totals=paid_back.totals,
    )
    assert credit.creditable(void) == Money("0.00", EUR)
    refused = credit.assess_credit_memo([_item("1", "0.01")], creditable=credit.creditable(void))
    assert refused.reason is CreditReason.EXCEEDS_CREDITABLE


def test_memo_bad_input() -> None:
    with pytest.raises(InvalidValueError, match=r"@ \$\.items"):
        credit.assess_credit_memo([])
    with pytest.raises(CurrencyMismatchError, match=r"@ \$\.items\[1\]\.unit_price"):
        credit.assess_credit_memo([_item("1", "1.00"), _item("1", "1.00", currency="USD")])
    with pytest.raises(InvalidTypeError, match=r"@ \$\.items\[0\]"):
        credit.assess_credit_memo(["1.00"])  # type: ignore[list-item]
    with pytest.raises(CurrencyMismatchError, match=r"@ \$\.creditable"):
        credit.assess_credit_memo([_item("1", "1.00")], creditable=Money("5.00", "USD"))
    with pytest.raises(InvalidAmountError, match=r"@ \$\.creditable"):
        credit.assess_credit_memo([_item("1", "1.00")], creditable=Money("-5.00", EUR))


def test_lago_credit_notes_are_consumed_oldest_first() -> None:
    """getlago/lago-api spec/services/credits/credit_note_service_spec.rb: notes of 0.20 and
    0.50 on a 1.00 invoice are both consumed; on a 0.10 invoice the first gives 0.10 and keeps
    0.10."""
    notes = [_balance("cn-1", "0.20", 0), _balance("cn-2", "0.50", 1)]
    full = credit.consume_credit(notes, amount=Money("1.00", EUR))
    assert full.applied == Money("0.70", EUR)
    assert full.draws == (("cn-1", Money("0.20", EUR)), ("cn-2", Money("0.50", EUR)))
    assert [b.remaining for b in full.balances] == [Money("0.00", EUR), Money("0.00", EUR)]
    part = credit.consume_credit(notes, amount=Money("0.10", EUR))
    assert part.draws == (("cn-1", Money("0.10", EUR)),)
    assert [b.remaining for b in part.balances] == [Money("0.10", EUR), Money("0.50", EUR)]
    assert (
        part.explanation
        == "Store credit applied 0.10 EUR of 0.10 EUR (cn-1 gives 0.10 EUR, oldest first)."
    )
    nothing = credit.consume_credit(notes, amount=Money("0.00", EUR))
    assert nothing.applied == Money("0.00", EUR)
    assert nothing.draws == ()


def test_only_the_invoice_currency_and_by_age_not_by_position() -> None:
    notes = [
        _balance("new", "5.00", 10),
        _balance("usd", "50.00", 0, "USD"),
        _balance("old", "5.00", 1),
    ]
    used = credit.consume_credit(notes, amount=Money("7.00", EUR))
    assert used.draws == (("old", Money("5.00", EUR)), ("new", Money("2.00", EUR)))
    assert used.balances[1] == notes[1]
    assert used.explanation == (
        "Store credit applied 7.00 EUR of 7.00 EUR (old gives 5.00 EUR, new gives 2.00 EUR, "
        "oldest first). 1 memo(s) in other currencies left untouched."
    )


def test_consumption_bad_input() -> None:
    with pytest.raises(InvalidAmountError, match=r"@ \$\.amount"):
        credit.consume_credit([], amount=Money("-1.00", EUR))
    with pytest.raises(InvalidTypeError, match=r"@ \$\.amount"):
        credit.consume_credit([], amount="1.00")  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match=r"@ \$\.balances\[0\]"):
        credit.consume_credit(["cn"], amount=Money("1.00", EUR))  # type: ignore[list-item]


@given(
    st.lists(ist.credit_memo_balances(EUR) | ist.credit_memo_balances("USD"), max_size=6),
    st.integers(0, 10**7),
)
def test_consumption_properties(balances: list[CreditMemoBalance], units: int) -> None:
    amount = Money.from_minor_units(units, EUR)
    used = credit.consume_credit(balances, amount=amount)
    eur = [b for b in balances if b.remaining.currency == EUR]
    available = sum((b.remaining for b in eur), Money.zero(EUR))
    assert used.applied == min(amount, available)
    assert sum((take for _, take in used.draws), Money.zero(EUR)) == used.applied
    for before, after in zip(balances, used.balances, strict=True):
        assert after.memo_id == before.memo_id
        assert Money.zero(after.remaining.currency) <= after.remaining <= before.remaining
        if before.remaining.currency != EUR:
            assert after == before
    # oldest first: in age order, emptied memos, then at most one drawn in part, then untouched
    order = sorted(
        (i for i, x in enumerate(balances) if x.remaining.currency == EUR),
        key=lambda i: balances[i].created_at,
    )
    left = [i for i in order if used.balances[i].remaining]
    if left:
        k = order.index(left[0])
        assert all(not used.balances[i].remaining for i in order[:k])
        assert all(used.balances[i] == balances[i] for i in order[k + 1 :])


@given(st.lists(ist.credit_memo_items(EUR), min_size=1, max_size=5), st.integers(0, 10**9))
def test_memo_total_and_cap(items: list[CreditMemoItem], cap_units: int) -> None:
    cap = Money.from_minor_units(cap_units, EUR)
    d = credit.assess_credit_memo(items, creditable=cap)
    assert d.total == d.subtotal + d.tax
    assert d.subtotal == sum((i.amount for i in items), Money.zero(EUR))
    assert d.allowed is (d.total <= cap)
