"""Editing draft invoices (``edit_draft``, issue 13) on memory, SQLite and PostgreSQL: lines added
and waived, notes replaced, the totals computed from the edited lines at ``finalize``, frozen
once issued, and bad input refused before anything is stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

import test_engine as base
from billing_core import (
    BillingEngine,
    Customer,
    InvoiceLine,
    InvoiceStatus,
    Money,
    Period,
    TaxRate,
)
from billing_core.engine.invoice_results import InvoiceOutcome
from billing_core.engine.invoices import InvoiceSettings
from billing_core.errors import (
    CurrencyMismatchError,
    InvalidTypeError,
    InvalidValueError,
    NotFoundError,
)
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.testing.clock import ManualClock

ADMIN, AGENT = base.ADMIN, base.AGENT
store_url, clock = base.store_url, base.clock
VAT = TaxRate(name="VAT", percent=Decimal("20"))


def usd(amount: str) -> Money:
    return Money(amount, "USD")


def line(amount: str, text: str) -> InvoiceLine:
    return InvoiceLine(description=text, amount=usd(amount))


@pytest.fixture
def engine(store_url: str, clock: ManualClock) -> Iterator[BillingEngine]:
    gateway = SandboxGateway(clock=clock, settle_after=timedelta(days=1))
    eng = BillingEngine(store=store_url, clock=clock, gateway=gateway)
    eng.invoice_settings = InvoiceSettings(tax_rates=(VAT,), finalize=False, notes="Net 30.")
    eng.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
    yield eng
    eng.store.close()


def draft(engine: BillingEngine) -> str:
    sub = engine.add_subscription(
        "c1",
        term=Period.years(1),
        inventory={"dv": 1},
        unit_prices={"dv": usd("1.00")},
        idempotency_key="s1",
        actor=ADMIN,
    )
    assert sub.subscription_id is not None
    with engine.store.session() as s:
        s.add_invoice_lines(
            sub.subscription_id,
            [line("100.00", "Team plan"), line("30.00", "Extra seats"), line("5.00", "Setup")],
        )
    (made,) = engine.issue_due_invoices().invoices
    assert made.status is InvoiceStatus.DRAFT
    return made.id


def test_a_draft_is_edited_then_issued_from_its_edited_lines(engine: BillingEngine) -> None:
    inv = draft(engine)
    fee = line("12.50", "Rush fee")
    edited = engine.edit_draft(
        inv, add_lines=[fee], remove_lines=[2], notes="Thank you.", actor=AGENT
    )
    assert edited.outcome is InvoiceOutcome.EDITED
    assert edited.explanation == (
        f"Draft {inv}: removed 1 line, added 1 line, changed its notes; it has 3 lines and is "
        "issued by finalize()."
    )
    stored = engine.invoice(inv)
    assert [ln.description for ln in stored.lines] == ["Team plan", "Extra seats", "Rush fee"]
    assert (stored.notes, stored.number, stored.totals) == ("Thank you.", None, None)
    done = engine.finalize(inv, actor=AGENT)
    assert done.invoice is not None and done.invoice.totals is not None
    # (100.00 + 30.00 + 12.50) = 142.50; VAT 20 % = 28.50; due 171.00 (the 5.00 setup waived)
    totals = done.invoice.totals
    assert (totals.subtotal, totals.tax, totals.amount_due) == (
        usd("142.50"),
        usd("28.50"),
        usd("171.00"),
    )
    audit = [e for e in engine.audit_log(subject_id=inv) if e.action == "invoice.edited"]
    assert len(audit) == 1 and audit[0].detail["notes"] == "Thank you."
    assert [r["description"] for r in audit[0].detail["removed"]] == ["Setup"]
    # issued: frozen
    frozen = engine.edit_draft(inv, add_lines=[line("1.00", "late")], actor=AGENT)
    assert (frozen.outcome, frozen.reason) == (InvoiceOutcome.DENIED, "lines_frozen")
    assert len(engine.invoice(inv).lines) == 3


def test_a_waived_line_is_not_billed_again(engine: BillingEngine) -> None:
    inv = draft(engine)
    engine.edit_draft(inv, remove_lines=[0, 1], actor=AGENT)
    assert [ln.description for ln in engine.invoice(inv).lines] == ["Setup"]
    assert engine.issue_due_invoices().invoices == ()  # nothing pending came back


def test_notes_alone_and_nothing_at_all(engine: BillingEngine) -> None:
    inv = draft(engine)
    only = engine.edit_draft(inv, notes="Paid by wire, please.", actor=AGENT)
    assert only.explanation.startswith(f"Draft {inv}: changed its notes; it has 3 lines")
    assert engine.invoice(inv).notes == "Paid by wire, please."
    nothing = engine.edit_draft(inv, actor=AGENT)
    assert nothing.explanation.startswith(f"Draft {inv}: changed nothing")


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"add_lines": [InvoiceLine(description="x", amount=Money("1", "EUR"))]},
         CurrencyMismatchError, r"\$\.add_lines\[0\]\.amount"),
        ({"add_lines": ["a line"]}, InvalidTypeError, r"\$\.add_lines\[0\]"),
        ({"add_lines": line("1.00", "x")}, InvalidTypeError, r"\$\.add_lines"),
        ({"remove_lines": [3]}, InvalidValueError, r"has no line 3.*\$\.remove_lines\[0\]"),
        ({"remove_lines": [1, 1]}, InvalidValueError, r"given twice.*\$\.remove_lines\[1\]"),
        ({"remove_lines": [True]}, InvalidTypeError, r"\$\.remove_lines\[0\]"),
        ({"remove_lines": [0, 1, 2]}, InvalidValueError, r"without a line.*\$\.remove_lines"),
        ({"notes": 5}, InvalidTypeError, r"\$\.notes"),
    ],
)  # fmt: skip
def test_bad_edits_raise_naming_the_field_and_store_nothing(
    engine: BillingEngine, kwargs: dict[str, object], error: type[Exception], field: str
) -> None:
    inv = draft(engine)
    before = engine.invoice(inv)
    with pytest.raises(error, match=field):
        engine.edit_draft(inv, actor=AGENT, **kwargs)  # type: ignore[arg-type]
    assert engine.invoice(inv) == before
    assert not [e for e in engine.audit_log(subject_id=inv) if e.action == "invoice.edited"]


def test_edit_draft_guards(engine: BillingEngine) -> None:
    with pytest.raises(NotFoundError, match="invoice_id"):
        engine.edit_draft("nope", actor=AGENT)
    inv = draft(engine)
    engine.void_invoice(inv, actor=AGENT)
    void = engine.edit_draft(inv, notes="x", actor=AGENT)
    assert (void.outcome, void.reason) == (InvoiceOutcome.DENIED, "invoice_void")
