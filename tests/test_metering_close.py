"""Closing a metered period: aggregate, clamp, price, explain, one usage invoice line."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from billing_core import InvalidTypeError, InvoiceLineKind, Money, UsageEvent
from billing_core.rules import metering
from billing_core.rules.metering import MeteredPrice
from billing_core.rules.pricing import Graduated, Package, PerUnit, Tier, Volume

S = datetime(2026, 3, 1, tzinfo=UTC)
E = datetime(2026, 4, 1, tzinfo=UTC)
USD = "USD"


def calls(n: int, each: int = 100, *, dup: int = 0) -> list[UsageEvent]:
    """``n`` events of ``each`` calls spread over March, plus ``dup`` redeliveries of the first."""
    events = [
        UsageEvent(id=f"c{i}", quantity=each, at=S + timedelta(hours=i), properties={"u": i % 3})
        for i in range(n)
    ]
    return events + events[:1] * dup


GRADUATED = Graduated(
    tiers=[
        Tier(up_to=1000, unit_price=Money("0.0100", USD)),
        Tier(up_to=None, unit_price=Money("0.0080", USD)),
    ]
)


class TestClosePeriod:
    def test_graduated_capped_at_the_maximum(self) -> None:
        price = MeteredPrice(model=GRADUATED, maximum=1200, description="API calls")
        result = metering.close_period(
            calls(15, dup=2), price=price, start=S, end=E, subscription_id="sub_1"
        )
        assert result.usage.value == Decimal(1500)
        assert (result.quantity, result.clamped) == (Decimal(1200), "maximum")
        assert result.amount == Money("11.60", USD)
        (line,) = result.lines
        assert line.kind is InvoiceLineKind.USAGE
        assert line.amount == Money("11.60", USD)
        assert line.exact_amount == Money("11.6000", USD)
        assert line.quantity == Decimal(1200)
        assert line.unit_price is None  # two prices: the lines of the charge tell them apart
        assert (line.period_start, line.period_end) == (date(2026, 3, 1), date(2026, 4, 1))
        assert line.subscription_id == "sub_1"
        assert result.explanation == (
            "API calls: sum of 1,500 over 15 events from 2026-03-01T00:00:00+00:00 to "
            "2026-04-01T00:00:00+00:00 (end excluded); ignored 2 duplicate deliveries; "
            "billable quantity 1,200 (capped at the maximum, 1,500 reported); "
            "first 1,000 at 0.0100 USD, next 200 at 0.0080 USD = 11.60 USD."
        )

    def test_empty_period_raised_to_the_minimum(self) -> None:
        price = MeteredPrice(model=PerUnit(unit_price=Money("0.0015", USD)), minimum=10_000)
        result = metering.close_period([], price=price, start=S, end=E)
        assert (result.usage.value, result.usage.count) == (Decimal(0), 0)
        assert (result.quantity, result.clamped) == (Decimal(10_000), "minimum")
        assert result.amount == Money("15.00", USD)
        assert result.lines[0].unit_price == Money("0.0015", USD)
        assert "raised to the minimum, 0 reported" in result.explanation

    def test_sub_cent_unit_price_rounded_once(self) -> None:
        price = MeteredPrice(model=PerUnit(unit_price=Money("0.0015", USD)))
        events = [UsageEvent(id="a", quantity=1_234_567, at=S)]
        result = metering.close_period(events, price=price, start=S, end=E)
        assert result.charge.exact == Money("1851.8505", USD)
        assert result.amount == Money("1851.85", USD)
        assert result.clamped is None
        assert result.explanation.endswith(
            "billable quantity 1,234,567; 1,234,567 at 0.0015 USD = 1,851.85 USD "
            "(exactly 1,851.8505 USD)."
        )

    def test_last_reported_usage_with_volume_tiers(self) -> None:
        volume = Volume(tiers=GRADUATED.tiers)
        price = MeteredPrice(model=volume, strategy="last", description="Seats")
        events = [
            UsageEvent(id="s1", quantity=900, at=S + timedelta(days=1)),
            UsageEvent(id="s2", quantity=1001, at=S + timedelta(days=20)),
            UsageEvent(id="s3", quantity=400, at=S + timedelta(days=5)),
        ]
        result = metering.close_period(events, price=price, start=S, end=E)
        assert result.quantity == Decimal(1001)
        assert result.amount == Money("8.01", USD)  # 1,001 × 0.0080
        assert result.lines[0].unit_price == Money("0.0080", USD)

    def test_unique_count_in_packages(self) -> None:
        price = MeteredPrice(
            model=Package(size=2, price_per_package=Money("5.00", USD)),
            strategy="unique_count",
            unique_by="u",
        )
        result = metering.close_period(calls(10), price=price, start=S, end=E)
        assert result.quantity == Decimal(3)  # u in {0, 1, 2}
        assert result.amount == Money("10.00", USD)  # 2 started packages

    def test_local_dates_in_a_timezone(self) -> None:
        price = MeteredPrice(model=PerUnit(unit_price=Money("1", USD)))
        result = metering.close_period(
            [], price=price, start=S, end=E, timezone="America/Los_Angeles"
        )
        assert (result.lines[0].period_start, result.lines[0].period_end) == (
            date(2026, 2, 28),
            date(2026, 3, 31),
        )

    def test_price_must_be_a_metered_price(self) -> None:
        with pytest.raises(InvalidTypeError) as err:
            metering.close_period([], price=GRADUATED, start=S, end=E)  # type: ignore[arg-type]
        assert err.value.field == "$.price"
