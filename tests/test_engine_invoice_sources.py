"""Where an invoice's lines come from (issue 13: "from the timeline and the pending lines"), on
memory, a SQLite file and PostgreSQL.

The billing timeline (``rules.timeline``, through ``rules.renewal`` and ``rules.changes``) has
two kinds of output in the engine, and ``issue_due_invoices`` must bill exactly the second:

* a subscription's **terms** (the first one at ``add_subscription``, each next one at
  ``renew_due``, in advance or in arrears as its plan says) are charged at once as a sale at the
  gateway: they are paid when they are billed, and never become pending lines;
* what the timeline bills **later** is stored as pending lines: a mid-term inventory change's
  prorated stub (``add_inventory``, computed by ``rules.changes`` as the timeline's stub) and a
  closed metered period (``close_metered_period``).

So every charge due by ``now`` is either already a sale or a pending line; these tests prove
each reaches exactly one place, and that a renewal is never billed a second time on an invoice.
"""

from __future__ import annotations

from datetime import timedelta

import test_engine as base
from billing_core import BillingEngine, InvoiceLine, InvoiceStatus, Money, Period
from billing_core.testing.clock import ManualClock
from test_engine_metered_close import END, _close, _subscribed

ADMIN = base.ADMIN
store_url, clock, engine = base.store_url, base.clock, base.engine


def usd(amount: str) -> Money:
    return Money(amount, "USD")


def _pending(engine: BillingEngine, subscription_id: str) -> list[InvoiceLine]:
    with engine.store.session() as s:
        return s.pending_invoice_lines(subscription_id)


def test_a_mid_term_change_is_billed_on_exactly_one_invoice(engine: BillingEngine) -> None:
    sub = engine.add_subscription(
        "c1",
        term=Period.years(1),
        inventory={"dv": 1},
        unit_prices={"dv": usd("100.00")},
        idempotency_key="s",
        actor=ADMIN,
    )
    assert sub.subscription_id is not None
    engine.clock.advance(days=184)  # type: ignore[attr-defined]
    added = engine.add_inventory(
        sub.subscription_id, certificate_type="dv", quantity=3, idempotency_key="i", actor=ADMIN
    )
    # 181 of 365 days of 3 × 100.00 = 148.77 (tests/test_engine.py), billed on the next invoice
    assert [line.amount for line in added.lines] == [usd("148.77")]
    (invoice,) = engine.issue_due_invoices().invoices
    assert invoice.lines == added.lines and invoice.subscription_id == sub.subscription_id
    assert invoice.totals is not None and invoice.totals.amount_due == usd("148.77")
    assert _pending(engine, sub.subscription_id) == []  # taken: no longer pending
    assert engine.issue_due_invoices().invoices == ()
    assert base._sandbox(engine).calls["sale"] == 1  # the first term's sale only


def test_a_closed_metered_period_is_billed_on_exactly_one_invoice(
    engine: BillingEngine, clock: ManualClock
) -> None:
    sub = _subscribed(engine)
    clock.set(END)
    closed = _close(engine, sub, "close-1")
    assert [line.amount for line in closed.lines] == [usd("1.95")]
    (invoice,) = engine.issue_due_invoices().invoices
    assert invoice.lines == closed.lines
    assert invoice.totals is not None and invoice.totals.amount_due == usd("1.95")
    assert engine.issue_due_invoices().invoices == ()


def test_a_renewal_is_charged_once_as_a_sale_and_never_invoiced_again(
    engine: BillingEngine, clock: ManualClock
) -> None:
    sub = engine.add_subscription(
        "c1",
        term=Period.months(1),
        inventory={"dv": 2},
        unit_prices={"dv": usd("10.00")},
        idempotency_key="m",
        actor=ADMIN,
    )
    assert sub.subscription_id is not None
    clock.advance(timedelta(days=31))
    (renewed,) = engine.renew_due(actor=ADMIN)
    assert renewed.renewed and renewed.charge is not None
    assert renewed.charge.amount == usd("20.00")  # the timeline's next term: 2 × 10.00, paid
    assert _pending(engine, sub.subscription_id) == []  # nothing left to bill later
    assert engine.issue_due_invoices().invoices == ()  # so no invoice bills it a second time
    # only the receipts of the two term sales (engine.receipts), paid at once
    assert sub.charge is not None
    assert [(i.number, i.status, i.amount_paid, i.receipt_for) for i in engine.invoices("c1")] == [
        ("RCT-000001", InvoiceStatus.PAID, usd("20.00"), sub.charge.transaction_id),
        ("RCT-000002", InvoiceStatus.PAID, usd("20.00"), renewed.charge.transaction_id),
    ]
    assert base._sandbox(engine).calls["sale"] == 2  # the first term and the renewal, once each
    # a mid-term change of the renewed term is a pending line again, and is invoiced
    engine.add_inventory(
        sub.subscription_id, certificate_type="dv", quantity=1, idempotency_key="i", actor=ADMIN
    )
    (invoice,) = engine.issue_due_invoices().invoices
    assert invoice.status is InvoiceStatus.OPEN and len(invoice.lines) == 1
