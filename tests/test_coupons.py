"""Coupon redemption limits and expiry, durations, and the once amount_off remainder."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import (
    Coupon,
    CouponDuration,
    CurrencyMismatchError,
    InvalidAmountError,
    InvalidTypeError,
    InvoiceLine,
    Money,
)
from billing_core.rules import coupons, invoicing
from billing_core.rules.coupons import CouponReason, next_application, remaining_amount

EUR = "EUR"
LIMITED = Coupon(id="launch", percent_off=10, max_redemptions=2, redeem_by=date(2026, 12, 31))


def test_redeemable_through_redeem_by_and_below_the_limit() -> None:
    d = coupons.assess_redemption(LIMITED, today=date(2026, 12, 31), redemptions=1)
    assert d.allowed
    assert d.explanation == (
        "Coupon launch (10% off) can be redeemed on 2026-12-31 (0 redemption(s) left after this)."
    )
    late = coupons.assess_redemption(LIMITED, today=date(2027, 1, 1))
    assert late.reason is CouponReason.COUPON_EXPIRED
    assert (
        late.explanation == "Coupon launch could be redeemed until 2026-12-31; today is 2027-01-01."
    )
    full = coupons.assess_redemption(LIMITED, today=date(2026, 6, 1), redemptions=2)
    assert full.reason is CouponReason.REDEMPTION_LIMIT_REACHED
    assert full.explanation == (
        "Coupon launch may be redeemed 2 times and has been redeemed 2 times."
    )
    assert coupons.assess_redemption(Coupon(id="x", percent_off=5), today=date(2099, 1, 1)).allowed


def test_redemption_bad_input() -> None:
    with pytest.raises(InvalidAmountError, match=r"@ \$\.redemptions"):
        coupons.assess_redemption(LIMITED, today=date(2026, 1, 1), redemptions=-1)
    with pytest.raises(InvalidTypeError, match=r"@ \$\.today"):
        coupons.assess_redemption(LIMITED, today="2026-01-01")  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match=r"@ \$\.coupon"):
        coupons.assess_redemption("launch", today=date(2026, 1, 1))  # type: ignore[arg-type]


def test_once_amount_off_keeps_its_remainder_like_lago() -> None:
    """getlago/lago-api spec/services/credits/applied_coupon_service_spec.rb: a 0.12 coupon on a
    0.10 invoice takes 0.10 and is not terminated; the next invoice gets the remaining 0.02."""
    coupon = Coupon(id="c", amount_off=Money("0.12", EUR))
    first = next_application(coupon)
    assert first.coupon == coupon
    invoice = invoicing.total(
        [InvoiceLine(description="x", amount=Money("0.10", EUR))], coupons=[coupon]
    )
    used = invoice.discount
    assert used == Money("0.10", EUR)
    assert remaining_amount(coupon, amount_used=used) == Money("0.02", EUR)
    second = next_application(coupon, periods_applied=1, amount_used=used)
    assert second.coupon is not None
    assert second.coupon.amount_off == Money("0.02", EUR)
    assert second.explanation == (
        "Coupon c (0.12 EUR off) keeps 0.02 EUR of its 0.12 EUR for this invoice "
        "(0.10 EUR used on earlier invoices)."
    )
    done = next_application(coupon, periods_applied=2, amount_used=Money("0.12", EUR))
    assert done.finished
    assert done.explanation == "Coupon c (0.12 EUR off) has been used up (0.12 EUR taken)."


def test_lago_recurring_coupon_counts_down_its_periods() -> None:
    """applied_coupon_service_spec.rb: a recurring coupon of 3 periods has 2 left after one."""
    coupon = Coupon(id="r", percent_off=Decimal("20"), duration="repeating", duration_periods=3)
    assert next_application(coupon, periods_applied=0).explanation == (
        "Coupon r (20% off) applies to this invoice: billing period 1 of 3."
    )
    assert next_application(coupon, periods_applied=2).coupon == coupon
    assert next_application(coupon, periods_applied=3).finished


def test_once_percent_and_forever() -> None:
    once = Coupon(id="o", percent_off=50)
    assert next_application(once).coupon == once
    assert next_application(once, periods_applied=1).finished
    forever = Coupon(id="f", amount_off=Money("5.00", EUR), duration=CouponDuration.FOREVER)
    assert next_application(forever, periods_applied=1000).coupon == forever
    # a repeating amount_off coupon applies in full each period; nothing carries over
    rep = Coupon(id="r", amount_off=Money("5.00", EUR), duration="repeating", duration_periods=2)
    assert next_application(rep, periods_applied=1, amount_used=Money("1.00", EUR)).coupon == rep


def test_remainder_bad_input() -> None:
    coupon = Coupon(id="c", amount_off=Money("12.00", EUR))
    with pytest.raises(CurrencyMismatchError, match=r"@ \$\.amount_used"):
        remaining_amount(coupon, amount_used=Money("1.00", "USD"))
    with pytest.raises(InvalidAmountError, match=r"@ \$\.amount_used"):
        remaining_amount(coupon, amount_used=Money("-1.00", EUR))
    with pytest.raises(InvalidTypeError, match=r"@ \$\.amount_used"):
        remaining_amount(coupon, amount_used="1.00")  # type: ignore[arg-type]
    with pytest.raises(InvalidAmountError, match=r"@ \$\.coupon"):
        remaining_amount(Coupon(id="p", percent_off=5))
    with pytest.raises(InvalidAmountError, match=r"@ \$\.periods_applied"):
        next_application(coupon, periods_applied=-1)


@given(
    st.integers(1, 10**6),
    st.lists(st.integers(0, 10**6), min_size=1, max_size=8),
)
def test_a_once_amount_off_never_gives_more_than_its_amount(
    amount_units: int, invoice_units: list[int]
) -> None:
    """Across any run of invoices, the discounts sum to at most the coupon's amount, and to
    exactly it once the invoices were large enough."""
    full = Money.from_minor_units(amount_units, EUR)
    coupon = Coupon(id="c", amount_off=full)
    used = Money.zero(EUR)
    for n, units in enumerate(invoice_units):
        step = next_application(coupon, periods_applied=n, amount_used=used)
        if step.coupon is None:
            assert used == full
            break
        line = InvoiceLine(description="x", amount=Money.from_minor_units(units, EUR))
        used += invoicing.total([line], coupons=[step.coupon]).discount
        assert used <= full
    if sum(invoice_units) >= amount_units:
        assert used == full
    else:
        assert used == Money.from_minor_units(sum(invoice_units), EUR)


@given(st.integers(1, 24), st.integers(0, 30))
def test_repeating_coupons_apply_exactly_n_times(periods: int, applied: int) -> None:
    coupon = Coupon(id="r", percent_off=5, duration="repeating", duration_periods=periods)
    assert next_application(coupon, periods_applied=applied).finished is (applied >= periods)


@given(st.integers(0, 5), st.dates(), st.none() | st.integers(1, 5), st.none() | st.dates())
def test_redemption_is_allowed_exactly_within_limit_and_date(
    redemptions: int, today: date, limit: int | None, redeem_by: date | None
) -> None:
    coupon = Coupon(id="c", percent_off=5, max_redemptions=limit, redeem_by=redeem_by)
    d = coupons.assess_redemption(coupon, today=today, redemptions=redemptions)
    expected = (redeem_by is None or today <= redeem_by) and (limit is None or redemptions < limit)
    assert d.allowed is expected
