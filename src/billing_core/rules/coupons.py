"""Coupon redemption and duration: may it be redeemed, and what does it take off the next invoice.

* **Redemption.** A coupon may be redeemed (on an order or on the account) through its
  ``redeem_by`` date, inclusive, and while it has been redeemed fewer than ``max_redemptions``
  times. Otherwise the answer is a denial: ``coupon_expired`` or ``redemption_limit_reached``.
* **Duration.** Once redeemed, a coupon discounts:

  - ``once``: the first invoice after redemption. A ``percent_off`` coupon is then used up. An
    ``amount_off`` coupon that was larger than that invoice **keeps its unused remainder** for
    the next invoices until it is used up (Lago's rule; Stripe drops the remainder): 12.00 off a
    10.00 invoice takes 10.00 and leaves 2.00 for the next one.
  - ``repeating``: the first ``duration_periods`` invoices (billing periods), in full each time;
    an unused part of an ``amount_off`` does not carry over.
  - ``forever``: every invoice.

:func:`next_application` turns a redemption's history (invoices discounted so far, amount taken
so far) into the ``Coupon`` to pass to ``invoicing.total`` for the next invoice, or ``None``.
"""

from __future__ import annotations

from datetime import date

import attrs

from ..decisions import Decision, Reason
from ..errors import CurrencyMismatchError, InvalidAmountError, InvalidTypeError
from ..invoices import Coupon, CouponDuration
from ..model import _count
from ..money import Money
from ..timeutil import require_date

__all__ = [
    "CouponApplication",
    "CouponReason",
    "RedemptionDecision",
    "assess_redemption",
    "next_application",
    "remaining_amount",
]


class CouponReason(Reason):
    """Why a coupon cannot be redeemed."""

    COUPON_EXPIRED = "coupon_expired"
    REDEMPTION_LIMIT_REACHED = "redemption_limit_reached"


@attrs.frozen(kw_only=True)
class RedemptionDecision(Decision):
    """The answer of :func:`assess_redemption`."""

    reason: CouponReason | None = None
    coupon: Coupon


def _check_coupon(coupon: object) -> Coupon:
    if not isinstance(coupon, Coupon):
        raise InvalidTypeError(
            f"must be a Coupon, not {type(coupon).__name__}", field="coupon", value=coupon
        )
    return coupon


def assess_redemption(coupon: Coupon, *, today: date, redemptions: int = 0) -> RedemptionDecision:
    """May ``coupon`` be redeemed on ``today``, after ``redemptions`` earlier redemptions?"""
    _check_coupon(coupon)
    require_date(today, "today")
    _count("redemptions", redemptions)
    if coupon.redeem_by is not None and today > coupon.redeem_by:
        return RedemptionDecision(
            allowed=False,
            reason=CouponReason.COUPON_EXPIRED,
            coupon=coupon,
            explanation=(
                f"Coupon {coupon.id} could be redeemed until {coupon.redeem_by.isoformat()}; "
                f"today is {today.isoformat()}."
            ),
        )
    limit = coupon.max_redemptions
    if limit is not None and redemptions >= limit:
        return RedemptionDecision(
            allowed=False,
            reason=CouponReason.REDEMPTION_LIMIT_REACHED,
            coupon=coupon,
            explanation=(
                f"Coupon {coupon.id} may be redeemed {limit} time{'' if limit == 1 else 's'} "
                f"and has been redeemed {redemptions} time{'' if redemptions == 1 else 's'}."
            ),
        )
    left = "" if limit is None else f" ({limit - redemptions - 1} redemption(s) left after this)"
    return RedemptionDecision(
        allowed=True,
        coupon=coupon,
        explanation=f"{coupon.describe()} can be redeemed on {today.isoformat()}{left}.",
    )


def _check_used(coupon: Coupon, amount_used: object) -> Money:
    assert coupon.amount_off is not None
    if amount_used is None:
        return Money.zero(coupon.amount_off.currency)
    if not isinstance(amount_used, Money):
        raise InvalidTypeError(
            f"must be Money, not {type(amount_used).__name__}",
            field="amount_used",
            value=amount_used,
        )
    if amount_used.currency != coupon.amount_off.currency:
        raise CurrencyMismatchError(
            f"must be in the coupon's currency {coupon.amount_off.currency}",
            field="amount_used",
            value=amount_used,
        )
    if amount_used.amount < 0:
        raise InvalidAmountError("must not be negative", field="amount_used", value=amount_used)
    return amount_used


def remaining_amount(coupon: Coupon, *, amount_used: Money | None = None) -> Money:
    """What a ``once`` ``amount_off`` coupon has left after taking ``amount_used`` so far.

    >>> from billing_core import Money
    >>> remaining_amount(Coupon(id="c", amount_off=Money("0.12", "EUR")),
    ...                  amount_used=Money("0.10", "EUR"))
    Money('0.02', 'EUR')
    """
    _check_coupon(coupon)
    if coupon.amount_off is None or coupon.duration is not CouponDuration.ONCE:
        raise InvalidAmountError(
            "only a once amount_off coupon keeps a remainder", field="coupon", value=coupon
        )
    used = _check_used(coupon, amount_used)
    return max(coupon.amount_off - used, Money.zero(used.currency))


@attrs.frozen(kw_only=True)
class CouponApplication:
    """The coupon to apply to the next invoice (``None`` when it is used up), and why."""

    coupon: Coupon | None
    explanation: str

    @property
    def finished(self) -> bool:
        return self.coupon is None


def next_application(
    coupon: Coupon, *, periods_applied: int = 0, amount_used: Money | None = None
) -> CouponApplication:
    """The coupon for the next invoice, after ``periods_applied`` discounted invoices and
    ``amount_used`` taken so far (only read for a ``once`` ``amount_off`` coupon)."""
    _check_coupon(coupon)
    _count("periods_applied", periods_applied)
    name = coupon.describe()
    if coupon.duration is CouponDuration.FOREVER:
        return CouponApplication(coupon=coupon, explanation=f"{name} applies to every invoice.")
    if coupon.duration is CouponDuration.REPEATING:
        assert coupon.duration_periods is not None
        left = coupon.duration_periods - periods_applied
        if left <= 0:
            return CouponApplication(
                coupon=None,
                explanation=(
                    f"{name} applied to its {coupon.duration_periods} billing period(s) already."
                ),
            )
        return CouponApplication(
            coupon=coupon,
            explanation=(
                f"{name} applies to this invoice: billing period {periods_applied + 1} "
                f"of {coupon.duration_periods}."
            ),
        )
    if coupon.amount_off is None:
        if periods_applied:
            return CouponApplication(coupon=None, explanation=f"{name} was used once already.")
        return CouponApplication(coupon=coupon, explanation=f"{name} applies to this invoice once.")
    remaining = remaining_amount(coupon, amount_used=amount_used)
    if not remaining:
        return CouponApplication(
            coupon=None, explanation=f"{name} has been used up ({coupon.amount_off} taken)."
        )
    if remaining == coupon.amount_off:
        return CouponApplication(coupon=coupon, explanation=f"{name} applies to this invoice.")
    return CouponApplication(
        coupon=attrs.evolve(coupon, amount_off=remaining),
        explanation=(
            f"{name} keeps {remaining} of its {coupon.amount_off} for this invoice "
            f"({amount_used} used on earlier invoices)."
        ),
    )
