"""Credit memos and store credit: what a memo is worth, and which memos pay an invoice.

A credit memo (seed 003) records an amount owed to the customer as **store credit**, not as a
refund: it never moves money at a gateway. Its items are ``quantity × unit_price`` (rounded once
per item, half-up) plus the item's tax amount; its total is their sum.

* **Against an invoice.** A memo made from an invoice may credit at most what that invoice can
  still credit: its total less what earlier memos credited and what was refunded of it
  (:func:`creditable`; nothing for a draft or a void invoice). A larger memo is denied with
  ``exceeds_creditable``, naming both figures.
* **Consumption.** Store credit pays upcoming invoices after tax (``invoicing.total(credit=)``),
  drawn from the memos **oldest first** (by ``created_at``; ties keep the given order), and only
  from memos in the invoice's currency: a EUR memo never pays a USD invoice.
  :func:`consume_credit` says how much comes from which memo and what each keeps.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from ..decisions import Decision, Reason
from ..errors import CurrencyMismatchError, InvalidAmountError, InvalidTypeError
from ..invoices import CreditMemoBalance, CreditMemoItem, Invoice, InvoiceStatus
from ..money import Money
from .invoicing import check_items

__all__ = [
    "CreditConsumption",
    "CreditMemoDecision",
    "CreditReason",
    "assess_credit_memo",
    "consume_credit",
    "creditable",
]


class CreditReason(Reason):
    """Why a credit memo is refused."""

    EXCEEDS_CREDITABLE = "exceeds_creditable"


@attrs.frozen(kw_only=True)
class CreditMemoDecision(Decision):
    """The answer of :func:`assess_credit_memo`: the memo's figures, or why it is refused."""

    reason: CreditReason | None = None
    subtotal: Money
    tax: Money
    total: Money
    creditable: Money | None = None


def _money_in(value: object, currency: str, field: str) -> Money:
    if not isinstance(value, Money):
        raise InvalidTypeError(
            f"must be Money, not {type(value).__name__}", field=field, value=value
        )
    if value.currency != currency:
        raise CurrencyMismatchError(f"must be in {currency}", field=field, value=value)
    if value.amount < 0:
        raise InvalidAmountError("must not be negative", field=field, value=value)
    return value


def creditable(invoice: Invoice, *, credited: Money | None = None) -> Money:
    """What ``invoice`` can still credit: its total less ``credited`` by earlier memos and less
    what was refunded of it, never below zero. A draft or a void invoice credits nothing (a void
    one is owed nothing and holds no payment)."""
    if not isinstance(invoice, Invoice):
        raise InvalidTypeError(
            f"must be an Invoice, not {type(invoice).__name__}", field="invoice", value=invoice
        )
    zero = Money.zero(invoice.currency)
    done = zero if credited is None else _money_in(credited, invoice.currency, "credited")
    if invoice.totals is None or invoice.status is InvoiceStatus.VOID:
        return zero
    return max(invoice.totals.total - done - invoice.amount_refunded, zero)


def assess_credit_memo(
    items: Iterable[CreditMemoItem], *, creditable: Money | None = None
) -> CreditMemoDecision:
    """The memo's subtotal, tax and total; denied when it exceeds ``creditable`` (the
    invoice's :func:`creditable` amount, for a memo made from an invoice)."""
    checked, currency = check_items(items, CreditMemoItem, field="items", money="unit_price")
    zero = Money.zero(currency)
    subtotal = sum((item.amount for item in checked), zero)
    tax = sum((item.tax_amount for item in checked), zero)
    memo_total = subtotal + tax
    parts = "; ".join(
        f"{item.description or 'item'}: {item.quantity} × {item.unit_price} = {item.amount}"
        + (f" + tax {item.tax_amount}" if item.tax_amount else "")
        for item in checked
    )
    figures = f"{parts}. Credit memo total {subtotal} + tax {tax} = {memo_total}"
    cap = None if creditable is None else _money_in(creditable, currency, "creditable")
    if cap is not None and memo_total > cap:
        return CreditMemoDecision(
            allowed=False,
            reason=CreditReason.EXCEEDS_CREDITABLE,
            subtotal=subtotal,
            tax=tax,
            total=memo_total,
            creditable=cap,
            explanation=f"{figures}, more than the {cap} its invoice can still credit.",
        )
    within = "" if cap is None else f", within the {cap} its invoice can still credit"
    return CreditMemoDecision(
        allowed=True,
        subtotal=subtotal,
        tax=tax,
        total=memo_total,
        creditable=cap,
        explanation=f"{figures}{within}.",
    )


@attrs.frozen(kw_only=True)
class CreditConsumption:
    """Store credit drawn for one invoice: ``applied`` in all, ``draws`` per memo (oldest
    first, only memos that gave something), and every balance afterwards (same order as given)."""

    applied: Money
    draws: tuple[tuple[str, Money], ...]
    balances: tuple[CreditMemoBalance, ...]
    explanation: str


def consume_credit(balances: Iterable[CreditMemoBalance], *, amount: Money) -> CreditConsumption:
    """Draw up to ``amount`` (an invoice's total after tax) from ``balances``, oldest first, in
    ``amount``'s currency only."""
    if not isinstance(amount, Money):
        raise InvalidTypeError(
            f"must be Money, not {type(amount).__name__}", field="amount", value=amount
        )
    if amount.amount < 0:
        raise InvalidAmountError("must not be negative", field="amount", value=amount)
    given = tuple(balances)
    for i, balance in enumerate(given):
        if not isinstance(balance, CreditMemoBalance):
            raise InvalidTypeError(
                f"must be a CreditMemoBalance, not {type(balance).__name__}",
                field=f"balances[{i}]",
                value=balance,
            )
    order = sorted(
        (i for i, b in enumerate(given) if b.remaining.currency == amount.currency),
        key=lambda i: given[i].created_at,
    )
    left = amount.rounded()
    after = list(given)
    draws: list[tuple[str, Money]] = []
    for i in order:
        take = min(given[i].remaining, left)
        if not take:
            continue
        draws.append((given[i].memo_id, take))
        after[i] = attrs.evolve(given[i], remaining=given[i].remaining - take)
        left -= take
    applied = amount.rounded() - left
    skipped = len(given) - len(order)
    steps = [f"{memo} gives {take}" for memo, take in draws]
    text = (
        f"Store credit applied {applied} of {amount.rounded()}"
        + (f" ({', '.join(steps)}, oldest first)" if steps else " (no credit in this currency)")
        + "."
    )
    if skipped:
        text += f" {skipped} memo(s) in other currencies left untouched."
    return CreditConsumption(
        applied=applied, draws=tuple(draws), balances=tuple(after), explanation=text
    )
