"""Credit memos, coupon redemptions and tax profiles behind ``BillingEngine``'s calls.

* ``create_credit_memo``: items of ``quantity × unit_price`` plus tax (``rules.credit``), a
  reason, optionally against an invoice of the customer (then capped at what that invoice can
  still credit: its total less earlier memos against it and refunds). The memo's total becomes
  store credit that upcoming invoices draw after tax, oldest memo first, in their currency only
  (``invoice_flows.issue``). It never moves money at a gateway. Memos are numbered with the
  settings' ``memo_prefix`` (their own gapless sequence).
* ``redeem_coupon``: on the account (every upcoming invoice while the coupon lasts) or on one
  draft invoice; ``max_redemptions`` and ``redeem_by`` are checked by ``rules.coupons`` while the
  coupon's redemption counter row is held, so concurrent redemptions never exceed the limit.
* ``set_tax_profile``: the customer's tax ids and exemption documents.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import CurrencyMismatchError, InvalidTypeError, InvalidValueError, NotFoundError
from ..invoices import Coupon, CreditMemoItem, InvoiceStatus, TaxExemption
from ..money import Money
from ..plugins._store_invoice_common import format_number
from ..plugins.events import CreditMemoCreated
from ..plugins.protocols import StoreSession
from ..plugins.records import CouponRedemption, CreditMemo, TaxProfile
from ..rules import coupons as coupon_rules
from ..rules import credit as credit_rules
from ..serialization import unstructure
from ..timeutil import local_date
from ..timeutil import timezone as zone
from .context import EngineContext
from .invoice_flows import InvoiceSettings, retrying, with_refunds
from .invoice_results import CouponOutcome, CouponResult, CreditMemoResult, CreditOutcome

__all__ = ["create_credit_memo", "redeem_coupon", "set_tax_profile", "tax_profile"]


def _customer_exists(s: StoreSession, customer_id: str) -> str:
    customer = s.get_customer(customer_id)
    if customer is None:
        raise NotFoundError(f"no customer {customer_id!r}", field="customer_id", value=customer_id)
    return customer.timezone


def create_credit_memo(
    ctx: EngineContext,
    settings: InvoiceSettings,
    customer_id: str,
    items: Sequence[CreditMemoItem],
    *,
    reason: str,
    invoice_id: str | None,
    actor: str,
) -> CreditMemoResult:
    """Store a credit memo and add its total to the customer's store credit."""
    now = ctx.now()

    def run() -> CreditMemoResult:
        with ctx.store.session() as s:
            _customer_exists(s, customer_id)
            cap: Money | None = None
            if invoice_id is not None:
                invoice = s.get_invoice(invoice_id, lock=True)
                if invoice is None or invoice.customer_id != customer_id:
                    raise NotFoundError(
                        f"no invoice {invoice_id!r} of customer {customer_id!r}",
                        field="invoice_id",
                        value=invoice_id,
                    )
                invoice = with_refunds(s, invoice)
                earlier = [
                    m
                    for m in s.list_credit_memos(customer_id=customer_id)
                    if m.invoice_id == invoice.id
                ]
                credited = sum((m.total for m in earlier), Money.zero(invoice.currency))
                cap = credit_rules.creditable(invoice, credited=credited)
                first = items[0] if items else None
                if isinstance(first, CreditMemoItem) and first.unit_price.currency != (
                    invoice.currency
                ):
                    raise CurrencyMismatchError(
                        f"must be in the invoice's currency {invoice.currency}",
                        field="items[0].unit_price",
                        value=first.unit_price,
                    )
            decision = credit_rules.assess_credit_memo(items, creditable=cap)
            if not decision.allowed:
                return CreditMemoResult(
                    outcome=CreditOutcome.DENIED,
                    reason=str(decision.reason),
                    explanation=decision.explanation,
                )
            n = s.next_invoice_number(settings.memo_prefix)
            memo = CreditMemo(
                id=ctx.ids("cm"),
                customer_id=customer_id,
                number=format_number(settings.memo_prefix, n),
                items=tuple(items),
                total=decision.total,
                remaining=decision.total,
                created_at=now,
                reason=reason,
                invoice_id=invoice_id,
                explanation=decision.explanation,
            )
            s.put_credit_memo(memo)
            ctx.audit(
                s,
                action="credit_memo.created",
                subject_id=memo.id,
                actor=actor,
                detail={"total": unstructure(memo.total), "invoice_id": invoice_id},
            )
        return CreditMemoResult(
            outcome=CreditOutcome.CREATED,
            memo=memo,
            explanation=f"Credit memo {memo.number}: {decision.explanation} It is store credit "
            "for upcoming invoices in the same currency, oldest memo first; no money moved.",
        )

    result = retrying(run)
    if result.memo is not None:
        ctx.emit(CreditMemoCreated(at=now, memo=result.memo))
    return result


def redeem_coupon(
    ctx: EngineContext,
    customer_id: str,
    coupon: Coupon,
    *,
    invoice_id: str | None,
    actor: str,
) -> CouponResult:
    """Redeem ``coupon`` for the customer's upcoming invoices, or for one draft invoice."""
    if not isinstance(coupon, Coupon):
        raise InvalidTypeError(
            f"must be a Coupon, not {type(coupon).__name__}", field="coupon", value=coupon
        )
    now = ctx.now()

    def run() -> CouponResult:
        with ctx.store.session() as s:
            today = local_date(now, zone(_customer_exists(s, customer_id)))
            if invoice_id is not None:
                invoice = s.get_invoice(invoice_id, lock=True)
                if invoice is None or invoice.customer_id != customer_id:
                    raise NotFoundError(
                        f"no invoice {invoice_id!r} of customer {customer_id!r}",
                        field="invoice_id",
                        value=invoice_id,
                    )
                if invoice.status is not InvoiceStatus.DRAFT:
                    raise InvalidValueError(
                        f"is {invoice.status.value}: a coupon is redeemed on a draft invoice "
                        "(or on the account, for the upcoming ones)",
                        field="invoice_id",
                        value=invoice_id,
                    )
                off = coupon.amount_off
                if off is not None and off.currency != invoice.currency:
                    raise CurrencyMismatchError(
                        f"must be in the invoice's currency {invoice.currency}",
                        field="coupon.amount_off",
                        value=off,
                    )
            # the coupon's counter row serializes its redemptions until this session ends
            s.next_invoice_number(f"coupon:{coupon.id}")
            count = len(s.list_coupon_redemptions(coupon_id=coupon.id))
            decision = coupon_rules.assess_redemption(coupon, today=today, redemptions=count)
            if not decision.allowed:
                return CouponResult(
                    outcome=CouponOutcome.DENIED,
                    reason=str(decision.reason),
                    explanation=decision.explanation,
                )
            redemption = CouponRedemption(
                id=ctx.ids("cr"),
                coupon=coupon,
                customer_id=customer_id,
                redeemed_at=now,
                invoice_id=invoice_id,
            )
            s.put_coupon_redemption(redemption)
            ctx.audit(
                s,
                action="coupon.redeemed",
                subject_id=customer_id,
                actor=actor,
                detail={"coupon_id": coupon.id, "invoice_id": invoice_id},
            )
        where = f"invoice {invoice_id}" if invoice_id else "the account's upcoming invoices"
        return CouponResult(
            outcome=CouponOutcome.REDEEMED,
            redemption=redemption,
            explanation=f"{coupon.describe()} redeemed for {where}. {decision.explanation}",
        )

    return retrying(run)


def tax_profile(
    customer_id: str, *, tax_ids: Sequence[str], exemptions: Sequence[TaxExemption]
) -> TaxProfile:
    """A checked ``TaxProfile`` (bad input raises naming the field)."""
    for field, values in (("tax_ids", tax_ids), ("exemptions", exemptions)):
        if isinstance(values, str) or not isinstance(values, Sequence):
            raise InvalidTypeError("must be a sequence", field=field, value=values)
    for i, tax_id in enumerate(tax_ids):
        if not isinstance(tax_id, str) or not tax_id:
            raise InvalidTypeError("must be a non-empty str", field=f"tax_ids[{i}]", value=tax_id)
    for i, document in enumerate(exemptions):
        if not isinstance(document, TaxExemption):
            raise InvalidTypeError(
                "must be a TaxExemption", field=f"exemptions[{i}]", value=document
            )
    return TaxProfile(customer_id=customer_id, tax_ids=tax_ids, exemptions=exemptions)


def set_tax_profile(ctx: EngineContext, profile: TaxProfile, *, actor: str) -> None:
    """Replace the customer's tax ids and exemption documents (oldest document first)."""
    with ctx.store.session() as s:
        _customer_exists(s, profile.customer_id)
        s.put_tax_profile(profile)
        ctx.audit(
            s,
            action="tax_profile.set",
            subject_id=profile.customer_id,
            actor=actor,
            detail={"profile": unstructure(profile)},
        )
