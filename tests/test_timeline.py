"""rules.timeline.bills: SPEC 6.1 worked examples (exact figures) and bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_core import BillingTiming, InvoiceLineKind, Money, Period, Plan, Trial
from billing_core.errors import (
    BillingError,
    CurrencyMismatchError,
    InvalidAmountError,
    InvalidTypeError,
    InvalidValueError,
)
from billing_core.rules import metering, timeline
from billing_core.rules.proration import DayCount
from billing_core.rules.timeline import bills, lines_ended, period_at

USD = "USD"
MONTHLY = Plan(price=Money("100.00", USD), period=Period.months(1))


def bad(value: object) -> Any:
    """A value of the wrong type, passed on purpose."""
    return value


def usd(amount: str) -> Money:
    return Money(amount, USD)


def summary(result: tuple[timeline.Bill, ...]) -> list[tuple[date, str]]:
    return [(b.billed_on, str(b.total)) for b in result]


def test_stub_explains_its_figures_12_of_31_days() -> None:
    first, second = bills(
        MONTHLY, start=date(2026, 2, 1), anchor=date(2026, 1, 13), until=date(2026, 2, 13)
    )
    (stub,) = first.lines
    assert stub.kind is InvoiceLineKind.SUBSCRIPTION
    assert (stub.period_start, stub.period_end, stub.amount) == (
        date(2026, 2, 1),
        date(2026, 2, 13),
        usd("38.71"),
    )
    assert "12 of 31 days (Feb 1 to Feb 13) of 100.00 USD = 38.71 USD" in stub.description
    assert (second.billed_on, second.total) == (date(2026, 2, 13), usd("100.00"))
    assert "1 month (Feb 13 to Mar 13) of 100.00 USD = 100.00 USD" in second.explanation


def test_spec_order_trial_setup_fee_and_month_ends() -> None:
    """SPEC 6.1's plan: 599.95 USD monthly, a free 30-day trial, a 5.00 setup fee."""
    plan = Plan(
        price=usd("599.95"),
        period=Period.months(1),
        timing=BillingTiming.IN_ADVANCE,
        trial=Trial(length=Period.days(30), price=usd("0.00")),
        setup_fee=usd("5.00"),
    )
    result = bills(plan, start=date(2024, 1, 1), anchor=date(2024, 1, 31), until=date(2024, 4, 30))
    assert summary(result) == [
        (date(2024, 1, 1), "5.00 USD"),  # setup fee + the free trial's 0.00 line
        (date(2024, 1, 31), "599.95 USD"),  # trial ends Jan 31, on a boundary: no stub
        (date(2024, 2, 29), "599.95 USD"),  # anchored: Feb 29, Mar 31, Apr 30, no drift
        (date(2024, 3, 31), "599.95 USD"),
        (date(2024, 4, 30), "599.95 USD"),
    ]
    setup, trial = result[0].lines
    assert (setup.kind, setup.amount) == (InvoiceLineKind.SETUP_FEE, usd("5.00"))
    assert (trial.kind, trial.amount, trial.period_end) == (
        InvoiceLineKind.TRIAL,
        usd("0.00"),
        date(2024, 1, 31),
    )
    assert "Free trial (30 days, Jan 1 to Jan 31): 0.00 USD" in trial.description


def test_stub_whole_is_the_anchored_period_not_b1_minus_a_period() -> None:
    """Anchor Jan 30, b1 Feb 29: b0 is Jan 30 (30 days), not Feb 29 − 1 month = Jan 29."""
    (first, _second) = bills(
        MONTHLY, start=date(2024, 2, 10), anchor=date(2024, 1, 30), until=date(2024, 2, 29)
    )
    assert first.total == usd("63.33")  # 100 × 19/30
    assert "19 of 30 days" in first.lines[0].description
    assert period_at(
        MONTHLY, date(2024, 2, 10), start=date(2024, 2, 10), anchor=date(2024, 1, 30)
    ) == (
        date(2024, 1, 30),
        date(2024, 2, 29),
    )


def test_quantity_multiplies_and_rounds_once() -> None:
    plan = Plan(price=usd("0.333"), period=Period.days(10))
    (first,) = bills(plan, start=date(2026, 1, 1), until=date(2026, 1, 1), quantity=3)
    assert first.total == usd("1.00")  # 0.999 rounded once, not 3 × 0.33
    assert first.lines[0].quantity == Decimal(3)
    assert "10 days (Jan 1 to Jan 11) of 3 × 0.333 USD = 1.00 USD" in first.lines[0].description


def test_in_arrears_bills_each_line_on_its_end_and_setup_fee_on_start() -> None:
    plan = Plan(
        price=usd("30.00"), period=Period.weeks(1), timing="in_arrears", setup_fee=usd("9.99")
    )
    result = bills(plan, start=date(2026, 3, 4), anchor=date(2026, 3, 2), until=date(2026, 3, 23))
    assert summary(result) == [
        (date(2026, 3, 4), "9.99 USD"),
        (date(2026, 3, 9), "21.43 USD"),  # Mar 4 to Mar 9: 5 of 7 days of 30.00
        (date(2026, 3, 16), "30.00 USD"),
        (date(2026, 3, 23), "30.00 USD"),
    ]


def test_occurrences_count_the_stub_and_trial_only_bills_only_the_trial() -> None:
    limited = Plan(price=usd("10.00"), period=Period.months(1), occurrences=3)
    result = bills(
        limited, start=date(2026, 1, 20), anchor=date(2026, 1, 1), until=date(2027, 1, 1)
    )
    assert [b.billed_on for b in result] == [date(2026, 1, 20), date(2026, 2, 1), date(2026, 3, 1)]
    assert (
        lines_ended(limited, date(2027, 1, 1), start=date(2026, 1, 20), anchor=date(2026, 1, 1))
        == 3
    )
    trial_only = Plan(
        price=usd("10.00"),
        period=Period.months(1),
        trial=Trial(length=Period.days(14), price=usd("1.00")),
        trial_only=True,
    )
    (only,) = bills(trial_only, start=date(2026, 1, 1), until=date(2027, 1, 1))
    assert [line.kind for line in only.lines] == [InvoiceLineKind.TRIAL]
    assert only.total == usd("1.00")


def test_issue_and_due_shifts() -> None:
    (first,) = bills(
        MONTHLY,
        start=date(2026, 3, 1),
        until=date(2026, 3, 1),
        issue_shift=timedelta(days=-3),
        due_shift=timedelta(days=14),
    )
    assert (first.billed_on, first.issue_on, first.due_on) == (
        date(2026, 3, 1),
        date(2026, 2, 26),
        date(2026, 3, 12),
    )
    assert "issued 2026-02-26, due 2026-03-12" in first.explanation


def test_until_limits_the_bills_by_billing_date() -> None:
    assert len(bills(MONTHLY, start=date(2026, 1, 15), until=date(2026, 2, 14))) == 1
    assert len(bills(MONTHLY, start=date(2026, 1, 15), until=date(2026, 2, 15))) == 2
    arrears = Plan(price=usd("1"), period=Period.months(1), timing="in_arrears")
    assert bills(arrears, start=date(2026, 1, 15), until=date(2026, 2, 14)) == ()


def test_day_count_conventions_agree_on_plain_dates() -> None:
    totals = {
        bills(
            MONTHLY,
            start=date(2026, 2, 1),
            anchor=date(2026, 1, 13),
            until=date(2026, 2, 1),
            day_count=convention,
        )[0].total
        for convention in ("actual", DayCount.INCLUSIVE, DayCount.SECONDS)
    }
    assert totals == {usd("38.71")}


def test_billing_timing_moved_to_the_values_layer_and_is_re_exported() -> None:
    assert metering.BillingTiming is BillingTiming
    assert [t.value for t in BillingTiming] == ["in_arrears", "in_advance"]
    assert Plan(price=usd("1"), period=Period.days(1)).timing is BillingTiming.IN_ADVANCE
    assert InvoiceLineKind("trial") is InvoiceLineKind.TRIAL
    assert InvoiceLineKind("setup_fee") is InvoiceLineKind.SETUP_FEE


# -- bad input: a BillingError naming the field, nothing computed ---------------------------------
@pytest.mark.parametrize(
    ("build", "error", "field"),
    [
        (lambda: Plan(price=usd("-1"), period=Period.days(1)), InvalidAmountError, "price"),
        (lambda: Plan(price=bad(19.99), period=Period.days(1)), InvalidTypeError, "price"),
        (lambda: Plan(price=usd("1"), period=bad("P1M")), InvalidTypeError, "period"),
        (
            lambda: Plan(
                price=usd("1"),
                period=Period.days(1),
                trial=Trial(length=Period.days(1), price=Money("0", "EUR")),
            ),
            CurrencyMismatchError,
            "trial.price",
        ),
        (
            lambda: Plan(price=usd("1"), period=Period.days(1), setup_fee=Money("5", "EUR")),
            CurrencyMismatchError,
            "setup_fee",
        ),
        (
            lambda: Plan(price=usd("1"), period=Period.days(1), setup_fee=usd("-5")),
            InvalidAmountError,
            "setup_fee",
        ),
        (
            lambda: Plan(price=usd("1"), period=Period.days(1), occurrences=0),
            InvalidValueError,
            "occurrences",
        ),
        (
            lambda: Plan(price=usd("1"), period=Period.days(1), occurrences=bad(1.0)),
            InvalidTypeError,
            "occurrences",
        ),
        (
            lambda: Plan(price=usd("1"), period=Period.days(1), trial_only=True),
            InvalidValueError,
            "trial_only",
        ),
        (
            lambda: Plan(price=usd("1"), period=Period.days(1), timing="monthly"),
            InvalidValueError,
            "timing",
        ),
        (lambda: Trial(length=Period.days(1), price=usd("-0.01")), InvalidAmountError, "price"),
        (
            lambda: bills(bad(object()), start=date(2026, 1, 1), until=date(2026, 1, 1)),
            InvalidTypeError,
            "plan",
        ),
        (
            lambda: bills(MONTHLY, start=date(2026, 1, 2), until=date(2026, 1, 1)),
            InvalidValueError,
            "until",
        ),
        (
            lambda: bills(MONTHLY, start=datetime(2026, 1, 1, tzinfo=UTC), until=date(2026, 1, 1)),
            InvalidTypeError,
            "start",
        ),
        (
            lambda: bills(MONTHLY, start=date(2026, 1, 1), until=bad("2026-02-01")),
            InvalidTypeError,
            "until",
        ),
        (
            lambda: bills(
                MONTHLY, start=date(2026, 1, 1), until=date(2026, 1, 1), anchor=bad("2026-01-05")
            ),
            InvalidTypeError,
            "anchor",
        ),
        (
            lambda: bills(MONTHLY, start=date(2026, 1, 1), until=date(2026, 1, 1), quantity=0),
            InvalidAmountError,
            "quantity",
        ),
        (
            lambda: bills(MONTHLY, start=date(2026, 1, 1), until=date(2026, 1, 1), quantity=True),
            InvalidTypeError,
            "quantity",
        ),
        (
            lambda: bills(
                MONTHLY, start=date(2026, 1, 1), until=date(2026, 1, 1), issue_shift=bad(3)
            ),
            InvalidTypeError,
            "issue_shift",
        ),
        (
            lambda: bills(
                MONTHLY,
                start=date(2026, 1, 1),
                until=date(2026, 1, 1),
                issue_shift=timedelta(hours=3),
            ),
            InvalidValueError,
            "issue_shift",
        ),
        (
            lambda: bills(
                MONTHLY,
                start=date(2026, 1, 1),
                until=date(2026, 1, 1),
                due_shift=timedelta(days=-1),
            ),
            InvalidValueError,
            "due_shift",
        ),
        (
            lambda: bills(
                MONTHLY, start=date(2026, 1, 1), until=date(2026, 1, 1), day_count="30/360"
            ),
            InvalidValueError,
            "day_count",
        ),
    ],
)
def test_bad_input_raises_naming_the_field(
    build: object, error: type[BillingError], field: str
) -> None:
    with pytest.raises(error) as caught:
        build()  # type: ignore[operator]
    assert caught.value.field == f"$.{field}"
    assert str(caught.value).endswith(f"@ $.{field}")
