"""Hypothesis properties of the invoice flows (issue 13), on the memory store and a SQLite file:

* numbers are gapless and unique, whatever the order of lines, runs, customers and currencies;
* every line lands on exactly one invoice, of its own customer and currency;
* paid, refunded and due add up after any sequence of part payments and refunds;
* credit memos against an invoice never exceed what it can credit, and store credit drawn by
  an invoice never exceeds its total nor what the memos hold.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from tempfile import TemporaryDirectory

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_core import (
    BillingEngine,
    CreditMemoItem,
    Customer,
    InvoiceLine,
    InvoiceStatus,
    Money,
    Period,
    Subscription,
    TaxRate,
)
from billing_core.engine import InvoiceOutcome, InvoiceSettings
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.rules import credit as credit_rules
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock

ADMIN = Actor(id="ada", role="admin")
START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
CUSTOMERS = ("c1", "c2", "c3")
_uid = itertools.count()

cents = st.integers(min_value=1, max_value=50_000)


def _engine(url: str) -> tuple[BillingEngine, ManualClock]:
    clock = ManualClock(START)
    engine = BillingEngine(
        store=url,
        clock=clock,
        gateway=SandboxGateway(clock=clock, settle_after=timedelta(days=1)),
    )
    engine.invoice_settings = InvoiceSettings(tax_rates=(TaxRate(name="VAT", percent=20),))
    with engine.store.session() as s:
        for c in CUSTOMERS:
            s.put_customer(Customer(id=c, company=c.upper()))
            s.put_subscription(
                Subscription(id=f"s-{c}", customer_id=c, term=Period.months(1), start=START.date())
            )
    return engine, clock


def _money(n: int, currency: str = "USD") -> Money:
    return Money.from_minor_units(n, currency)


batches = st.lists(  # runs of the issuing job, each after some lines were added
    st.lists(
        st.tuples(st.sampled_from(CUSTOMERS), st.sampled_from(["USD", "EUR"]), cents),
        max_size=6,
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches, sqlite=st.booleans())
def test_numbers_are_gapless_and_every_line_is_on_exactly_one_invoice(
    batches: list[list[tuple[str, str, int]]], sqlite: bool
) -> None:
    with TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'b.sqlite3'}" if sqlite else "memory://"
        engine, clock = _engine(url)
        try:
            added: dict[str, tuple[str, str]] = {}
            for batch in batches:
                with engine.store.session() as s:
                    for customer, currency, amount in batch:
                        text = f"line-{next(_uid)}"
                        added[text] = (customer, currency)
                        line = InvoiceLine(description=text, amount=_money(amount, currency))
                        s.add_invoice_lines(f"s-{customer}", [line])
                engine.issue_due_invoices()
                clock.advance(timedelta(hours=1))
            invoices = [i for c in CUSTOMERS for i in engine.invoices(c)]
        finally:
            engine.store.close()
    numbers = sorted(int((i.number or "x-0").split("-")[1]) for i in invoices)
    assert numbers == list(range(1, len(invoices) + 1))
    on = Counter(line.description for i in invoices for line in i.lines)
    assert set(on) == set(added) and set(on.values()) <= {1}
    for invoice in invoices:
        for line in invoice.lines:
            assert added[line.description] == (invoice.customer_id, invoice.currency)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(cents, min_size=1, max_size=4),
    steps=st.lists(st.tuples(st.sampled_from(["pay", "refund"]), cents), max_size=6),
)
def test_paid_refunded_and_due_always_add_up(
    lines: list[int], steps: list[tuple[str, int]]
) -> None:
    engine, clock = _engine("memory://")
    with engine.store.session() as s:
        s.add_invoice_lines(
            "s-c1",
            [InvoiceLine(description=f"l{i}", amount=_money(a)) for i, a in enumerate(lines)],
        )
    (invoice,) = engine.issue_due_invoices().invoices
    assert invoice.totals is not None
    due = invoice.totals.amount_due
    payments: list[str] = []
    for n, (kind, amount) in enumerate(steps):
        current = engine.invoice(invoice.id)
        if kind == "pay":
            result = engine.pay_invoice(
                invoice.id, amount=_money(amount), idempotency_key=f"p{n}", actor=ADMIN
            )
            if (
                _money(amount) <= current.amount_remaining
                and current.status is not InvoiceStatus.PAID
            ):
                assert result.outcome in (InvoiceOutcome.PAID, InvoiceOutcome.PARTIALLY_PAID)
                assert result.transaction_id is not None
                payments.append(result.transaction_id)
            else:
                assert result.outcome is InvoiceOutcome.DENIED
        elif payments:
            clock.advance(timedelta(days=2))
            payment = engine.transaction(payments[amount % len(payments)])
            left = payment.amount - payment.refunded
            if left:
                engine.refund_transaction(
                    payment.id,
                    amount=min(left, _money(amount)),
                    idempotency_key=f"r{n}",
                    actor=ADMIN,
                )
        now = engine.invoice(invoice.id)
        assert now.amount_paid + now.amount_remaining == due
        assert Money.zero("USD") <= now.amount_refunded <= now.amount_paid
        assert (now.status is InvoiceStatus.PAID) == (not now.amount_remaining)
        books = [engine.transaction(p) for p in now.payments]
        assert sum((t.amount for t in books), Money.zero("USD")) == now.amount_paid
        assert sum((t.refunded for t in books), Money.zero("USD")) == now.amount_refunded
    engine.store.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    line=cents,
    memos=st.lists(st.tuples(st.integers(1, 3), cents), min_size=1, max_size=5),
    later=st.lists(cents, min_size=1, max_size=3),
)
def test_credit_never_exceeds_what_an_invoice_can_credit_or_what_memos_hold(
    line: int, memos: list[tuple[int, int]], later: list[int]
) -> None:
    engine, _ = _engine("memory://")
    with engine.store.session() as s:
        s.add_invoice_lines("s-c1", [InvoiceLine(description="l", amount=_money(line))])
    (invoice,) = engine.issue_due_invoices().invoices
    assert invoice.totals is not None
    created = Money.zero("USD")
    for n, (quantity, price) in enumerate(memos):
        item = CreditMemoItem(description="x", quantity=quantity, unit_price=_money(price))
        can = credit_rules.creditable(engine.invoice(invoice.id), credited=created)
        result = engine.create_credit_memo(
            "c1", [item], invoice_id=invoice.id, idempotency_key=f"m{n}", actor=ADMIN
        )
        if result.memo is not None:
            assert result.memo.total <= can
            created += result.memo.total
        else:
            assert result.reason == "exceeds_creditable"
            assert item.amount > can
        assert created <= invoice.totals.total
    held = created
    for n, amount in enumerate(later):
        with engine.store.session() as s:
            s.add_invoice_lines("s-c1", [InvoiceLine(description=f"n{n}", amount=_money(amount))])
        (next_invoice,) = engine.issue_due_invoices().invoices
        totals = next_invoice.totals
        assert totals is not None
        assert totals.credit_applied <= min(held, totals.total)
        assert totals.credit_applied == min(held, totals.total)  # all it can, oldest first
        held -= totals.credit_applied
        with engine.store.session() as s:
            stored = s.list_credit_memos()
        assert sum((m.remaining for m in stored), Money.zero("USD")) == held
        assert all(m.remaining.amount >= 0 for m in stored)
    engine.store.close()
    assert Decimal(0) <= held.amount
