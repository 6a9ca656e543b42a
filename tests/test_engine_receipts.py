"""Receipts (``engine.receipts``, issue 13, seed 000): every subscription term charged at once is
a paid invoice of the customer, so the sale and its refunds are visible in invoices; on memory,
SQLite and PostgreSQL.

The figures: 2 × dv at 10.00 USD a month, charged 20.00 on 2026-11-21; a refund of 5.00 of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

import test_engine as base
from billing_core import (
    BillingEngine,
    CreditMemoItem,
    Customer,
    InvoiceLineKind,
    InvoiceStatus,
    Money,
    Period,
)
from billing_core.engine import InvoiceSettings
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.testing.clock import ManualClock

ADMIN, AGENT = base.ADMIN, base.AGENT
store_url, clock = base.store_url, base.clock


def usd(amount: str) -> Money:
    return Money(amount, "USD")


@pytest.fixture
def engine(store_url: str, clock: ManualClock) -> Iterator[BillingEngine]:
    eng = BillingEngine(
        store=store_url,
        clock=clock,
        gateway=SandboxGateway(clock=clock, settle_after=timedelta(days=1)),
    )
    eng.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
    yield eng
    eng.store.close()


def subscribe(engine: BillingEngine, key: str = "s1", **kw: object) -> str:
    result = engine.add_subscription(
        "c1",
        term=Period.months(1),
        inventory={"dv": 2},
        unit_prices={"dv": usd("10.00")},
        idempotency_key=key,
        actor=AGENT,
        **kw,  # type: ignore[arg-type]
    )
    assert result.subscription_id is not None, result.explanation
    return result.subscription_id


def receipts(engine: BillingEngine) -> list[tuple[str | None, str, Money, str | None]]:
    return [
        (i.number, i.status.value, i.amount_paid, i.receipt_for)
        for i in engine.invoices("c1")
        if i.receipt_for is not None
    ]


def sale_of(engine: BillingEngine, sub: str) -> list[str]:
    return [t.id for t in engine.transactions(customer_id="c1") if t.subscription_id == sub]


def test_a_new_subscription_has_a_paid_receipt_and_its_refund_shows_on_it(
    engine: BillingEngine, clock: ManualClock
) -> None:
    sub = subscribe(engine)
    (sale,) = sale_of(engine, sub)
    assert receipts(engine) == [("RCT-000001", "paid", usd("20.00"), sale)]
    (receipt,) = engine.invoices("c1")
    assert (receipt.id, receipt.payments, receipt.subscription_id) == (f"rct-{sale}", (sale,), sub)
    assert receipt.issued_on == receipt.due_on == clock().date()
    assert receipt.totals is not None and receipt.totals.amount_due == usd("20.00")
    assert [(ln.description, ln.amount, ln.kind) for ln in receipt.lines] == [
        ("dv", usd("20.00"), InvoiceLineKind.SUBSCRIPTION)
    ]
    assert receipt.amount_remaining == usd("0.00")
    clock.advance(timedelta(days=2))  # settled: refunded, not voided
    refund = engine.refund_transaction(sale, amount=usd("5.00"), idempotency_key="r1", actor=AGENT)
    assert refund.outcome.value == "refunded", refund.explanation
    after = engine.invoice(receipt.id)
    assert (after.amount_paid, after.amount_refunded) == (usd("20.00"), usd("5.00"))
    text = engine.render_invoice(receipt.id)
    assert isinstance(text, str)
    assert text.splitlines()[0] == f"RECEIPT RCT-000001 for sale {sale} (paid)"
    data = engine.render_invoice(receipt.id, as_json=True)
    assert isinstance(data, dict) and data["receipt_for"] == sale
    audit = [e.action for e in engine.audit_log(subject_id=receipt.id)]
    assert audit == ["invoice.receipt"]


def test_a_replayed_or_declined_order_makes_no_second_receipt(engine: BillingEngine) -> None:
    subscribe(engine)
    subscribe(engine)  # the same idempotency key: the stored answer, nothing charged again
    assert len(receipts(engine)) == 1
    base._sandbox(engine).script("sale", ["decline"])
    declined = engine.add_subscription(
        "c1",
        term=Period.months(1),
        inventory={"dv": 1},
        unit_prices={"dv": usd("10.00")},
        idempotency_key="s2",
        actor=AGENT,
    )
    assert declined.outcome.value == "declined"
    assert len(receipts(engine)) == 1


def test_pending_orders_and_trials_get_their_receipt_when_charged(
    engine: BillingEngine, clock: ManualClock
) -> None:
    order = subscribe(engine, "o1", pending=True)
    assert receipts(engine) == []
    activated = engine.activate(order, idempotency_key="go", actor=AGENT)
    assert activated.outcome.value == "charged"
    assert [r[0] for r in receipts(engine)] == ["RCT-000001"]
    trial = subscribe(engine, "t1", trial=Period.days(14))
    assert [r[0] for r in receipts(engine)] == ["RCT-000001"]  # a trial charges nothing
    clock.advance(timedelta(days=14))
    (converted,) = [r for r in engine.renew_due(actor=ADMIN) if r.subscription_id == trial]
    assert converted.renewed, converted.explanation
    assert [r[:3] for r in receipts(engine)] == [
        ("RCT-000001", "paid", usd("20.00")),
        ("RCT-000002", "paid", usd("20.00")),
    ]


def test_renewals_and_paid_retries_get_renewal_receipts(
    engine: BillingEngine, clock: ManualClock
) -> None:
    sub = subscribe(engine)
    clock.advance(timedelta(days=31))
    base._sandbox(engine).script("sale", ["decline"])
    (first,) = engine.renew_due(actor=ADMIN)
    assert first.outcome.value == "past_due"
    assert len(receipts(engine)) == 1  # a declined renewal has no receipt
    clock.advance(timedelta(days=8))  # the dunning schedule's first retry: paid
    (retry,) = engine.renew_due(actor=ADMIN)
    assert retry.renewed, retry.explanation
    clock.advance(timedelta(days=31))
    (renewed,) = engine.renew_due(actor=ADMIN)
    assert renewed.renewed
    numbers = [r[0] for r in receipts(engine)]
    assert numbers == ["RCT-000001", "RCT-000002", "RCT-000003"]
    renewal_receipts = [i for i in engine.invoices("c1") if i.number != "RCT-000001"]
    assert {ln.kind for i in renewal_receipts for ln in i.lines} == {InvoiceLineKind.RENEWAL}
    paid_sales = sorted(r[3] or "" for r in receipts(engine))
    completed = sorted(
        t.id
        for t in engine.transactions(customer_id="c1")
        if t.subscription_id == sub and t.status.value == "completed"
    )
    assert paid_sales == completed  # one receipt per sale that took money, none for declines


def test_receipts_have_their_own_sequence_and_prefix(engine: BillingEngine) -> None:
    engine.invoice_settings = InvoiceSettings(receipt_prefix="R-2026-")
    sub = subscribe(engine)
    with engine.store.session() as s:
        from billing_core import InvoiceLine

        s.add_invoice_lines(sub, [InvoiceLine(description="extra", amount=usd("3.00"))])
    (invoice,) = engine.issue_due_invoices().invoices
    assert invoice.number == "INV-000001"  # billed invoices keep their own numbers
    assert [r[0] for r in receipts(engine)] == ["R-2026-000001"]


def test_a_receipt_can_be_credited_but_not_voided_or_collected(engine: BillingEngine) -> None:
    subscribe(engine)
    (receipt,) = engine.invoices("c1")
    denied = engine.void_invoice(receipt.id, actor=AGENT)
    assert (denied.outcome.value, denied.reason) == ("denied", "already_paid")
    too_much = engine.create_credit_memo(
        "c1",
        [CreditMemoItem(description="goodwill", quantity=1, unit_price=usd("25.00"))],
        reason="goodwill",
        invoice_id=receipt.id,
        idempotency_key="cm-1",
        actor=AGENT,
    )
    assert too_much.reason == "exceeds_creditable"
    memo = engine.create_credit_memo(
        "c1",
        [CreditMemoItem(description="goodwill", quantity=1, unit_price=usd("5.00"))],
        reason="goodwill",
        invoice_id=receipt.id,
        idempotency_key="cm-2",
        actor=AGENT,
    )
    assert memo.outcome.value == "created"
    assert engine.collect_due().collections == ()  # paid: nothing to collect
    assert engine.invoice(receipt.id).status is InvoiceStatus.PAID
