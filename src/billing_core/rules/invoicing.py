"""Invoice totals: subtotal, coupons, tax or exemption, store credit, amount due (SPEC 6.2).

``total(lines, *, coupons=(), tax_rates=(), exemption=None, on=None, credit=None)``:

1. **Subtotal**: the sum of the lines' amounts, all in one currency (else
   ``CurrencyMismatchError``). Lines are rounded charges; a credit line may be negative, but the
   subtotal may not (bad input: turn the excess into a credit memo instead).
2. **Coupons**, in the order given, each on what is left after the earlier ones: ``percent_off``
   takes that share of it, rounded half-up once; ``amount_off`` takes its amount, capped at what
   is left. Nothing is ever discounted below zero. ``discount`` is their sum. ``line_discounts``
   spreads it over the lines in proportion to their (positive) amounts by largest remainder
   (``Money.allocate``), so the parts sum exactly to ``discount``; credit lines get none.
3. **Tax** on ``subtotal − discount``, once per rate (``billing_core.rules.tax.taxes``), or zero
   when ``exemption`` is valid on ``on`` (required whenever ``exemption`` is given).
4. ``total = subtotal − discount + tax``.
5. **Credit** (store credit from credit memos) after tax: ``credit_applied = min(credit,
   total)``, ``amount_due = total − credit_applied``. Which memos it is drawn from, oldest first,
   is ``billing_core.rules.credit.consume_credit``.

The answer is an ``InvoiceTotals`` (a value kept on the invoice) whose ``explanation`` shows each
step with its figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import TypeVar

from ..errors import CurrencyMismatchError, InvalidAmountError, InvalidTypeError, InvalidValueError
from ..invoices import Coupon, InvoiceTotals, TaxExemption, TaxRate
from ..model import InvoiceLine
from ..money import Money
from .tax import taxes

__all__ = ["apply_coupons", "check_items", "total"]


T = TypeVar("T")


def check_items(
    values: Iterable[object], kind: type[T], *, field: str, money: str
) -> tuple[tuple[T, ...], str]:
    """``values`` as a non-empty tuple of ``kind`` whose ``money`` attribute shares one
    currency, and that currency; raises naming ``field[i]`` (used for lines and memo items)."""
    checked = tuple(values)
    if not checked:
        raise InvalidValueError(f"must hold at least one {kind.__name__}", field=field, value=[])
    currency = ""
    for i, value in enumerate(checked):
        if not isinstance(value, kind):
            raise InvalidTypeError(
                f"must be a {kind.__name__}, not {type(value).__name__}",
                field=f"{field}[{i}]",
                value=value,
            )
        amount = getattr(value, money)
        currency = currency or amount.currency
        if amount.currency != currency:
            raise CurrencyMismatchError(
                f"must be in {currency} like the first one, not {amount.currency}",
                field=f"{field}[{i}].{money}",
                value=amount,
            )
    return checked, currency  # type: ignore[return-value]  # every value checked to be a T


def _check_lines(lines: Iterable[InvoiceLine]) -> tuple[InvoiceLine, ...]:
    checked, _ = check_items(lines, InvoiceLine, field="lines", money="amount")
    for i, line in enumerate(checked):
        if not line.amount.is_rounded:
            raise InvalidAmountError(
                f"must be a rounded charge, not {line.amount.amount}",
                field=f"lines[{i}].amount",
                value=line.amount,
            )
    return checked


def apply_coupons(subtotal: Money, coupons: Iterable[Coupon]) -> tuple[tuple[Money, ...], str]:
    """Each coupon's discount on what the earlier ones left of ``subtotal``, and the steps.

    ``Coupon(percent_off=20)`` then ``Coupon(amount_off=12.00)`` on 100.00 take 20.00 then
    12.00; in the other order 12.00 then 17.60.
    """
    left = subtotal
    taken: list[Money] = []
    steps: list[str] = []
    for i, coupon in enumerate(coupons):
        if not isinstance(coupon, Coupon):
            raise InvalidTypeError(
                f"must be a Coupon, not {type(coupon).__name__}",
                field=f"coupons[{i}]",
                value=coupon,
            )
        if coupon.amount_off is not None:
            if coupon.amount_off.currency != subtotal.currency:
                raise CurrencyMismatchError(
                    f"must be in the invoice's currency {subtotal.currency}",
                    field=f"coupons[{i}].amount_off",
                    value=coupon.amount_off,
                )
            off = min(coupon.amount_off, left)
            capped = " (capped at what is left)" if off < coupon.amount_off else ""
            steps.append(f"{coupon.describe()} on {left}: -{off}{capped}.")
        else:
            assert coupon.percent_off is not None
            off = left.scale(Fraction(coupon.percent_off) / 100)
            steps.append(f"{coupon.describe()} of {left}: -{off}.")
        taken.append(off)
        left -= off
    return tuple(taken), " ".join(steps)


def _spread(discount: Money, lines: Sequence[InvoiceLine]) -> tuple[Money, ...]:
    weights = [line.amount.amount if line.amount.amount > 0 else Decimal(0) for line in lines]
    if not discount or not any(weights):
        return tuple(Money.zero(discount.currency) for _ in lines)
    return discount.allocate(weights)


def _check_credit(credit: object, currency: str) -> Money:
    if not isinstance(credit, Money):
        raise InvalidTypeError(
            f"must be Money, not {type(credit).__name__}", field="credit", value=credit
        )
    if credit.currency != currency:
        raise CurrencyMismatchError(
            f"must be in the invoice's currency {currency}", field="credit", value=credit
        )
    if credit.amount < 0:
        raise InvalidAmountError("must not be negative", field="credit", value=credit)
    if not credit.is_rounded:
        raise InvalidAmountError(
            f"must be whole minor units, not {credit.amount}", field="credit", value=credit
        )
    return credit


def total(
    lines: Iterable[InvoiceLine],
    *,
    coupons: Iterable[Coupon] = (),
    tax_rates: Iterable[TaxRate] = (),
    exemption: TaxExemption | None = None,
    on: date | None = None,
    credit: Money | None = None,
) -> InvoiceTotals:
    """The invoice's figures, step by step (see the module docstring).

    Lines of 100.00 EUR with a 10.00 EUR coupon and 20% VAT: discount 10.00, tax 18.00,
    total 108.00.
    """
    checked = _check_lines(lines)
    currency = checked[0].amount.currency
    zero = Money.zero(currency)
    subtotal = sum((line.amount for line in checked), zero)
    if subtotal.amount < 0:
        raise InvalidAmountError(
            f"must not sum to less than zero ({subtotal}); give the excess as a credit memo",
            field="lines",
            value=subtotal,
        )
    steps = [f"Subtotal {subtotal} ({len(checked)} line{'' if len(checked) == 1 else 's'})."]
    coupon_discounts, coupon_text = apply_coupons(subtotal, coupons)
    discount = sum(coupon_discounts, zero)
    if coupon_text:
        steps.append(coupon_text)
        steps.append(f"Discount {discount}, leaving {subtotal - discount}.")
    tax = taxes(subtotal - discount, tax_rates, exemption=exemption, on=on)
    steps.append(tax.explanation)
    grand_total = subtotal - discount + tax.tax
    steps.append(f"Total {grand_total}.")
    applied = zero
    if credit is not None:
        credit = _check_credit(credit, currency)
        applied = min(credit, grand_total)
        steps.append(f"Credit applied {applied} of the {credit} available.")
    amount_due = grand_total - applied
    steps.append(f"Amount due {amount_due}.")
    return InvoiceTotals(
        subtotal=subtotal,
        discount=discount,
        tax=tax.tax,
        total=grand_total,
        credit_applied=applied,
        amount_due=amount_due,
        line_discounts=_spread(discount, checked),
        coupon_discounts=coupon_discounts,
        tax_amounts=tax.amounts,
        exempt=tax.exempt,
        exempted_by=tax.exempted_by,
        explanation=" ".join(steps),
    )
