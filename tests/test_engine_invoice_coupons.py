"""Issue 13, bullet by bullet, the engine half that tests/test_engine_invoices.py left out, on
memory, a SQLite file and PostgreSQL: a coupon redeemed on one draft (an order) rather than the
account, a repeating coupon counted down invoice by invoice, an expired coupon refused with
nothing stored, store credit kept to its currency, and a payment voided at the gateway shown on
the invoice it paid."""

from __future__ import annotations

import contextlib
import threading
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

import test_engine as base
from billing_core import (
    BillingEngine,
    Coupon,
    CreditMemoItem,
    InvoiceStatus,
    Money,
    TaxExemption,
)
from billing_core.engine import invoice_flows
from billing_core.engine.invoice_results import InvoiceOutcome
from billing_core.engine.invoices import InvoiceSettings
from billing_core.errors import CurrencyMismatchError, InvalidValueError
from billing_core.rules import invoicing
from test_engine_invoices import VAT, _issued, _line, _pending, _subscription, engine, usd

AGENT = base.AGENT
store_url, clock = base.store_url, base.clock
__all__ = ["engine"]  # the fixture of tests/test_engine_invoices.py: VAT 20%, customers c1, c2


def _redemptions(engine: BillingEngine) -> list[tuple[str | None, int, bool]]:
    with engine.store.session() as s:
        found = s.list_coupon_redemptions(customer_id="c1")
    return [(r.invoice_id, r.periods_applied, r.finished) for r in found]


def test_a_coupon_redeemed_on_a_draft_discounts_that_invoice_only(engine: BillingEngine) -> None:
    engine.invoice_settings = InvoiceSettings(tax_rates=(VAT,), finalize=False)
    sub = _subscription(engine, "c1", "s1")
    _pending(engine, sub, _line("10.00"))
    (draft,) = engine.issue_due_invoices().invoices
    half = Coupon(id="half", percent_off=Decimal("50"), duration="forever")
    redeemed = engine.redeem_coupon("c1", half, invoice_id=draft.id, actor=AGENT)
    assert redeemed.outcome == "redeemed"
    done = engine.finalize(draft.id, actor=AGENT)
    assert done.invoice is not None and done.invoice.totals is not None
    # 10.00 − 50% = 5.00, VAT 20% of 5.00 = 1.00: 6.00
    t = done.invoice.totals
    assert (t.discount, t.tax, t.amount_due) == (usd("5.00"), usd("1.00"), usd("6.00"))
    assert done.invoice.coupons == (half,)  # the redemption is shown on the invoice
    text = engine.render_invoice(draft.id)
    assert isinstance(text, str) and "Coupon half (50% off)" in text and "-5.00 USD" in text
    # forever, but on that order only: the next invoice pays in full
    _pending(engine, sub, _line("10.00"))
    (nxt,) = engine.issue_due_invoices().invoices
    later = engine.finalize(nxt.id, actor=AGENT).invoice
    assert later is not None and later.totals is not None
    assert (later.coupons, later.totals.amount_due) == ((), usd("12.00"))
    # an issued invoice takes no coupon: bad input, nothing stored
    with pytest.raises(InvalidValueError) as info:
        engine.redeem_coupon(
            "c1", Coupon(id="late", percent_off=10), invoice_id=nxt.id, actor=AGENT
        )
    assert info.value.field == "$.invoice_id"
    assert [r[0] for r in _redemptions(engine)] == [draft.id]


def test_a_repeating_coupon_discounts_exactly_its_periods(engine: BillingEngine) -> None:
    engine.invoice_settings = InvoiceSettings()  # no tax: the discount is the whole story
    sub = _subscription(engine, "c1", "s1")
    three = Coupon(id="three", percent_off=10, duration="repeating", duration_periods=3)
    engine.redeem_coupon("c1", three, actor=AGENT)
    discounts = []
    for _ in range(4):
        invoice = engine.invoice(_issued(engine, sub, "20.00"))
        assert invoice.totals is not None
        discounts.append(invoice.totals.discount)
    assert discounts == [usd("2.00")] * 3 + [usd("0.00")]
    assert _redemptions(engine) == [(None, 3, True)]


def test_an_expired_coupon_is_refused_and_nothing_is_stored(engine: BillingEngine) -> None:
    # the clock is 2026-11-21 (New York); redeem_by is the last day, inclusive
    old = Coupon(id="old", percent_off=10, redeem_by=date(2026, 11, 20))
    refused = engine.redeem_coupon("c1", old, actor=AGENT)
    assert (refused.outcome, refused.reason) == ("denied", "coupon_expired")
    assert _redemptions(engine) == []
    today = Coupon(id="today", percent_off=10, redeem_by=date(2026, 11, 21))
    assert engine.redeem_coupon("c1", today, actor=AGENT).outcome == "redeemed"


def test_store_credit_pays_only_invoices_in_its_currency(engine: BillingEngine) -> None:
    engine.invoice_settings = InvoiceSettings()
    sub = _subscription(engine, "c1", "s1")
    euros = CreditMemoItem(description="goodwill", quantity=1, unit_price=Money("5.00", "EUR"))
    engine.create_credit_memo("c1", [euros], idempotency_key="cm", actor=AGENT)
    dollars = engine.invoice(_issued(engine, sub, "10.00"))
    assert dollars.totals is not None
    assert (dollars.totals.credit_applied, dollars.totals.amount_due) == (
        usd("0.00"),
        usd("10.00"),
    )
    _pending(engine, sub, _line("8.00", currency="EUR"))
    (eur_invoice,) = engine.issue_due_invoices().invoices
    assert eur_invoice.totals is not None
    assert (eur_invoice.totals.credit_applied, eur_invoice.totals.amount_due) == (
        Money("5.00", "EUR"),
        Money("3.00", "EUR"),
    )


def test_a_payment_voided_at_the_gateway_shows_on_its_invoice(engine: BillingEngine) -> None:
    invoice_id = _issued(engine, _subscription(engine, "c1", "s1"), "10.00")  # 12.00 with VAT
    paid = engine.pay_invoice(invoice_id, amount=usd("5.00"), idempotency_key="p", actor=AGENT)
    assert paid.transaction_id is not None
    # not settled yet (the sandbox settles after a day): a whole refund is a void
    back = engine.refund_transaction(paid.transaction_id, idempotency_key="v", actor=AGENT)
    assert back.outcome == "voided"
    shown = engine.invoice(invoice_id)
    assert (shown.amount_paid, shown.amount_refunded, shown.amount_remaining) == (
        usd("5.00"),
        usd("5.00"),
        usd("7.00"),
    )
    assert not shown.has_payments and shown.status is InvoiceStatus.OPEN
    voided = engine.void_invoice(invoice_id, actor=AGENT)  # no money held on it any more
    assert voided.outcome is InvoiceOutcome.VOIDED


@pytest.mark.parametrize(
    ("status", "valid_until", "exempt"),
    [
        ("valid", date(2026, 11, 21), True),  # its last day is the issue date: still exempt
        ("valid", date(2026, 11, 20), False),  # past its expiry date
        ("valid", None, True),
        ("new", None, False),
        ("in_review", date(2027, 1, 1), False),
        ("expired", None, False),
    ],
)
def test_the_documents_status_and_expiry_decide_the_tax(
    engine: BillingEngine, status: str, valid_until: date | None, exempt: bool
) -> None:
    document = TaxExemption(status=status, valid_until=valid_until, document_id="TX-1")
    engine.set_tax_profile("c1", exemptions=[document], actor=AGENT)
    invoice = engine.invoice(_issued(engine, _subscription(engine, "c1", "s1"), "10.00"))
    assert invoice.totals is not None
    # issued on 2026-11-21 in New York; VAT 20% of 10.00 = 2.00 unless exempt
    assert (invoice.totals.tax, invoice.totals.exempt) == (
        usd("0.00") if exempt else usd("2.00"),
        exempt,
    )
    assert invoice.totals.exempted_by == ("TX-1" if exempt else None)
    text = engine.render_invoice(invoice.id)
    assert isinstance(text, str) and ("Tax exempt (document TX-1)" in text) is exempt


def test_voiding_an_invoice_gives_back_the_store_credit_it_drew(engine: BillingEngine) -> None:
    engine.invoice_settings = InvoiceSettings()
    sub = _subscription(engine, "c1", "s1")
    for key, amount in (("cm1", "3.00"), ("cm2", "4.00")):
        item = CreditMemoItem(description=key, quantity=1, unit_price=usd(amount))
        engine.create_credit_memo("c1", [item], idempotency_key=key, actor=AGENT)
    drew = engine.invoice(_issued(engine, sub, "5.00"))  # 3.00 of cm1, then 2.00 of cm2
    assert drew.totals is not None and drew.totals.credit_applied == usd("5.00")
    assert drew.status is InvoiceStatus.PAID  # nothing left to pay: not voidable
    partly = engine.invoice(_issued(engine, sub, "10.00"))  # the 2.00 left of cm2, 8.00 due
    assert partly.totals is not None and partly.totals.credit_applied == usd("2.00")
    voided = engine.void_invoice(partly.id, actor=AGENT)
    assert voided.outcome is InvoiceOutcome.VOIDED
    assert "2.00 USD of store credit" in voided.explanation
    with engine.store.session() as s:
        memos = {m.number: m for m in s.list_credit_memos(customer_id="c1")}
    cm2 = memos["CN-000002"]
    assert (cm2.remaining, cm2.applied) == (usd("2.00"), ((drew.id, usd("2.00")),))
    again = engine.invoice(_issued(engine, sub, "10.00"))  # the credit is there again
    assert again.totals is not None and again.totals.credit_applied == usd("2.00")


def test_a_void_invoice_takes_no_credit_memo(engine: BillingEngine) -> None:
    invoice_id = _issued(engine, _subscription(engine, "c1", "s1"), "10.00")
    assert engine.void_invoice(invoice_id, actor=AGENT).outcome is InvoiceOutcome.VOIDED
    item = CreditMemoItem(description="x", quantity=1, unit_price=usd("1.00"))
    refused = engine.create_credit_memo(
        "c1", [item], invoice_id=invoice_id, idempotency_key="cm", actor=AGENT
    )
    assert (refused.outcome, refused.reason) == ("denied", "exceeds_creditable")
    assert refused.explanation.endswith("more than the 0.00 USD its invoice can still credit.")
    with engine.store.session() as s:
        assert s.list_credit_memos() == []


def test_a_once_coupon_is_used_once_by_two_issuers_of_one_customer_at_once(
    engine: BillingEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two issuers take the customer's USD and EUR lines at the same moment (two workers of
    issue_due_invoices): a ``once`` percent coupon of the account discounts one invoice only.
    The first issuer waits inside the totals until the second reaches them too (or 1 s passes):
    without a lock on the coupon, both read it unused and both discount."""
    engine.invoice_settings = InvoiceSettings()
    sub = _subscription(engine, "c1", "s1")
    engine.redeem_coupon("c1", Coupon(id="once", percent_off=50), actor=AGENT)
    _pending(engine, sub, _line("10.00"), _line("10.00", currency="EUR"))
    inside = threading.Barrier(2, timeout=1.0)
    real_total = invoicing.total

    def meeting_total(*args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(threading.BrokenBarrierError):
            inside.wait()
        return real_total(*args, **kwargs)

    monkeypatch.setattr(invoicing, "total", meeting_total)  # the module invoice_flows calls
    made: list[Any] = []

    def issue(currency: str) -> None:
        made.append(
            invoice_flows.retrying(
                lambda: invoice_flows._issue_one(
                    engine.ctx,
                    engine.invoice_settings,
                    "c1",
                    currency,
                    [sub],
                    engine.ctx.now(),
                    "system",
                )
            )
        )

    workers = [threading.Thread(target=issue, args=(c,)) for c in ("USD", "EUR")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    discounts = sorted(str(i.totals.discount.amount) for i in made if i and i.totals)
    assert discounts == ["0.00", "5.00"]
    assert _redemptions(engine) == [(None, 1, True)]


def test_a_coupon_in_another_currency_than_its_draft_raises_and_stores_nothing(
    engine: BillingEngine,
) -> None:
    engine.invoice_settings = InvoiceSettings(finalize=False)
    sub = _subscription(engine, "c1", "s1")
    _pending(engine, sub, _line("10.00"))
    (draft,) = engine.issue_due_invoices().invoices  # a USD draft
    euros = Coupon(id="eur", amount_off=Money("5.00", "EUR"))
    with pytest.raises(CurrencyMismatchError) as info:
        engine.redeem_coupon("c1", euros, invoice_id=draft.id, actor=AGENT)
    assert info.value.field == "$.coupon.amount_off"
    assert _redemptions(engine) == []
    dollars = Coupon(id="usd", amount_off=usd("5.00"))
    assert engine.redeem_coupon("c1", dollars, invoice_id=draft.id, actor=AGENT).outcome == (
        "redeemed"
    )
