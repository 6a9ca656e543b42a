"""The invoice flows behind ``BillingEngine``'s invoice calls (``engine.invoices``).

* **Issuing** (``issue_due_invoices``): every pending line due by the customer's local date is
  taken into one invoice per customer and currency, in ONE store session per invoice: the lines
  are marked taken (``take_pending_lines``), the account's coupons and store credit are applied,
  the number is drawn last (``next_invoice_number``: the counter row is held only until the
  commit), and the invoice is inserted. A crash or an error before the commit leaves the lines
  pending and gives the number back; a line is never on two invoices. An invoice with nothing
  left to pay once issued (credit or coupons covered it) is ``paid`` at once (``settled_at_issue``).
* **Where the lines come from**: the pending lines are what the billing timeline bills
  *later* (a mid-term change's prorated stub from ``add_inventory``, a closed metered period);
  a subscription's terms are charged at once as sales by ``add_subscription`` and ``renew_due``
  and are never pending, so issuing never bills a renewal twice (docs/invoices.md).
* **Finalizing** a draft numbers it and computes its totals the same way; **voiding** and
  **paying** go through ``rules.invoice_transitions`` (the table decides every status change).
* **Payments** are in ``engine.invoice_payments``. **Refunds** of those sales appear on the
  invoice (``amount_refunded``), computed from the payment transactions whenever the invoice is
  read or changed, so paid, refunded and due always add up.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TypeVar

import attrs

from ..errors import BillingError, ConflictError, InvalidTypeError, InvalidValueError, NotFoundError
from ..invoices import (
    Coupon,
    CreditMemoBalance,
    Invoice,
    InvoiceStatus,
    TaxExemption,
    TaxRate,
)
from ..model import Customer, TransactionStatus
from ..money import Money
from ..plugins._store_invoice_common import check_prefix, format_number
from ..plugins.events import InvoiceIssued, InvoiceVoided
from ..plugins.protocols import StoreSession
from ..plugins.records import CouponRedemption
from ..rules import coupons as coupon_rules
from ..rules import credit as credit_rules
from ..rules import invoice_transitions as transitions
from ..rules import invoicing
from ..rules import tax as tax_rules
from ..rules.invoice_transitions import InvoiceEvent
from ..serialization import unstructure
from ..timeutil import local_date
from ..timeutil import timezone as zone
from .context import EngineContext
from .invoice_results import InvoiceOutcome, InvoiceResult, InvoiceRunResult

__all__ = [
    "InvoiceSettings",
    "finalize",
    "issue_due_invoices",
    "read_invoice",
    "read_invoices",
    "void_invoice",
]

T = TypeVar("T")
_LATEST_ZONE = timezone(timedelta(hours=14))  # the first local date anywhere on Earth
_RETRIES = 50
_CHUNK = 50  # customers issued between two reads of the pending lines


def _count_days(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidValueError("must be a whole number of days, 0 or more", field="due_days")
    return value


def _rates(value: Sequence[TaxRate]) -> tuple[TaxRate, ...]:
    rates = tuple(value)
    for i, rate in enumerate(rates):
        if not isinstance(rate, TaxRate):
            raise InvalidTypeError("must be a TaxRate", field=f"tax_rates[{i}]", value=rate)
    return rates


def _prefix(value: object) -> str:
    return check_prefix(value)


@attrs.frozen(kw_only=True)
class InvoiceSettings:
    """How the engine issues invoices: the number ``prefix`` (one gapless sequence per prefix
    and store), ``memo_prefix`` for credit memos, ``receipt_prefix`` for the receipts of term
    sales (``engine.receipts``), ``due_days`` from issue to due date, the
    ``tax_rates`` and ``notes`` every invoice carries, and whether ``issue_due_invoices`` issues at once
    (``finalize=True``) or leaves drafts for review."""

    prefix: str = attrs.field(default="INV-", converter=_prefix)
    memo_prefix: str = attrs.field(default="CN-", converter=_prefix)
    receipt_prefix: str = attrs.field(default="RCT-", converter=_prefix)
    due_days: int = attrs.field(default=30, converter=_count_days)
    tax_rates: tuple[TaxRate, ...] = attrs.field(default=(), converter=_rates)
    finalize: bool = True
    notes: str = ""


def retrying(fn: Callable[[], T]) -> T:
    """Run a whole store session again after a ``ConflictError`` (a deadlock, a serialization
    failure, SQLite busy): nothing of the failed attempt was written."""
    for attempt in range(_RETRIES):
        try:
            return fn()
        except ConflictError:
            if attempt == _RETRIES - 1:
                raise
            time.sleep(min(0.005 * (attempt + 1), 0.1))
    raise AssertionError("unreachable")  # pragma: no cover


# -- reading, with the refunds of its payments ---------------------------------------------------
def with_refunds(s: StoreSession, invoice: Invoice) -> Invoice:
    """``invoice`` with ``amount_refunded`` as its payment transactions now say (a refund or a
    void of a payment, however it finished: at once or from the retry queue)."""
    if not invoice.payments:
        return invoice
    refunded = Money.zero(invoice.currency)
    for payment_id in invoice.payments:
        t = s.get_transaction(payment_id)
        if t is None or t.amount.currency != invoice.currency:
            continue
        refunded += t.amount if t.status is TransactionStatus.VOIDED else t.refunded
    refunded = min(refunded, invoice.amount_paid)
    if refunded == invoice.amount_refunded:
        return invoice
    return attrs.evolve(invoice, amount_refunded=refunded)


def _get(s: StoreSession, invoice_id: str, *, lock: bool = False) -> Invoice:
    found = s.get_invoice(invoice_id, lock=lock)
    if found is None:
        raise NotFoundError(f"no invoice {invoice_id!r}", field="invoice_id", value=invoice_id)
    return with_refunds(s, found)


def read_invoice(ctx: EngineContext, invoice_id: str) -> Invoice:
    with ctx.store.session() as s:
        return _get(s, invoice_id)


def payment_target(ctx: EngineContext, invoice_id: str, amount: object) -> Invoice:
    """The invoice a payment of ``amount`` (None: all that is left) is for; bad input raises
    before anything is written: ``amount`` not ``Money``, in another currency, not positive, or
    no such invoice (``NotFoundError`` naming ``invoice_id``)."""
    if amount is not None and not isinstance(amount, Money):
        raise InvalidTypeError(
            f"must be Money, not {type(amount).__name__}", field="amount", value=amount
        )
    invoice = read_invoice(ctx, invoice_id)
    if amount is not None:
        transitions.payment_event(invoice, amount)
    return invoice


def read_invoices(ctx: EngineContext, customer_id: str) -> list[Invoice]:
    with ctx.store.session() as s:
        return [with_refunds(s, i) for i in s.list_invoices(customer_id=customer_id)]


# -- issuing ---------------------------------------------------------------------------------
def _today(customer: Customer, now: datetime) -> date:
    return local_date(now, zone(customer.timezone))


def _exemption(s: StoreSession, customer_id: str, on: date) -> TaxExemption | None:
    """The customer's document that exempts on ``on``, else its latest one (recorded on the
    invoice, exempting nothing), else None."""
    profile = s.get_tax_profile(customer_id)
    if profile is None or not profile.exemptions:
        return None
    for document in profile.exemptions:
        if tax_rules.is_exempt(document, on=on):
            return document
    return profile.exemptions[-1]


def _account_coupons(s: StoreSession, invoice: Invoice) -> list[tuple[CouponRedemption, Coupon]]:
    """The customer's live redemptions (on the account, or on this invoice) and the coupon each
    applies to this invoice, oldest redemption first.

    Each live coupon's counter row (the one ``redeem_coupon`` serializes on) is held first, in
    id order, and the redemptions are read again after: two issuers of one customer at once (its
    USD and EUR lines) then never both use a ``once`` coupon."""
    live = {
        r.coupon.id
        for r in s.list_coupon_redemptions(customer_id=invoice.customer_id)
        if not r.finished
    }
    for coupon_id in sorted(live):
        s.next_invoice_number(f"coupon:{coupon_id}")
    found = []
    for r in s.list_coupon_redemptions(customer_id=invoice.customer_id):
        if r.finished or (r.invoice_id is not None and r.invoice_id != invoice.id):
            continue
        coupon = r.coupon
        if coupon.amount_off is not None and coupon.amount_off.currency != invoice.currency:
            continue
        step = coupon_rules.next_application(
            coupon, periods_applied=r.periods_applied, amount_used=r.amount_used
        )
        if step.coupon is not None:
            found.append((r, step.coupon))
    return found


def issue(
    ctx: EngineContext, s: StoreSession, settings: InvoiceSettings, draft: Invoice, today: date
) -> Invoice:
    """``draft`` issued in session ``s``: coupons, tax (or the exemption), store credit (oldest
    memo first, same currency), then the number. The caller stores it."""
    decision = transitions.assess(draft, InvoiceEvent.ISSUE)
    assert decision.allowed and decision.becomes is not None
    applied = _account_coupons(s, draft)
    memos = [
        m
        for m in s.list_credit_memos(customer_id=draft.customer_id, lock=True)
        if m.currency == draft.currency and m.remaining
    ]
    available = sum((m.remaining for m in memos), Money.zero(draft.currency))
    exemption = _exemption(s, draft.customer_id, today)
    totals = invoicing.total(
        draft.lines,
        coupons=[c for _, c in applied],
        tax_rates=draft.tax_rates,
        exemption=exemption,
        on=today if exemption is not None else None,
        credit=available if memos else None,
    )
    for (redemption, _), taken in zip(applied, totals.coupon_discounts, strict=True):
        used = taken if redemption.amount_used is None else redemption.amount_used + taken
        after = attrs.evolve(redemption, periods_applied=redemption.periods_applied + 1)
        if redemption.coupon.amount_off is not None:
            after = attrs.evolve(after, amount_used=used)
        step = coupon_rules.next_application(
            after.coupon, periods_applied=after.periods_applied, amount_used=after.amount_used
        )
        s.put_coupon_redemption(attrs.evolve(after, finished=step.finished))
    if totals.credit_applied:
        balances = [
            CreditMemoBalance(memo_id=m.id, remaining=m.remaining, created_at=m.created_at)
            for m in memos
        ]
        consumed = credit_rules.consume_credit(balances, amount=totals.credit_applied)
        by_id = {m.id: m for m in memos}
        for memo_id, amount in consumed.draws:
            memo = by_id[memo_id]
            s.put_credit_memo(
                attrs.evolve(
                    memo,
                    remaining=memo.remaining - amount,
                    applied=(*memo.applied, (draft.id, amount)),
                )
            )
    n = s.next_invoice_number(settings.prefix)  # last: the counter row is held until commit
    issued = attrs.evolve(
        draft,
        status=decision.becomes,
        number=format_number(settings.prefix, n),
        issued_on=today,
        due_on=today + timedelta(days=settings.due_days),
        coupons=tuple(c for _, c in applied),
        exemption=exemption,
        totals=totals,
    )
    return settled_at_issue(issued)


def settled_at_issue(invoice: Invoice) -> Invoice:
    """``invoice`` just issued, ``paid`` when nothing is left to pay (store credit or coupons
    covered it all, or it totals zero): the table's ``pay_rest`` cell for an open invoice
    without payments, so an invoice never waits open for a payment of zero."""
    if invoice.amount_remaining:
        return invoice
    settled = transitions.assess(invoice, InvoiceEvent.PAY_REST)
    assert settled.allowed and settled.becomes is not None  # open, no payments: → paid
    return attrs.evolve(invoice, status=settled.becomes)


def _issue_one(
    ctx: EngineContext,
    settings: InvoiceSettings,
    customer_id: str,
    currency: str,
    subscription_ids: Sequence[str],
    now: datetime,
    actor: str,
) -> Invoice | None:
    with ctx.store.session() as s:
        customer = s.get_customer(customer_id)
        if customer is None:
            raise NotFoundError(
                f"no customer {customer_id!r}", field="customer_id", value=customer_id
            )
        today = _today(customer, now)
        invoice_id = ctx.ids("inv")
        lines = s.take_pending_lines(
            subscription_ids, currency=currency, up_to=today, invoice_id=invoice_id
        )
        if not lines:
            return None  # another issuer took them first
        draft = Invoice(
            id=invoice_id,
            customer_id=customer_id,
            currency=currency,
            lines=tuple(lines),
            tax_rates=settings.tax_rates,
            subscription_id=subscription_ids[0] if len(subscription_ids) == 1 else None,
            created_at=now,
            notes=settings.notes,
        )
        invoice = issue(ctx, s, settings, draft, today) if settings.finalize else draft
        s.insert_invoice(invoice)
        ctx.audit(
            s,
            action="invoice.issued" if settings.finalize else "invoice.drafted",
            subject_id=invoice.id,
            actor=actor,
            detail={"number": invoice.number, "lines": len(lines), "customer_id": customer_id},
        )
    return invoice


def _pending_batches(
    ctx: EngineContext, now: datetime, owners: dict[str, str | None]
) -> tuple[dict[tuple[str, str], list[str]], list[tuple[str, str]]]:
    """The pending lines' (customer, currency) -> subscriptions, and the subscriptions that
    belong to no stored subscription (their lines stay pending)."""
    with ctx.store.session() as s:
        groups = s.pending_line_groups(up_to=now.astimezone(_LATEST_ZONE).date())
        for sub_id, _ in groups:
            if sub_id not in owners:
                sub = s.get_subscription(sub_id)
                owners[sub_id] = None if sub is None else sub.customer_id
    batches: dict[tuple[str, str], list[str]] = {}
    orphans: list[tuple[str, str]] = []
    for sub_id, currency in groups:
        owner = owners[sub_id]
        if owner is None:
            orphans.append((sub_id, f"no subscription {sub_id!r}: its lines stay pending"))
        else:
            batches.setdefault((owner, currency), []).append(sub_id)
    return batches, orphans


def issue_due_invoices(
    ctx: EngineContext, settings: InvoiceSettings, *, now: datetime, actor: str
) -> InvoiceRunResult:
    """One invoice per customer and currency with pending lines due by its local date.

    The pending lines are read again every ``_CHUNK`` customers, and each worker starts at its
    own place in the list (from its ``worker_id``), so many issuers at once spread over the
    customers and skip those another one has already invoiced."""
    owners: dict[str, str | None] = {}
    visited: set[tuple[str, str]] = set()
    made: list[Invoice] = []
    skipped: list[tuple[str, str]] = []
    orphans: list[tuple[str, str]] = []
    while True:
        batches, orphans = _pending_batches(ctx, now, owners)
        keys = [k for k in batches if k not in visited]
        if not keys:
            break
        first = zlib.crc32(ctx.worker_id.encode()) % len(keys)
        for customer_id, currency in (keys[first:] + keys[:first])[:_CHUNK]:
            visited.add((customer_id, currency))
            subs = batches[(customer_id, currency)]
            try:
                invoice = retrying(
                    lambda c=customer_id, cur=currency, ss=subs: _issue_one(  # type: ignore[misc]
                        ctx, settings, c, cur, ss, now, actor
                    )
                )
            except BillingError as exc:  # its lines stay pending; the other customers go on
                skipped.append((customer_id, str(exc)))
                continue
            if invoice is None:  # another issuer took the lines first
                continue
            made.append(invoice)
            if invoice.status is not InvoiceStatus.DRAFT:
                ctx.emit(InvoiceIssued(at=now, invoice=invoice))
    return InvoiceRunResult(invoices=tuple(made), skipped=(*skipped, *orphans))


# -- one invoice -------------------------------------------------------------------------------
def _denied(invoice: Invoice, decision: transitions.InvoiceTransition) -> InvoiceResult:
    return InvoiceResult(
        outcome=InvoiceOutcome.DENIED,
        reason=str(decision.reason),
        explanation=decision.explanation,
        invoice_id=invoice.id,
        invoice=invoice,
    )


def finalize(
    ctx: EngineContext, settings: InvoiceSettings, invoice_id: str, *, actor: str
) -> InvoiceResult:
    """A draft becomes open: numbered, its totals computed on the customer's local date."""

    def run() -> InvoiceResult:
        with ctx.store.session() as s:
            draft = _get(s, invoice_id, lock=True)
            decision = transitions.assess(draft, InvoiceEvent.ISSUE)
            if not decision.allowed:
                return _denied(draft, decision)
            customer = s.get_customer(draft.customer_id)
            today = _today(customer, ctx.now()) if customer else ctx.now().astimezone(UTC).date()
            invoice = issue(ctx, s, settings, draft, today)
            s.update_invoice(invoice)
            ctx.audit(
                s,
                action="invoice.issued",
                subject_id=invoice.id,
                actor=actor,
                detail={"number": invoice.number},
            )
        return InvoiceResult(
            outcome=InvoiceOutcome.ISSUED,
            invoice_id=invoice.id,
            invoice=invoice,
            explanation=f"Invoice {invoice.number} issued: {invoice.totals and invoice.totals.explanation}",
        )

    result = retrying(run)
    if result.outcome is InvoiceOutcome.ISSUED and result.invoice is not None:
        ctx.emit(InvoiceIssued(at=ctx.now(), invoice=result.invoice))
    return result


def _give_back_credit(s: StoreSession, invoice: Invoice) -> Money:
    """Return to each memo what ``invoice`` drew from it (its draw leaves ``applied``), in
    session ``s``; answers the total given back. Stripe and Kill Bill do the same: a void
    invoice keeps none of the customer's credit."""
    returned = Money.zero(invoice.currency)
    if invoice.totals is None or not invoice.totals.credit_applied:
        return returned
    for memo in s.list_credit_memos(customer_id=invoice.customer_id, lock=True):
        drawn = [amount for iid, amount in memo.applied if iid == invoice.id]
        if not drawn:
            continue
        amount = sum(drawn, Money.zero(memo.currency))
        kept = tuple((iid, a) for iid, a in memo.applied if iid != invoice.id)
        s.put_credit_memo(attrs.evolve(memo, remaining=memo.remaining + amount, applied=kept))
        returned += amount
    return returned


def void_invoice(ctx: EngineContext, invoice_id: str, *, actor: str) -> InvoiceResult:
    """Void a draft or an unpaid (or fully refunded) invoice: nothing is owed on it any more.
    Its lines stay on it (they are not billed again); the store credit it drew goes back to the
    memos it came from (coupons it used stay used)."""

    def run() -> InvoiceResult:
        with ctx.store.session() as s:
            invoice = _get(s, invoice_id, lock=True)
            decision = transitions.assess(invoice, InvoiceEvent.VOID)
            if not decision.allowed or decision.becomes is None:
                return _denied(invoice, decision)
            voided = attrs.evolve(invoice, status=decision.becomes)
            returned = _give_back_credit(s, invoice)
            s.update_invoice(voided)
            ctx.audit(
                s,
                action="invoice.voided",
                subject_id=invoice.id,
                actor=actor,
                detail={"credit_returned": unstructure(returned)},
            )
        back = (
            f" {returned} of store credit it drew goes back to the customer's memos."
            if returned
            else ""
        )
        return InvoiceResult(
            outcome=InvoiceOutcome.VOIDED,
            invoice_id=voided.id,
            invoice=voided,
            explanation=decision.explanation + back,
        )

    result = retrying(run)
    if result.outcome is InvoiceOutcome.VOIDED and result.invoice is not None:
        ctx.emit(InvoiceVoided(at=ctx.now(), invoice=result.invoice))
    return result
