"""Invoices through the engine (issue 13), on memory, a SQLite file and PostgreSQL: pending lines
issued once into numbered invoices, finalize, void, payments and their refunds, credit memos,
coupons and tax exemptions, with the exact figures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import attrs
import pytest

import test_engine as base
from billing_core import (
    BillingEngine,
    Coupon,
    CreditMemoItem,
    Customer,
    InvoiceLine,
    InvoiceStatus,
    Money,
    Period,
    TaxExemption,
    TaxRate,
)
from billing_core.engine import invoice_flows
from billing_core.engine.invoice_results import InvoiceOutcome, InvoiceResult
from billing_core.engine.invoices import InvoiceSettings
from billing_core.errors import BillingError, CurrencyMismatchError, NotFoundError
from billing_core.plugins.events import CreditMemoCreated, InvoiceIssued, InvoicePaid, InvoiceVoided
from billing_core.plugins.sandbox_gateway import Fault, SandboxGateway
from billing_core.testing.clock import ManualClock
from billing_core.testing.hooked_gateway import HookedGateway

ADMIN, AGENT = base.ADMIN, base.AGENT
store_url, clock = base.store_url, base.clock
VAT = TaxRate(name="VAT", percent=Decimal("20"))


def usd(amount: str) -> Money:
    return Money(amount, "USD")


@pytest.fixture
def engine(store_url: str, clock: ManualClock) -> Iterator[BillingEngine]:
    gateway = SandboxGateway(clock=clock, settle_after=timedelta(days=1))
    eng = BillingEngine(store=store_url, clock=clock, gateway=gateway)
    eng.invoice_settings = InvoiceSettings(tax_rates=(VAT,))
    eng.add_customer(Customer(id="c1", company="Acme", timezone="America/New_York"), actor=ADMIN)
    eng.add_customer(Customer(id="c2", company="Globex", timezone="Asia/Tokyo"), actor=ADMIN)
    yield eng
    eng.store.close()


def _subscription(engine: BillingEngine, customer: str, key: str) -> str:
    result = engine.add_subscription(
        customer,
        term=Period.years(1),
        inventory={"dv": 1},
        unit_prices={"dv": usd("1.00")},
        idempotency_key=key,
        actor=ADMIN,
    )
    assert result.subscription_id is not None, result.explanation
    return result.subscription_id


def _line(amount: str, text: str = "Team plan", currency: str = "USD") -> InvoiceLine:
    return InvoiceLine(description=text, amount=Money(amount, currency))


def _pending(engine: BillingEngine, sub: str, *lines: InvoiceLine, on: date | None = None) -> None:
    with engine.store.session() as s:
        s.add_invoice_lines(sub, list(lines), billed_on=on)


def _issued(engine: BillingEngine, sub: str, *amounts: str) -> str:
    _pending(engine, sub, *(_line(a, f"line {i}") for i, a in enumerate(amounts)))
    run = engine.issue_due_invoices()
    assert len(run.invoices) == 1, run.explanation
    return run.invoices[0].id


class TestIssuing:
    def test_pending_lines_become_one_numbered_invoice_with_tax(
        self, engine: BillingEngine
    ) -> None:
        sub = _subscription(engine, "c1", "s1")
        _pending(engine, sub, _line("60.00"), _line("40.00", "Extra seats"))
        run = engine.issue_due_invoices()
        (invoice,) = run.invoices
        assert invoice.number == "INV-000001"
        assert invoice.status is InvoiceStatus.OPEN
        # the clock is 2026-11-21 12:00 UTC: 07:00 on the 21st in New York
        assert (invoice.issued_on, invoice.due_on) == (date(2026, 11, 21), date(2026, 12, 21))
        assert invoice.totals is not None
        # 100.00 + VAT 20% of 100.00 = 120.00
        assert (invoice.totals.subtotal, invoice.totals.tax, invoice.totals.amount_due) == (
            usd("100.00"),
            usd("20.00"),
            usd("120.00"),
        )
        assert [line.description for line in invoice.lines] == ["Team plan", "Extra seats"]
        assert [i for i in engine.invoices("c1") if i.receipt_for is None] == [invoice]
        assert engine.invoice(invoice.id) == invoice
        with engine.store.session() as s:
            assert s.pending_invoice_lines(sub) == []
        assert [type(e) for e in engine.events if isinstance(e, InvoiceIssued)] == [InvoiceIssued]
        again = engine.issue_due_invoices()
        assert again.invoices == () and again.explanation == "0 invoice(s) made."

    def test_numbers_are_gapless_across_customers_and_currencies(
        self, engine: BillingEngine
    ) -> None:
        s1, s2 = _subscription(engine, "c1", "s1"), _subscription(engine, "c2", "s2")
        _pending(engine, s1, _line("10.00"), _line("5.00", currency="EUR"))
        _pending(engine, s2, _line("7.00"))
        run = engine.issue_due_invoices()
        # each worker starts at its own place among the customers (from its worker id)
        assert sorted(i.number or "" for i in run.invoices) == [
            "INV-000001",
            "INV-000002",
            "INV-000003",
        ]
        assert {(i.customer_id, i.currency) for i in run.invoices} == {
            ("c1", "USD"),
            ("c1", "EUR"),
            ("c2", "USD"),
        }

    def test_a_run_rereads_the_pending_lines_between_chunks_and_misses_none(
        self, engine: BillingEngine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(invoice_flows, "_CHUNK", 1)
        s1, s2 = _subscription(engine, "c1", "s1"), _subscription(engine, "c2", "s2")
        _pending(engine, s1, _line("1.00"), _line("2.00", currency="EUR"))
        _pending(engine, s2, _line("3.00"), _line("4.00", currency="JPY"))
        run = engine.issue_due_invoices()
        assert sorted(i.number or "" for i in run.invoices) == [
            f"INV-00000{n}" for n in (1, 2, 3, 4)
        ]

    def test_lines_billed_later_wait_for_their_date_in_the_customers_zone(
        self, engine: BillingEngine, clock: ManualClock
    ) -> None:
        sub = _subscription(engine, "c2", "s2")  # Tokyo: 21:00 on 2026-11-21
        _pending(engine, sub, _line("10.00"), on=date(2026, 11, 22))
        assert engine.issue_due_invoices().invoices == ()
        clock.advance(timedelta(hours=3))  # 00:00 on the 22nd in Tokyo, 15:00 UTC
        (invoice,) = engine.issue_due_invoices().invoices
        assert invoice.issued_on == date(2026, 11, 22)

    def test_a_crash_before_the_commit_leaves_the_lines_pending_and_the_number_free(
        self, engine: BillingEngine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        sub = _subscription(engine, "c1", "s1")
        _pending(engine, sub, _line("10.00"))

        def crash(prefix: str, n: int) -> str:
            raise RuntimeError("the worker died")

        with monkeypatch.context() as m:
            m.setattr(invoice_flows, "format_number", crash)
            with pytest.raises(RuntimeError):
                engine.issue_due_invoices()
        with engine.store.session() as s:
            assert s.pending_invoice_lines(sub) == [_line("10.00")]
            assert [i for i in s.list_invoices() if i.receipt_for is None] == []
        (invoice,) = engine.issue_due_invoices().invoices
        assert invoice.number == "INV-000001"

    def test_lines_that_cannot_be_invoiced_stay_pending_and_the_others_go_on(
        self, engine: BillingEngine
    ) -> None:
        s1, s2 = _subscription(engine, "c1", "s1"), _subscription(engine, "c2", "s2")
        _pending(engine, s1, _line("-5.00", "credit"))  # a negative subtotal is bad input
        _pending(engine, s2, _line("7.00"))
        run = engine.issue_due_invoices()
        assert [i.customer_id for i in run.invoices] == ["c2"]
        assert [c for c, _ in run.skipped] == ["c1"]
        assert "left pending" in run.explanation
        with engine.store.session() as s:
            assert s.pending_invoice_lines(s1) == [_line("-5.00", "credit")]

    def test_drafts_are_numbered_only_when_finalized(self, engine: BillingEngine) -> None:
        engine.invoice_settings = InvoiceSettings(finalize=False, prefix="2026-")
        sub = _subscription(engine, "c1", "s1")
        _pending(engine, sub, _line("10.00"))
        (draft,) = engine.issue_due_invoices().invoices
        assert (draft.status, draft.number, draft.totals) == (InvoiceStatus.DRAFT, None, None)
        done = engine.finalize(draft.id, actor=AGENT)
        assert done.outcome is InvoiceOutcome.ISSUED
        assert done.invoice is not None and done.invoice.number == "2026-000001"
        again = engine.finalize(draft.id, actor=AGENT)
        assert (again.outcome, again.reason) == (InvoiceOutcome.DENIED, "already_issued")
        assert engine.invoice(draft.id).number == "2026-000001"

    def test_the_invoice_renders_with_the_customers_tax_ids(self, engine: BillingEngine) -> None:
        engine.invoice_settings = InvoiceSettings(tax_rates=(VAT,), notes="Net 30.")
        engine.set_tax_profile("c1", tax_ids=["US-EIN-12-3456789"], actor=AGENT)
        invoice_id = _issued(engine, _subscription(engine, "c1", "s1"), "100.00")
        text = engine.render_invoice(invoice_id, actor=AGENT)
        assert isinstance(text, str)
        assert text.splitlines()[:4] == [
            "INVOICE INV-000001 (open)",
            "Issued 2026-11-21",
            "Due 2026-12-21",
            "Bill to: Acme (c1)",
        ]
        assert "Tax ids: US-EIN-12-3456789" in text and text.endswith("Net 30.\n")
        assert "Amount due" + " " * 52 + "120.00 USD" in text
        data = engine.render_invoice(invoice_id, as_json=True)
        assert isinstance(data, dict) and data["amount_due"] == "120.00"

    def test_a_support_agent_may_not_run_the_issuing_job(self, engine: BillingEngine) -> None:
        sub = _subscription(engine, "c1", "s1")
        _pending(engine, sub, _line("10.00"))
        run = engine.issue_due_invoices(actor=AGENT)
        assert (run.outcome, run.reason) == ("denied", "permission_denied")
        with engine.store.session() as s:
            assert [i for i in s.list_invoices() if i.receipt_for is None] == []


class TestPayingAndVoiding:
    def test_part_payment_then_the_rest(self, engine: BillingEngine) -> None:
        invoice_id = _issued(engine, _subscription(engine, "c1", "s1"), "100.00")
        part = engine.pay_invoice(
            invoice_id, amount=usd("20.00"), idempotency_key="p1", actor=AGENT
        )
        assert part.outcome is InvoiceOutcome.PARTIALLY_PAID
        assert part.invoice is not None and part.invoice.amount_remaining == usd("100.00")
        assert part.invoice.partially_paid and part.invoice.status is InvoiceStatus.OPEN
        replay = engine.pay_invoice(
            invoice_id, amount=usd("20.00"), idempotency_key="p1", actor=AGENT
        )
        assert replay == part  # charged once
        too_much = engine.pay_invoice(
            invoice_id, amount=usd("100.01"), idempotency_key="p2", actor=AGENT
        )
        assert (too_much.outcome, too_much.reason) == (InvoiceOutcome.DENIED, "exceeds_amount_due")
        rest = engine.pay_invoice(invoice_id, idempotency_key="p3", actor=AGENT)
        assert rest.outcome is InvoiceOutcome.PAID and rest.amount == usd("100.00")
        paid = engine.invoice(invoice_id)
        assert (paid.status, paid.amount_paid, paid.amount_remaining) == (
            InvoiceStatus.PAID,
            usd("120.00"),
            usd("0.00"),
        )
        assert len(paid.payments) == 2
        assert base._sandbox(engine).calls["sale"] == 3  # the subscription's and two payments
        assert len([e for e in engine.events if isinstance(e, InvoicePaid)]) == 2
        voided = engine.void_invoice(invoice_id, actor=AGENT)
        assert (voided.outcome, voided.reason) == (InvoiceOutcome.DENIED, "already_paid")
        again = engine.pay_invoice(invoice_id, idempotency_key="p4", actor=AGENT)
        assert (again.outcome, again.reason) == (InvoiceOutcome.DENIED, "already_paid")

    def test_a_payment_during_another_payment_cannot_pay_what_is_reserved(
        self, store_url: str, clock: ManualClock
    ) -> None:
        sandbox = SandboxGateway(clock=clock)
        hooked = HookedGateway(sandbox)
        engine = BillingEngine(store=store_url, clock=clock, gateway=hooked)
        try:
            engine.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
            invoice_id = _issued(engine, _subscription(engine, "c1", "s1"), "100.00")
            during: list[InvoiceResult] = []
            hooked.before["sale"] = lambda: during.append(
                engine.pay_invoice(invoice_id, idempotency_key="b", actor=AGENT)
            )
            first = engine.pay_invoice(invoice_id, idempotency_key="a", actor=AGENT)
            assert first.outcome is InvoiceOutcome.PAID and first.amount == usd("100.00")
            (second,) = during
            assert (second.outcome, second.reason) == (InvoiceOutcome.DENIED, "already_paid")
            assert "100.00 USD is being paid right now" in second.explanation
            paid = engine.invoice(invoice_id)
            assert (paid.amount_paid, paid.payments_in_flight) == (usd("100.00"), ())
            assert len(paid.payments) == 1 and sandbox.calls["sale"] == 2  # one for s1
        finally:
            engine.store.close()

    def test_a_declined_payment_releases_what_it_reserved(self, engine: BillingEngine) -> None:
        invoice_id = _issued(engine, _subscription(engine, "c1", "s1"), "10.00")
        base._sandbox(engine).script("sale", [Fault.DECLINE])
        declined = engine.pay_invoice(invoice_id, idempotency_key="a", actor=AGENT)
        assert declined.outcome is InvoiceOutcome.DECLINED
        assert engine.invoice(invoice_id).payments_in_flight == ()
        paid = engine.pay_invoice(invoice_id, idempotency_key="b", actor=AGENT)
        assert paid.outcome is InvoiceOutcome.PAID and paid.amount == usd("12.00")

    @pytest.mark.parametrize(
        ("fault", "after"),
        [(Fault.TIMEOUT_AFTER_SEND, InvoiceStatus.PAID), (Fault.TIMEOUT_BEFORE_SEND, None)],
    )
    def test_a_lost_answer_keeps_the_payment_reserved_until_reconcile_knows(
        self, engine: BillingEngine, fault: Fault, after: InvoiceStatus | None
    ) -> None:
        invoice_id = _issued(engine, _subscription(engine, "c1", "s1"), "10.00")
        base._sandbox(engine).script("sale", [fault])
        lost = engine.pay_invoice(invoice_id, idempotency_key="a", actor=AGENT)
        assert lost.outcome is InvoiceOutcome.UNKNOWN
        assert engine.invoice(invoice_id).payments_in_flight == (("a", usd("12.00")),)
        blocked = engine.pay_invoice(invoice_id, idempotency_key="b", actor=AGENT)
        assert (blocked.outcome, blocked.reason) == (InvoiceOutcome.DENIED, "already_paid")
        engine.reconcile()
        settled = engine.invoice(invoice_id)
        assert settled.payments_in_flight == ()
        if after is InvoiceStatus.PAID:  # the gateway took it: recorded
            assert (settled.status, settled.amount_paid) == (after, usd("12.00"))
        else:  # never sent: released, and paid again under a new key
            assert settled.amount_paid == usd("0.00")
            again = engine.pay_invoice(invoice_id, idempotency_key="c", actor=AGENT)
            assert again.outcome is InvoiceOutcome.PAID

    def test_refunds_of_a_payment_appear_on_the_invoice_and_free_its_void(
        self, engine: BillingEngine, clock: ManualClock
    ) -> None:
        invoice_id = _issued(engine, _subscription(engine, "c1", "s1"), "50.00")
        paid = engine.pay_invoice(
            invoice_id, amount=usd("10.00"), idempotency_key="p1", actor=AGENT
        )
        assert paid.transaction_id is not None
        blocked = engine.void_invoice(invoice_id, actor=AGENT)
        assert (blocked.outcome, blocked.reason) == (InvoiceOutcome.DENIED, "has_payments")
        clock.advance(timedelta(days=2))  # settled: refunded, not voided
        engine.refund_transaction(
            paid.transaction_id, amount=usd("4.00"), idempotency_key="r1", actor=AGENT
        )
        partly = engine.invoice(invoice_id)
        assert (partly.amount_paid, partly.amount_refunded) == (usd("10.00"), usd("4.00"))
        engine.refund_transaction(paid.transaction_id, idempotency_key="r2", actor=AGENT)
        assert engine.invoice(invoice_id).amount_refunded == usd("10.00")
        voided = engine.void_invoice(invoice_id, actor=AGENT)
        assert voided.outcome is InvoiceOutcome.VOIDED
        assert engine.invoice(invoice_id).status is InvoiceStatus.VOID
        assert [type(e) for e in engine.events if isinstance(e, InvoiceVoided)] == [InvoiceVoided]

    def test_bad_payments_raise_and_charge_nothing(self, engine: BillingEngine) -> None:
        invoice_id = _issued(engine, _subscription(engine, "c1", "s1"), "10.00")
        with pytest.raises(CurrencyMismatchError) as info:
            engine.pay_invoice(
                invoice_id, amount=Money("1.00", "EUR"), idempotency_key="x", actor=AGENT
            )
        assert info.value.field == "$.amount"
        with pytest.raises(NotFoundError) as missing:
            engine.pay_invoice("in-nope", idempotency_key="y", actor=AGENT)
        assert missing.value.field == "$.invoice_id"
        assert base._sandbox(engine).calls["sale"] == 1  # the subscription's only


class TestCreditCouponsAndTax:
    def test_a_credit_memo_is_store_credit_drawn_oldest_first_after_tax(
        self, engine: BillingEngine
    ) -> None:
        sub = _subscription(engine, "c1", "s1")
        item = CreditMemoItem(
            description="2 unused seats", quantity=2, unit_price=usd("9.99"), tax=usd("4.00")
        )
        made = engine.create_credit_memo(
            "c1", [item], reason="unused seats", idempotency_key="cm1", actor=AGENT
        )
        assert made.memo is not None and made.memo.total == usd("23.98")
        assert made.memo.number == "CN-000001"
        invoice_id = _issued(engine, sub, "10.00")
        invoice = engine.invoice(invoice_id)
        assert invoice.totals is not None
        # 10.00 + 2.00 VAT = 12.00, all of it from the memo's 23.98: 11.98 left
        assert (invoice.totals.credit_applied, invoice.totals.amount_due) == (
            usd("12.00"),
            usd("0.00"),
        )
        with engine.store.session() as s:
            memo = s.get_credit_memo(made.memo.id)
        assert memo is not None and memo.remaining == usd("11.98")
        assert memo.applied == ((invoice_id, usd("12.00")),)
        assert base._sandbox(engine).calls["refund"] == 0  # never money at a gateway
        assert len([e for e in engine.events if isinstance(e, CreditMemoCreated)]) == 1

    def test_an_invoice_store_credit_covers_is_paid_at_issue(self, engine: BillingEngine) -> None:
        sub = _subscription(engine, "c1", "s1")
        item = CreditMemoItem(description="goodwill", quantity=1, unit_price=usd("12.00"))
        engine.create_credit_memo("c1", [item], idempotency_key="cm1", actor=AGENT)
        covered = engine.invoice(_issued(engine, sub, "10.00"))  # 10.00 + 2.00 VAT = 12.00
        assert covered.totals is not None
        assert (covered.totals.credit_applied, covered.totals.amount_due) == (
            usd("12.00"),
            usd("0.00"),
        )
        assert (covered.status, covered.amount_paid, covered.amount_remaining) == (
            InvoiceStatus.PAID,
            usd("0.00"),
            usd("0.00"),
        )
        (issued,) = [e for e in engine.events if isinstance(e, InvoiceIssued)]
        assert issued.invoice.status is InvoiceStatus.PAID  # the event says so
        again = engine.pay_invoice(covered.id, idempotency_key="p1", actor=AGENT)
        assert (again.outcome, again.reason) == (InvoiceOutcome.DENIED, "already_paid")
        voided = engine.void_invoice(covered.id, actor=AGENT)
        assert (voided.outcome, voided.reason) == (InvoiceOutcome.DENIED, "already_paid")
        assert base._sandbox(engine).calls["sale"] == 1  # the subscription's only
        # the memo is used up: the next invoice is open for all of it
        nxt = engine.invoice(_issued(engine, sub, "10.00"))
        assert (nxt.status, nxt.amount_remaining) == (InvoiceStatus.OPEN, usd("12.00"))

    def test_a_finalized_draft_with_nothing_due_is_paid(self, engine: BillingEngine) -> None:
        engine.invoice_settings = InvoiceSettings(finalize=False)
        sub = _subscription(engine, "c1", "s1")
        engine.redeem_coupon("c1", Coupon(id="all", percent_off=Decimal("100")), actor=AGENT)
        _pending(engine, sub, _line("10.00"))
        (draft,) = engine.issue_due_invoices().invoices
        assert draft.status is InvoiceStatus.DRAFT
        done = engine.finalize(draft.id, actor=AGENT)
        assert done.outcome is InvoiceOutcome.ISSUED and done.invoice is not None
        assert done.invoice.totals is not None and done.invoice.totals.total == usd("0.00")
        assert engine.invoice(draft.id).status is InvoiceStatus.PAID

    def test_a_memo_against_an_invoice_is_capped_at_what_it_can_credit(
        self, engine: BillingEngine
    ) -> None:
        invoice_id = _issued(engine, _subscription(engine, "c1", "s1"), "10.00")  # total 12.00
        item = CreditMemoItem(description="refund", quantity=1, unit_price=usd("12.01"))
        denied = engine.create_credit_memo(
            "c1", [item], invoice_id=invoice_id, idempotency_key="cm1", actor=AGENT
        )
        assert (denied.outcome, denied.reason) == ("denied", "exceeds_creditable")
        with engine.store.session() as s:
            assert s.list_credit_memos() == []
        ok = engine.create_credit_memo(
            "c1",
            [attrs.evolve(item, unit_price=usd("12.00"))],
            invoice_id=invoice_id,
            idempotency_key="cm2",
            actor=AGENT,
        )
        assert ok.outcome == "created"
        with pytest.raises(CurrencyMismatchError):
            engine.create_credit_memo(
                "c1",
                [CreditMemoItem(description="x", quantity=1, unit_price=Money("1.00", "EUR"))],
                invoice_id=invoice_id,
                idempotency_key="cm3",
                actor=AGENT,
            )

    def test_a_memo_in_mixed_currencies_raises_and_stores_nothing(
        self, engine: BillingEngine
    ) -> None:
        items = [
            CreditMemoItem(description="a", quantity=1, unit_price=usd("1.00")),
            CreditMemoItem(description="b", quantity=1, unit_price=Money("1.00", "EUR")),
        ]
        with pytest.raises(CurrencyMismatchError) as info:
            engine.create_credit_memo("c1", items, idempotency_key="cm", actor=AGENT)
        assert info.value.field == "$.items[1].unit_price"
        with engine.store.session() as s:
            assert s.list_credit_memos() == []
        ok = engine.create_credit_memo("c1", items[:1], idempotency_key="cm", actor=AGENT)
        assert ok.outcome == "created"  # the key stayed free: bad input wrote nothing

    def test_a_once_amount_off_coupon_keeps_its_remainder_for_the_next_invoice(
        self, engine: BillingEngine
    ) -> None:
        engine.invoice_settings = InvoiceSettings()  # no tax: the Lago figures
        sub = _subscription(engine, "c1", "s1")
        welcome = Coupon(id="welcome", amount_off=usd("12.00"), max_redemptions=1)
        assert engine.redeem_coupon("c1", welcome, actor=AGENT).outcome == "redeemed"
        first = engine.invoice(_issued(engine, sub, "10.00"))
        assert first.totals is not None and first.totals.discount == usd("10.00")
        second = engine.invoice(_issued(engine, sub, "10.00"))
        assert second.totals is not None and second.totals.discount == usd("2.00")
        third = engine.invoice(_issued(engine, sub, "10.00"))
        assert third.totals is not None and third.totals.discount == usd("0.00")
        again = engine.redeem_coupon("c2", welcome, actor=AGENT)
        assert (again.outcome, again.reason) == ("denied", "redemption_limit_reached")

    def test_a_valid_exemption_document_exempts_and_is_recorded(
        self, engine: BillingEngine
    ) -> None:
        document = TaxExemption(status="valid", valid_until=date(2026, 12, 31), document_id="TX-9")
        engine.set_tax_profile("c1", tax_ids=("US-EIN-1",), exemptions=[document], actor=AGENT)
        invoice = engine.invoice(_issued(engine, _subscription(engine, "c1", "s1"), "100.00"))
        assert invoice.totals is not None
        assert (invoice.totals.tax, invoice.totals.exempted_by) == (usd("0.00"), "TX-9")
        assert invoice.exemption == document
        assert engine.tax_profile("c1").tax_ids == ("US-EIN-1",)

    def test_bad_coupons_raise_naming_the_field(self) -> None:
        with pytest.raises(BillingError) as both:
            Coupon(id="c", amount_off=usd("1.00"), percent_off=Decimal("5"))
        assert both.value.field == "$.amount_off"
        with pytest.raises(BillingError) as percent:
            Coupon(id="c", percent_off=Decimal("100.01"))
        assert percent.value.field == "$.percent_off"
