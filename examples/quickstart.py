"""billing_core, the whole story, on the embedded SQLite store with the sandbox plugins.

Run it with ``python3 dev.py example`` (or ``.venv/bin/python examples/quickstart.py``). It
prints a support desk's week: a customer, a backdated subscription with certificates, inventory
added mid-term, refunds granted and refused (each with the sentence an agent reads out), a
refund that keeps failing until the merchant is told, a metered month closed into an
invoice line, and the invoice issued from those lines, paid in part, partly refunded and
credited. Time is a ``ManualClock``, so the story is the same on every run.

``--db PATH`` keeps the SQLite file (default: a temporary one, removed at the end).
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from billing_core import BillingEngine, CreditMemoItem, Customer, Money, Period, UsageEvent
from billing_core.engine import CloseResult, InvoiceSettings
from billing_core.plugins.events import RefundGaveUp
from billing_core.plugins.hookspecs import hookimpl
from billing_core.plugins.manager import Plugins
from billing_core.plugins.sandbox_gateway import Fault, SandboxGateway
from billing_core.rules import metering, pricing
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock

ADMIN = Actor(id="ada", role="admin")
AGENT = Actor(id="sam", role="support_agent")


class MailOutbox:
    """A plugin: receives the "refund gave up" event and 'sends' the merchant's notice."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    @hookimpl
    def billing_core_refund_gave_up(self, event: RefundGaveUp) -> None:
        self.sent.append(
            f"To: {', '.join(event.notify_emails)}\nSubject: {event.subject}\n\n{event.message}"
        )


def say(text: str) -> None:
    print(textwrap.fill(text, width=96, subsequent_indent="    "))


def heading(text: str) -> None:
    print(f"\n== {text}")


def story(db: Path) -> None:
    clock = ManualClock(datetime(2026, 11, 21, 15, 0, tzinfo=UTC))
    outbox = MailOutbox()
    plugins = Plugins(clock=clock, plugins=[outbox], entry_points=False)
    gateway = SandboxGateway(clock=clock, settle_after=timedelta(days=1))
    engine = BillingEngine(
        store=f"sqlite:///{db}",
        clock=clock,
        plugins=plugins,
        gateway=gateway,
        notify_emails=["billing@acme-reseller.example"],
    )
    provider = engine.certificate_provider

    heading("A customer")
    acme = Customer(
        id="cust-acme",
        company="Acme Widgets",
        address=("1 Main Street",),
        city="Springfield",
        postal_code="12345",
        state="IL",
        country="US",
        timezone="America/New_York",
    )
    engine.add_customer(acme, actor=ADMIN)
    say(f"{acme.company}, {acme.city}; billed on {acme.timezone} dates. Today is 2026-11-21.")

    heading("A subscription backdated to May 21, with two certificates")
    sub = engine.add_subscription(
        acme.id,
        term=Period.years(1),
        inventory={"dv": 2},
        unit_prices={"dv": Money("100.00", "USD")},
        start=date(2026, 5, 21),
        domains=["acme.example", "shop.acme.example"],
        idempotency_key="order-1001",
        actor=ADMIN,
    )
    say(sub.explanation)
    replay = engine.add_subscription(
        acme.id,
        term=Period.years(1),
        inventory={"dv": 2},
        unit_prices={"dv": Money("100.00", "USD")},
        start=date(2026, 5, 21),
        domains=["acme.example", "shop.acme.example"],
        idempotency_key="order-1001",
        actor=ADMIN,
    )
    say(
        f"The portal retried the same request (key order-1001): same answer "
        f"({replay == sub}), and the gateway saw {gateway.calls['sale']} sale."
    )
    too_early = engine.add_subscription(
        acme.id,
        term=Period.years(1),
        inventory={"dv": 1},
        unit_prices={"dv": Money("100.00", "USD")},
        start=date(2025, 11, 21),
        idempotency_key="order-1002",
        actor=ADMIN,
    )
    say(f"Backdating further is refused ({too_early.reason}): {too_early.explanation}")
    assert sub.subscription_id and sub.charge and sub.charge.transaction_id
    sale = sub.charge.transaction_id

    heading("Three more certificates added mid-term")
    added = engine.add_inventory(
        sub.subscription_id, certificate_type="dv", quantity=3, idempotency_key="inv-1", actor=ADMIN
    )
    say(f"{added.explanation}. Billed on the next invoice, not charged now.")

    heading("Two days later: a partial refund")
    clock.advance(days=2)
    refund = engine.refund_transaction(
        sale, amount=Money("10.00", "USD"), idempotency_key="ticket-1", actor=AGENT
    )
    say(f"{refund.outcome.value}: {refund.explanation}")

    heading("An issued certificate blocks its refund until the customer cancels it")
    first_cert = sub.certificate_ids[0]
    provider.issue(first_cert)  # type: ignore[attr-defined]
    blocked = engine.refund_transaction(
        sale, certificates={first_cert: 1}, idempotency_key="ticket-2", actor=AGENT
    )
    say(f"{blocked.reason}: {blocked.explanation}")
    engine.request_certificate_cancellation(first_cert, actor=AGENT)
    provider.customer_confirms_cancellation(first_cert)  # type: ignore[attr-defined]
    after = engine.refund_transaction(
        sale, certificates={first_cert: 1}, idempotency_key="ticket-3", actor=AGENT
    )
    say(
        f"After the customer cancelled in the provider's portal: {after.outcome.value}: "
        f"{after.explanation}"
    )

    heading("A refund the gateway keeps declining")
    gateway.script("refund", [Fault.DECLINE] * 4)
    failing = engine.refund_transaction(
        sale, amount=Money("5.00", "USD"), idempotency_key="ticket-4", actor=AGENT
    )
    say(f"{failing.outcome.value}: {failing.explanation}")
    for _ in range(3):
        clock.advance(days=1)
        run = engine.process_refund_queue()
        say(
            f"{clock().date()}: retried {run.claimed}; succeeded {run.succeeded}, "
            f"again tomorrow {run.retry_later}, gave up {run.gave_up}."
        )
    print("The merchant's notice:")
    print(textwrap.indent(outbox.sent[-1], "    | "))

    heading("A month later: outside the 30-day window")
    clock.advance(days=30)
    late = engine.refund_transaction(
        sale, amount=Money("5.00", "USD"), idempotency_key="ticket-5", actor=AGENT
    )
    say(f"{late.reason}: {late.explanation}")

    heading("A metered month closed into an invoice line")
    start = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)  # midnight in New York
    events = [
        UsageEvent(
            id=f"api-{i}",
            quantity=150,
            at=start + timedelta(hours=6 * i),
            subscription_id=sub.subscription_id,
        )
        for i in range(100)
    ]
    stored = engine.record_usage(events + events[:10])  # ten duplicate deliveries
    price = metering.MeteredPrice(
        model=pricing.Graduated(
            tiers=[
                pricing.Tier(up_to=10_000, unit_price=Money("0.0100", "USD")),
                pricing.Tier(up_to=None, unit_price=Money("0.0080", "USD")),
            ]
        ),
        description="API calls",
    )
    end = datetime(2027, 1, 1, 5, tzinfo=UTC)
    clock.set(end)  # a period is closed once it has ended

    sub_id = sub.subscription_id

    def close(key: str) -> CloseResult:
        return engine.close_metered_period(
            sub_id, price=price, start=start, end=end, idempotency_key=key, actor=ADMIN
        )

    closed = close("usage-2026-12")
    say(f"{stored.recorded} events stored (duplicates ignored). {closed.explanation}")
    again = close("usage-2026-12-rerun")  # a second close of December: nothing more billed
    say(
        f"Closed again under another key: already_closed={again.already_closed}, same lines "
        f"({again.lines == closed.lines}), nothing more billed."
    )

    heading("The invoice: issued, paid in part, partly refunded, credited")
    engine.invoice_settings = InvoiceSettings(due_days=14, notes="Thank you, Acme Widgets!")
    engine.set_tax_profile(acme.id, tax_ids=["US-EIN-12-3456789"], actor=AGENT)
    issued = engine.issue_due_invoices()  # the pending lines: inventory added, December usage
    invoice = issued.invoices[0]
    assert invoice.totals is not None
    say(
        f"{issued.explanation} {invoice.number} holds {len(invoice.lines)} lines, "
        f"{invoice.totals.amount_due} due on {invoice.due_on}."
    )
    paid = engine.pay_invoice(
        invoice.id, amount=Money("100.00", "USD"), idempotency_key="pay-inv-1", actor=AGENT
    )
    say(f"{paid.outcome.value}: {paid.explanation}")
    clock.advance(days=2)  # settled: refunded, not voided
    assert paid.transaction_id is not None
    back = engine.refund_transaction(
        paid.transaction_id, amount=Money("25.00", "USD"), idempotency_key="inv-r1", actor=AGENT
    )
    shown = engine.invoice(invoice.id)
    say(
        f"Payment {back.outcome.value}: the invoice shows {shown.amount_paid} paid, "
        f"{shown.amount_refunded} refunded, {shown.amount_remaining} left to pay."
    )
    goodwill = CreditMemoItem(description="Goodwill", quantity=1, unit_price=Money("15.00", "USD"))
    memo = engine.create_credit_memo(
        acme.id,
        [goodwill],
        reason="certificate issued late",
        invoice_id=invoice.id,
        idempotency_key="memo-1",
        actor=AGENT,
    )
    say(memo.explanation)
    print(textwrap.indent(str(engine.render_invoice(invoice.id)), "    | "))
    receipt = next(i for i in engine.invoices(acme.id) if i.receipt_for == sale)
    say(
        f"The first term's sale is receipt {receipt.number} among the invoices: "
        f"{receipt.amount_paid} paid, {receipt.amount_refunded} refunded (seed 000: refunds are "
        "visible in invoices)."
    )

    heading("Permissions")
    denied = engine.blocklist_customer(acme.id, actor=AGENT)
    say(f"Support agent: {denied.reason}: {denied.explanation}")
    say(f"Admin: allowed={engine.blocklist_customer(acme.id, actor=ADMIN).allowed}.")

    heading("The books")
    final = engine.transaction(sale)
    say(
        f"Sale {sale}: {final.amount} captured, {final.refunded} refunded, status "
        f"{final.status.value}. Invoice lines waiting: "
        f"{len(engine.invoice_lines(sub.subscription_id))}. Audit log: "
        f"{len(engine.audit_log())} entries. Gateway calls: "
        f"{', '.join(f'{op} {n}' for op, n in sorted(gateway.calls.items()))}."
    )
    engine.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", type=Path, help="keep the SQLite file here")
    args = parser.parse_args()
    if args.db is not None:
        args.db.unlink(missing_ok=True)
        story(args.db)
        print(f"\nThe SQLite file is kept at {args.db}.")
        return
    with tempfile.TemporaryDirectory() as tmp:
        story(Path(tmp) / "billing.sqlite3")


if __name__ == "__main__":
    main()
