"""Overdue invoices: which are past due today, and writing one off as ``uncollectible``.

**Past due is a reading, not a status.** An ``open`` invoice is past due from the day after its
due date (``due_on``, else ``issued_on``) on its customer's local date, and delinquent once its
delinquency period has run out (``rules.collection.assess_unpaid``). Storing it would make the
status depend on when a job last ran; ``past_due_invoices(now)`` answers it for any instant, with
the rule's sentence (days overdue, the cancellation date), oldest due first.

**Uncollectible is a status** (``rules.invoice_transitions``: ``mark_uncollectible``): the invoice
is written off, nothing collects it any more, and a late payment is still taken (Stripe's rule).
``mark_uncollectible`` does it by hand; ``collect_due`` does it to an invoice still unpaid at the
end of its delinquency period (``engine.dunning.cancel_for_delinquency``). Either way it is
audited (``invoice.marked_uncollectible``) and emitted (``InvoiceMarkedUncollectible``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import attrs

from ..invoices import Invoice, InvoiceStatus
from ..periods import Period
from ..plugins.events import InvoiceMarkedUncollectible
from ..plugins.protocols import StoreSession
from ..rules import collection
from ..rules import invoice_transitions as transitions
from ..rules.invoice_transitions import InvoiceEvent
from ..timeutil import local_date, timezone
from .context import EngineContext
from .invoice_flows import _denied, _get, retrying, with_refunds
from .invoice_results import InvoiceOutcome, InvoiceResult

__all__ = [
    "PastDueInvoice",
    "due_date",
    "mark_uncollectible",
    "past_due_invoices",
    "write_off",
    "written_off",
]


def due_date(invoice: Invoice) -> date:
    """The day an issued invoice is due: ``due_on``, else the day it was issued."""
    due = invoice.due_on or invoice.issued_on
    assert due is not None  # issued
    return due


@attrs.frozen(kw_only=True)
class PastDueInvoice:
    """An open invoice past its due date: ``days`` overdue on ``today`` (the customer's local
    date), ``state`` ``past_due`` or ``delinquent`` and ``cancel_on`` as
    ``rules.collection.assess_unpaid`` says, with its sentence."""

    invoice: Invoice
    today: date
    days: int
    state: collection.UnpaidState
    cancel_on: date | None
    explanation: str


def past_due_invoices(
    ctx: EngineContext,
    now: datetime,
    *,
    delinquency_period: Period | timedelta | None,
    customer_id: str | None = None,
) -> list[PastDueInvoice]:
    """Every open invoice (of ``customer_id``, or of everyone) past due at ``now``."""
    found: list[PastDueInvoice] = []
    with ctx.store.session() as s:
        zones: dict[str, str] = {}
        for invoice in s.list_invoices(customer_id=customer_id, statuses=[InvoiceStatus.OPEN]):
            if invoice.customer_id not in zones:
                customer = s.get_customer(invoice.customer_id)
                zones[invoice.customer_id] = customer.timezone if customer else "UTC"
            today = local_date(now, timezone(zones[invoice.customer_id]))
            due_on = due_date(invoice)
            if today <= due_on:
                continue
            unpaid = collection.assess_unpaid(
                due_on=due_on, today=today, delinquency_period=delinquency_period
            )
            found.append(
                PastDueInvoice(
                    invoice=with_refunds(s, invoice),
                    today=today,
                    days=(today - due_on).days,
                    state=unpaid.state,
                    cancel_on=unpaid.cancel_on,
                    explanation=f"Invoice {invoice.number}: {invoice.amount_remaining} unpaid. "
                    f"{unpaid.explanation}",
                )
            )
    found.sort(key=lambda p: (due_date(p.invoice), p.invoice.number or ""))
    return found


def write_off(
    ctx: EngineContext,
    s: StoreSession,
    invoice: Invoice,
    *,
    why: str,
    actor: str,
    stopped: str | None = None,
) -> Invoice | None:
    """Mark ``invoice`` (read locked in ``s``) uncollectible in ``s``, audited
    (``invoice.marked_uncollectible``); None when the table refuses it (paid, void, written off
    already). ``stopped`` is recorded as its ``collection_stopped``."""
    decision = transitions.assess(invoice, InvoiceEvent.MARK_UNCOLLECTIBLE)
    if not decision.allowed or decision.becomes is None:
        return None
    stored = attrs.evolve(
        invoice,
        status=decision.becomes,
        next_collection_on=None,
        collection_stopped=stopped or invoice.collection_stopped,
    )
    s.update_invoice(stored)
    ctx.audit(
        s,
        action="invoice.marked_uncollectible",
        subject_id=invoice.id,
        actor=actor,
        detail={"amount_remaining": str(invoice.amount_remaining), "why": why},
    )
    return stored


def written_off(ctx: EngineContext, invoice: Invoice, explanation: str) -> None:
    """Emit ``InvoiceMarkedUncollectible`` for ``invoice`` (after its session committed)."""
    ctx.emit(InvoiceMarkedUncollectible(at=ctx.now(), invoice=invoice, explanation=explanation))


def mark_uncollectible(
    ctx: EngineContext, invoice_id: str, *, actor: str, why: str = ""
) -> InvoiceResult:
    """Write the invoice off by hand: ``uncollectible``, nothing collects it any more, a late
    payment is still taken. A paid or void invoice (or one written off already) is a denial."""

    def run() -> InvoiceResult:
        with ctx.store.session() as s:
            invoice = _get(s, invoice_id, lock=True)
            decision = transitions.assess(invoice, InvoiceEvent.MARK_UNCOLLECTIBLE)
            if not decision.allowed:
                return _denied(invoice, decision)
            stored = write_off(ctx, s, invoice, why=why, actor=actor)
            assert stored is not None  # the table allowed it
        because = f" ({why})" if why else ""
        return InvoiceResult(
            outcome=InvoiceOutcome.UNCOLLECTIBLE,
            invoice_id=invoice_id,
            invoice=stored,
            explanation=f"Invoice {stored.number} is written off as uncollectible{because}: "
            f"{stored.amount_remaining} is not collected any more; a late payment is still taken.",
        )

    result = retrying(run)
    if result.outcome is InvoiceOutcome.UNCOLLECTIBLE and result.invoice is not None:
        written_off(ctx, result.invoice, result.explanation)
    return result
