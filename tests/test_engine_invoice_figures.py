"""The published figures of Lago, Stripe and Kill Bill, reproduced through the engine with stored
invoices, redemptions and credit memos (issue 13 acceptance), on memory, a SQLite file and
PostgreSQL. The Lago and Stripe figures are also checked on the pure rules in
tests/test_invoicing.py, test_credit.py and test_coupons.py, which cite each source; Kill Bill's
account-credit tests are cited in the docstrings below."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

import test_engine as base
from billing_core import (
    BillingEngine,
    Coupon,
    CreditMemoItem,
    Customer,
    Invoice,
    InvoiceStatus,
    Money,
    TaxRate,
)
from billing_core.engine import InvoiceSettings
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.testing.clock import ManualClock
from test_engine_invoices import _subscription

ADMIN, AGENT = base.ADMIN, base.AGENT
store_url, clock = base.store_url, base.clock


def eur(amount: str) -> Money:
    return Money(amount, "EUR")


@pytest.fixture
def engine(store_url: str, clock: ManualClock) -> Iterator[BillingEngine]:
    eng = BillingEngine(store=store_url, clock=clock, gateway=SandboxGateway(clock=clock))
    eng.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
    yield eng
    eng.store.close()


def _eur_invoice(engine: BillingEngine, sub: str, *amounts: str) -> tuple[Money, ...]:
    from test_engine_invoices import _line, _pending

    _pending(engine, sub, *(_line(a, f"fee {i}", "EUR") for i, a in enumerate(amounts)))
    (invoice,) = engine.issue_due_invoices().invoices
    t = invoice.totals
    assert t is not None
    return t.discount, t.tax, t.total, t.credit_applied, t.amount_due


def test_lago_applied_coupon_keeps_its_remainder(engine: BillingEngine) -> None:
    """Lago applied_coupon_service_spec.rb: a 0.12 coupon on a 0.10 invoice takes 0.10 and is
    not terminated; the next invoice gets the remaining 0.02."""
    sub = _subscription(engine, "c1", "s1")
    engine.redeem_coupon("c1", Coupon(id="c", amount_off=eur("0.12")), actor=AGENT)
    assert _eur_invoice(engine, sub, "0.10")[0] == eur("0.10")
    assert _eur_invoice(engine, sub, "1.23")[0] == eur("0.02")
    assert _eur_invoice(engine, sub, "1.23")[0] == eur("0.00")


def test_lago_taxes_on_invoice_after_a_coupon(engine: BillingEngine) -> None:
    """Lago apply_taxes_service_spec.rb: fees 10.00 and 20.00 with a 10.00 coupon at 10% tax:
    the tax is on 20.00, 2.00."""
    engine.invoice_settings = InvoiceSettings(tax_rates=(TaxRate(name="tax1", percent=10),))
    sub = _subscription(engine, "c1", "s1")
    engine.redeem_coupon("c1", Coupon(id="c", amount_off=eur("10.00")), actor=AGENT)
    assert _eur_invoice(engine, sub, "10.00", "20.00")[:3] == (
        eur("10.00"),
        eur("2.00"),
        eur("22.00"),
    )


def test_lago_credit_note_invoice_v3_with_coupons(engine: BillingEngine) -> None:
    """Lago validate_service_spec.rb ("invoice is v3 with coupons"): fees 1.00, coupon 0.10,
    taxes 20% = 0.18, total 1.08; a credit note of 2.50 against it is refused."""
    engine.invoice_settings = InvoiceSettings(tax_rates=(TaxRate(name="VAT", percent=20),))
    sub = _subscription(engine, "c1", "s1")
    engine.redeem_coupon("c1", Coupon(id="c", amount_off=eur("0.10")), actor=AGENT)
    assert _eur_invoice(engine, sub, "1.00")[:3] == (eur("0.10"), eur("0.18"), eur("1.08"))
    (invoice,) = [i for i in engine.invoices("c1") if i.receipt_for is None]
    item = CreditMemoItem(description="x", quantity=1, unit_price=eur("2.50"))
    denied = engine.create_credit_memo(
        "c1", [item], invoice_id=invoice.id, idempotency_key="cn", actor=AGENT
    )
    assert denied.reason == "exceeds_creditable"
    assert denied.explanation.endswith("more than the 1.08 EUR its invoice can still credit.")


def test_lago_prepaid_credit(engine: BillingEngine) -> None:
    """Lago applied_prepaid_credit_service_spec.rb: 10.00 of credit on a 1.00 invoice applies
    1.00; a fresh 10.00 on a 15.00 invoice applies 10.00, leaving 5.00 due."""
    sub = _subscription(engine, "c1", "s1")
    ten = CreditMemoItem(description="prepaid", quantity=1, unit_price=eur("10.00"))
    engine.create_credit_memo("c1", [ten], idempotency_key="w1", actor=AGENT)
    assert _eur_invoice(engine, sub, "1.00")[3:] == (eur("1.00"), eur("0.00"))
    engine.create_credit_memo("c1", [ten], idempotency_key="w2", actor=AGENT)  # 9.00 + 10.00
    assert _eur_invoice(engine, sub, "15.00")[3:] == (eur("15.00"), eur("0.00"))
    assert _eur_invoice(engine, sub, "15.00")[3:] == (eur("4.00"), eur("11.00"))


def test_lago_credit_notes_are_consumed_oldest_first(engine: BillingEngine) -> None:
    """Lago credit_note_service_spec.rb: notes of 0.20 and 0.50; a 0.10 invoice takes 0.10 of
    the first; a 1.00 invoice then takes the 0.10 left and the 0.50."""
    sub = _subscription(engine, "c1", "s1")
    for key, amount in (("n1", "0.20"), ("n2", "0.50")):
        item = CreditMemoItem(description=key, quantity=1, unit_price=eur(amount))
        engine.create_credit_memo("c1", [item], idempotency_key=key, actor=AGENT)
    assert _eur_invoice(engine, sub, "0.10")[3] == eur("0.10")
    with engine.store.session() as s:
        assert [m.remaining for m in s.list_credit_memos()] == [eur("0.10"), eur("0.50")]
    assert _eur_invoice(engine, sub, "1.00")[3:] == (eur("0.60"), eur("0.40"))


def test_stripe_amount_off_never_makes_a_total_negative(engine: BillingEngine) -> None:
    """Stripe "Create a coupon" (amount_off): 200 off a subtotal of 100 gives 0 (forever)."""
    sub = _subscription(engine, "c1", "s1")
    jpy = Coupon(id="c", amount_off=Money(200, "JPY"), duration="forever")
    engine.redeem_coupon("c1", jpy, actor=AGENT)
    from test_engine_invoices import _line, _pending

    _pending(engine, sub, _line("100", "yen", "JPY"))
    (small,) = engine.issue_due_invoices().invoices
    assert small.totals is not None and small.totals.total == Money(0, "JPY")
    _pending(engine, sub, _line("300", "yen", "JPY"))
    (large,) = engine.issue_due_invoices().invoices
    assert large.totals is not None and large.totals.total == Money(100, "JPY")
    assert Decimal(0) == small.totals.amount_due.amount


def test_stripe_max_redemptions_the_first_20_readers(engine: BillingEngine) -> None:
    """Stripe API reference, "Create a coupon" (max_redemptions): "a 50% off coupon that the
    first 20 readers of your blog can use": 20 customers redeem it, the 21st is refused, and
    each redeemer's next invoice is half price."""
    blog = Coupon(id="blog", percent_off=50, max_redemptions=20, duration="once")
    for n in range(21):
        if n:
            engine.add_customer(Customer(id=f"r{n}", company=f"Reader {n}"), actor=ADMIN)
        result = engine.redeem_coupon("c1" if n == 0 else f"r{n}", blog, actor=AGENT)
        assert (result.outcome, result.reason) == (
            ("redeemed", None) if n < 20 else ("denied", "redemption_limit_reached")
        )
    sub = _subscription(engine, "c1", "s1")
    assert _eur_invoice(engine, sub, "30.00")[0] == eur("15.00")


# -- Kill Bill's account credit (CBA): credit consumed by the next invoices, never a refund ------
def usd(amount: str) -> Money:
    return Money(amount, "USD")


def _usd_invoice(engine: BillingEngine, sub: str, *amounts: str) -> Invoice:
    from test_engine_invoices import _line, _pending

    _pending(engine, sub, *(_line(a, f"recurring {i}") for i, a in enumerate(amounts)))
    (invoice,) = engine.issue_due_invoices().invoices
    return invoice


def _credit(engine: BillingEngine, amount: str, key: str) -> None:
    item = CreditMemoItem(description="account credit", quantity=1, unit_price=usd(amount))
    made = engine.create_credit_memo("c1", [item], idempotency_key=key, actor=AGENT)
    assert made.memo is not None and made.memo.total == usd(amount)


def _credit_left(engine: BillingEngine) -> Money:
    with engine.store.session() as s:
        return sum((m.remaining for m in s.list_credit_memos(customer_id="c1")), usd("0.00"))


def _figures(invoice: Invoice) -> tuple[Money, Money, Money, InvoiceStatus]:
    t = invoice.totals
    assert t is not None
    return t.total, t.credit_applied, t.amount_due, invoice.status


def test_killbill_account_credit_pays_the_next_invoices_in_full(engine: BillingEngine) -> None:
    """Kill Bill, killbill/killbill
    beatrix/src/test/java/com/ning/billing/beatrix/integration/TestIntegrationInvoiceWithRepairLogic.java,
    testInvoiceLogicWithFullRepairFollowedByPartialRepair: repairing the 2399.95 annual invoice
    leaves 2399.95 of account credit (CBA_ADJ +2399.95). The next invoice, 65.76 + 169.32 =
    235.08, is paid by the credit (CBA_ADJ -235.08, balance zero), and so are the two monthly
    invoices of 249.95 after it (CBA_ADJ -249.95 each): 1664.97 of credit is left."""
    sub = _subscription(engine, "c1", "s1")
    _credit(engine, "2399.95", "cba")
    first = _usd_invoice(engine, sub, "65.76", "169.32")
    assert _figures(first) == (usd("235.08"), usd("235.08"), usd("0.00"), InvoiceStatus.PAID)
    for _ in range(2):
        monthly = _usd_invoice(engine, sub, "249.95")
        assert _figures(monthly) == (usd("249.95"), usd("249.95"), usd("0.00"), InvoiceStatus.PAID)
    assert _credit_left(engine) == usd("1664.97")  # 2399.95 − 235.08 − 2 × 249.95
    assert base._sandbox(engine).calls["refund"] == 0  # account credit never moves money


def test_killbill_partial_repair_credit_pays_one_monthly_invoice(engine: BillingEngine) -> None:
    """Kill Bill, killbill/killbill
    beatrix/src/test/java/com/ning/billing/beatrix/integration/TestIntegrationInvoiceWithRepairLogic.java,
    testPartialRepairWithCompleteRefund: the partial repair of the 2399.95 annual invoice gives
    2150.00 of account credit (REPAIR_ADJ -2150.00, CBA_ADJ +2150.00); the 249.95 monthly
    invoice that follows is paid by it (CBA_ADJ -249.95), 1900.05 left."""
    sub = _subscription(engine, "c1", "s1")
    _credit(engine, "2150.00", "cba")
    monthly = _usd_invoice(engine, sub, "249.95")
    assert _figures(monthly) == (usd("249.95"), usd("249.95"), usd("0.00"), InvoiceStatus.PAID)
    assert _credit_left(engine) == usd("1900.05")


def test_killbill_credit_smaller_than_the_next_invoice(engine: BillingEngine) -> None:
    """Kill Bill, killbill/killbill
    beatrix/src/test/java/org/killbill/billing/beatrix/integration/TestWithBCDUpdate.java,
    testBCDChangeBeforeChangePlan: a plan change gives 99.99 − 217.70 = −117.71, which becomes
    117.71 of account credit (CBA_ADJ +117.71; here a credit memo, as a negative invoice is bad
    input). The next invoice of 599.95 uses all of it (CBA_ADJ -117.71): 482.24 is left to pay,
    and a payment (Kill Bill's PAYMENT, INVOICE_PAYMENT events) settles it."""
    sub = _subscription(engine, "c1", "s1")
    _credit(engine, "117.71", "cba")
    invoice = _usd_invoice(engine, sub, "599.95")
    assert _figures(invoice) == (usd("599.95"), usd("117.71"), usd("482.24"), InvoiceStatus.OPEN)
    assert _credit_left(engine) == usd("0.00")
    paid = engine.pay_invoice(invoice.id, idempotency_key="pay", actor=AGENT)
    assert paid.amount == usd("482.24") and paid.invoice is not None
    assert paid.invoice.status is InvoiceStatus.PAID
