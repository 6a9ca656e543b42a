"""What the invoice flows answer (``engine.invoices``), in the one result family of
``engine.results``: ``outcome``, ``reason`` (a stable code when refused), ``explanation``."""

from __future__ import annotations

import enum
from collections.abc import Callable

import attrs

from ..decisions import Decision
from ..invoices import Invoice
from ..money import Money
from ..plugins.records import CouponRedemption, CreditMemo, TaxProfile
from .results import JobOutcome

__all__ = [
    "CouponOutcome",
    "CouponResult",
    "CreditMemoResult",
    "CreditOutcome",
    "InvoiceOutcome",
    "InvoiceResult",
    "InvoiceRunResult",
    "TaxProfileOutcome",
    "TaxProfileResult",
    "denied_on",
]


class InvoiceOutcome(enum.StrEnum):
    """How a call on one invoice ended."""

    ISSUED = "issued"  # numbered and open (or paid: nothing was due)
    DRAFTED = "drafted"  # a draft, to be finalized
    EDITED = "edited"  # a draft's lines or notes were changed
    PAID = "paid"  # a payment paid what was left
    PARTIALLY_PAID = "partially_paid"  # a payment paid part of it
    VOIDED = "voided"
    UNCOLLECTIBLE = "uncollectible"  # written off: nothing collects it, a late payment is taken
    DENIED = "denied"  # the transition table (or a guard) said no; ``reason`` says why
    DECLINED = "declined"  # the gateway declined the payment: nothing recorded
    FAILED = "failed"  # the payment was not sent: nothing happened, ask again
    UNKNOWN = "unknown"  # the payment's fate is unknown: reconcile, then record it again


@attrs.frozen(kw_only=True)
class InvoiceResult:
    """One invoice call: the invoice as now stored (``None`` when denied before reading it)."""

    outcome: InvoiceOutcome
    explanation: str
    invoice_id: str | None = None
    invoice: Invoice | None = None
    transaction_id: str | None = None
    amount: Money | None = None
    reason: str | None = None


def denied_on(invoice_id: str) -> Callable[[Decision], InvoiceResult]:
    """The guard path's answer to a refused call on ``invoice_id``: ``denied`` with the
    decision's reason and sentence."""
    return lambda d: InvoiceResult(
        outcome=InvoiceOutcome.DENIED,
        reason=str(d.reason),
        explanation=d.explanation,
        invoice_id=invoice_id,
    )


def _run_explanation(r: InvoiceRunResult) -> str:
    if r.outcome is JobOutcome.DENIED:
        return "No invoice was issued."
    numbers = ", ".join(i.number or i.id for i in r.invoices)
    text = f"{len(r.invoices)} invoice(s) made" + (f" ({numbers})" if numbers else "")
    if r.skipped:
        text += f"; {len(r.skipped)} left pending: " + "; ".join(f"{c}: {e}" for c, e in r.skipped)
    return text + "."


@attrs.frozen(kw_only=True)
class InvoiceRunResult:
    """One pass of ``issue_due_invoices``: the invoices it made, and the customers whose lines
    stayed pending with the error that kept them (``skipped``: (customer or subscription id,
    error))."""

    invoices: tuple[Invoice, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    outcome: JobOutcome = JobOutcome.DONE
    reason: str | None = None
    explanation: str = attrs.field(default=attrs.Factory(_run_explanation, takes_self=True))


class CreditOutcome(enum.StrEnum):
    CREATED = "created"
    DENIED = "denied"


@attrs.frozen(kw_only=True)
class CreditMemoResult:
    """``create_credit_memo``: the stored memo, or the denial (``exceeds_creditable``, ...)."""

    outcome: CreditOutcome
    explanation: str
    memo: CreditMemo | None = None
    reason: str | None = None


class CouponOutcome(enum.StrEnum):
    REDEEMED = "redeemed"
    DENIED = "denied"


@attrs.frozen(kw_only=True)
class CouponResult:
    """``redeem_coupon``: the stored redemption, or the denial (``coupon_expired``, ...)."""

    outcome: CouponOutcome
    explanation: str
    redemption: CouponRedemption | None = None
    reason: str | None = None


class TaxProfileOutcome(enum.StrEnum):
    SET = "set"
    DENIED = "denied"


@attrs.frozen(kw_only=True)
class TaxProfileResult:
    """``set_tax_profile``: the stored profile, or the denial."""

    outcome: TaxProfileOutcome
    explanation: str
    profile: TaxProfile | None = None
    reason: str | None = None
