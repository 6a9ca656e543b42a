"""The invoice calls of ``BillingEngine`` (a mixin, like ``engine.jobs``): issuing, finalizing,
voiding and paying invoices, credit memos, coupon redemptions, tax profiles and the reads.

Every call goes through the guard path (``engine.guards``: bad input raises first, then the
actor's permission, the idempotency key, the customer). How the engine numbers and dates
invoices is ``engine.invoice_settings`` (an ``InvoiceSettings``; set it on the engine). The
flows are in ``engine.invoice_flows`` and ``engine.credit_flows``; see docs/invoices.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from .. import rendering
from ..errors import InvalidTypeError
from ..invoices import Coupon, CreditMemoItem, Invoice, TaxExemption
from ..model import InvoiceLine
from ..money import Money
from ..plugins.records import TaxProfile
from ..rules.permissions import SYSTEM_ACTOR, Actor
from ..timeutil import require_aware
from . import credit_flows, drafts, invoice_flows, invoice_payments, overdue
from .base import EngineBase
from .guards import actor as _actor
from .guards import ident
from .invoice_flows import InvoiceSettings
from .invoice_results import (
    CouponOutcome,
    CouponResult,
    CreditMemoResult,
    CreditOutcome,
    InvoiceResult,
    InvoiceRunResult,
    TaxProfileOutcome,
    TaxProfileResult,
    denied_on,
)
from .results import JobOutcome

__all__ = ["EngineInvoices", "InvoiceSettings"]


def _customer_of(engine: EngineBase, invoice_id: str) -> str:
    return invoice_flows.read_invoice(engine.ctx, invoice_id).customer_id


class EngineInvoices(EngineBase):
    """Invoices: issued from the pending lines, numbered, paid, voided, credited."""

    _invoice_settings: InvoiceSettings = InvoiceSettings()

    @property
    def invoice_settings(self) -> InvoiceSettings:
        """Number prefixes, due days, tax rates; replace it to configure (``InvoiceSettings``)."""
        return self._invoice_settings

    @invoice_settings.setter
    def invoice_settings(self, settings: InvoiceSettings) -> None:
        if not isinstance(settings, InvoiceSettings):
            raise InvalidTypeError(
                f"must be an InvoiceSettings, not {type(settings).__name__}",
                field="invoice_settings",
                value=settings,
            )
        self._invoice_settings = settings
        self.ctx.receipt_prefix = settings.receipt_prefix

    def issue_due_invoices(
        self, now: datetime | None = None, *, actor: Actor | None = None
    ) -> InvoiceRunResult:
        """Issue one invoice per customer and currency from every pending line due by the
        customer's local date (``now``: default the clock), each in one store session."""
        who = SYSTEM_ACTOR if actor is None else _actor(actor)
        at = self.ctx.now() if now is None else require_aware(now, "now")
        return self._guarded(
            "issue_due_invoices",
            who,
            lambda d: InvoiceRunResult(
                outcome=JobOutcome.DENIED, reason=str(d.reason), explanation=d.explanation
            ),
            lambda: invoice_flows.issue_due_invoices(
                self.ctx, self.invoice_settings, now=at, actor=who.id
            ),
        )

    def _on_invoice(
        self, method: str, invoice_id: str, who: Actor, body: Callable[[], InvoiceResult]
    ) -> InvoiceResult:
        ident(invoice_id, "invoice_id")
        customer_id = _customer_of(self, invoice_id)  # NotFoundError naming invoice_id
        return self._guarded(
            method,
            who,
            denied_on(invoice_id),
            body,
            customer_id=customer_id,
            subject=invoice_id,
        )

    def finalize(self, invoice_id: str, *, actor: Actor) -> InvoiceResult:
        """Issue a draft: numbered, totals computed, lines frozen (``already_issued`` if not a
        draft)."""
        who = _actor(actor)
        return self._on_invoice(
            "finalize",
            invoice_id,
            who,
            lambda: invoice_flows.finalize(
                self.ctx, self.invoice_settings, invoice_id, actor=who.id
            ),
        )

    def edit_draft(
        self,
        invoice_id: str,
        *,
        actor: Actor,
        add_lines: Sequence[InvoiceLine] = (),
        remove_lines: Sequence[int] = (),
        notes: str | None = None,
    ) -> InvoiceResult:
        """Edit a draft before it is issued: add lines (in its currency), take lines off by
        position (waived: not billed again), replace its notes. An issued invoice is a denial
        (``lines_frozen``); bad input raises naming the field (``engine.drafts``)."""
        who = _actor(actor)
        ident(invoice_id, "invoice_id")
        drafts.check_edit(  # bad input raises before anything else (NotFoundError: invoice_id)
            invoice_flows.read_invoice(self.ctx, invoice_id), add_lines, remove_lines, notes
        )
        return self._on_invoice(
            "edit_draft",
            invoice_id,
            who,
            lambda: drafts.edit_draft(
                self.ctx,
                invoice_id,
                add_lines=tuple(add_lines),
                remove_lines=tuple(remove_lines),
                notes=notes,
                actor=who.id,
            ),
        )

    def void_invoice(self, invoice_id: str, *, actor: Actor) -> InvoiceResult:
        """Void a draft or an invoice holding no payment (``has_payments``, ``already_paid``
        otherwise): nothing is owed on it any more."""
        who = _actor(actor)
        return self._on_invoice(
            "void_invoice",
            invoice_id,
            who,
            lambda: invoice_flows.void_invoice(self.ctx, invoice_id, actor=who.id),
        )

    def mark_uncollectible(self, invoice_id: str, *, actor: Actor, why: str = "") -> InvoiceResult:
        """Write an open invoice off (``uncollectible``): nothing collects it any more, a late
        payment is still taken (``already_paid``, ``invoice_void``, ``already_uncollectible``
        otherwise). ``why`` is recorded in the audit log and the event."""
        who = _actor(actor)
        if not isinstance(why, str):
            raise InvalidTypeError(
                f"must be a str, not {type(why).__name__}", field="why", value=why
            )
        return self._on_invoice(
            "mark_uncollectible",
            invoice_id,
            who,
            lambda: overdue.mark_uncollectible(self.ctx, invoice_id, actor=who.id, why=why),
        )

    def pay_invoice(
        self,
        invoice_id: str,
        *,
        idempotency_key: str,
        actor: Actor,
        amount: Money | None = None,
    ) -> InvoiceResult:
        """Charge ``amount`` (default: what is left to pay) and record it on the invoice."""
        who = _actor(actor)
        ident(invoice_id, "invoice_id")
        customer_id = invoice_flows.payment_target(self.ctx, invoice_id, amount).customer_id
        params = {"invoice_id": invoice_id, "amount": amount}
        return self._guarded(
            "pay_invoice",
            who,
            denied_on(invoice_id),
            lambda: invoice_payments.pay_invoice(
                self.ctx, invoice_id, amount=amount, key=idempotency_key, actor=who.id
            ),
            customer_id=customer_id,
            keyed_by=(idempotency_key, params, InvoiceResult),
        )

    def create_credit_memo(
        self,
        customer_id: str,
        items: Sequence[CreditMemoItem],
        *,
        idempotency_key: str,
        actor: Actor,
        reason: str = "",
        invoice_id: str | None = None,
    ) -> CreditMemoResult:
        """A credit memo: its total becomes store credit for upcoming invoices (never a refund).
        Against ``invoice_id`` it may credit at most what that invoice can still credit."""
        who = _actor(actor)
        ident(customer_id, "customer_id")
        if invoice_id is not None:
            ident(invoice_id, "invoice_id")
        if isinstance(items, str) or not isinstance(items, Sequence):
            raise InvalidTypeError("must be a sequence of CreditMemoItem", field="items")
        params = {
            "customer_id": customer_id,
            "items": list(items),
            "reason": reason,
            "invoice_id": invoice_id,
        }
        return self._guarded(
            "create_credit_memo",
            who,
            lambda d: CreditMemoResult(
                outcome=CreditOutcome.DENIED, reason=str(d.reason), explanation=d.explanation
            ),
            lambda: credit_flows.create_credit_memo(
                self.ctx,
                self.invoice_settings,
                customer_id,
                items,
                reason=reason,
                invoice_id=invoice_id,
                actor=who.id,
            ),
            customer_id=customer_id,
            keyed_by=(idempotency_key, params, CreditMemoResult),
        )

    def redeem_coupon(
        self,
        customer_id: str,
        coupon: Coupon,
        *,
        actor: Actor,
        invoice_id: str | None = None,
    ) -> CouponResult:
        """Redeem ``coupon`` on the account (upcoming invoices) or on one draft invoice."""
        who = _actor(actor)
        ident(customer_id, "customer_id")
        if invoice_id is not None:
            ident(invoice_id, "invoice_id")
        if not isinstance(coupon, Coupon):
            raise InvalidTypeError(
                f"must be a Coupon, not {type(coupon).__name__}", field="coupon", value=coupon
            )
        return self._guarded(
            "redeem_coupon",
            who,
            lambda d: CouponResult(
                outcome=CouponOutcome.DENIED, reason=str(d.reason), explanation=d.explanation
            ),
            lambda: credit_flows.redeem_coupon(
                self.ctx, customer_id, coupon, invoice_id=invoice_id, actor=who.id
            ),
            customer_id=customer_id,
        )

    def set_tax_profile(
        self,
        customer_id: str,
        *,
        actor: Actor,
        tax_ids: Sequence[str] = (),
        exemptions: Sequence[TaxExemption] = (),
    ) -> TaxProfileResult:
        """Replace the customer's tax ids (printed on invoices) and tax-exemption documents."""
        who = _actor(actor)
        ident(customer_id, "customer_id")
        profile = credit_flows.tax_profile(customer_id, tax_ids=tax_ids, exemptions=exemptions)

        def body() -> TaxProfileResult:
            credit_flows.set_tax_profile(self.ctx, profile, actor=who.id)
            return TaxProfileResult(
                outcome=TaxProfileOutcome.SET,
                profile=profile,
                explanation=f"Customer {customer_id} has {len(profile.tax_ids)} tax id(s) and "
                f"{len(profile.exemptions)} exemption document(s).",
            )

        return self._guarded(
            "set_tax_profile",
            who,
            lambda d: TaxProfileResult(
                outcome=TaxProfileOutcome.DENIED, reason=str(d.reason), explanation=d.explanation
            ),
            body,
            customer_id=customer_id,
        )

    # -- reading -----------------------------------------------------------------------------------
    def invoice(self, invoice_id: str, *, actor: Actor | None = None) -> Invoice:
        """One invoice, with the refunds of its payments (``amount_refunded``)."""
        self._read("invoice", actor)
        ident(invoice_id, "invoice_id")
        return invoice_flows.read_invoice(self.ctx, invoice_id)

    def invoices(self, customer_id: str, *, actor: Actor | None = None) -> list[Invoice]:
        """A customer's invoices, in the order they were made."""
        self._read("invoices", actor)
        ident(customer_id, "customer_id")
        return invoice_flows.read_invoices(self.ctx, customer_id)

    def render_invoice(
        self, invoice_id: str, *, as_json: bool = False, actor: Actor | None = None
    ) -> str | dict[str, Any]:
        """The invoice as plain text (or a JSON-ready mapping), with its customer's company,
        address and tax ids (``billing_core.rendering``)."""
        self._read("render_invoice", actor)
        ident(invoice_id, "invoice_id")
        invoice = invoice_flows.read_invoice(self.ctx, invoice_id)
        with self.store.session() as s:
            customer = s.get_customer(invoice.customer_id)
            profile = s.get_tax_profile(invoice.customer_id)
        tax_ids = profile.tax_ids if profile else ()
        if as_json:
            return rendering.render_json(invoice, customer=customer, tax_ids=tax_ids)
        return rendering.render_text(invoice, customer=customer, tax_ids=tax_ids)

    def tax_profile(self, customer_id: str, *, actor: Actor | None = None) -> TaxProfile:
        """The customer's tax ids and exemption documents (empty when none were set)."""
        self._read("tax_profile", actor)
        ident(customer_id, "customer_id")
        with self.store.session() as s:
            found = s.get_tax_profile(customer_id)
        return found or TaxProfile(customer_id=customer_id)
