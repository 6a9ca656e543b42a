"""Pricing models: per unit, graduated and volume tiers, packages; tables checked when built."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import (
    BillingError,
    ConfigurationError,
    CurrencyMismatchError,
    InvalidAmountError,
    InvalidTypeError,
    Money,
)
from billing_core.rules import pricing
from billing_core.rules.pricing import Graduated, Package, PerUnit, Tier, Volume

USD = "USD"


def usd(amount: str | Decimal) -> Money:
    return Money(amount, USD)


# 1-1,000 at 0.0100, 1,001-5,000 at 0.0080 plus a 2.00 flat fee, above 5,000 at 0.0050.
TABLE = [
    Tier(up_to=1000, unit_price=usd("0.0100")),
    Tier(up_to=5000, unit_price=usd("0.0080"), flat_fee=usd("2.00")),
    Tier(up_to=None, unit_price=usd("0.0050")),
]


class TestPerUnit:
    def test_sub_cent_unit_price(self) -> None:
        c = PerUnit(unit_price=usd("0.0015")).price(1_234_567)
        assert (c.exact, c.amount) == (usd("1851.8505"), usd("1851.85"))
        assert c.explanation == "1,234,567 at 0.0015 USD = 1,851.85 USD (exactly 1,851.8505 USD)"

    def test_zero_and_fractional_quantities(self) -> None:
        assert PerUnit(unit_price=usd("0.10")).price(0).amount == usd("0.00")
        assert PerUnit(unit_price=usd("0.10")).price("2.5").amount == usd("0.25")

    def test_half_up_unless_told(self) -> None:
        model = PerUnit(unit_price=usd("0.005"))
        assert model.price(1).amount == usd("0.01")
        assert model.price(1, rounding="ROUND_HALF_EVEN").amount == usd("0.00")


class TestGraduated:
    @pytest.mark.parametrize(
        ("quantity", "amount", "explanation"),
        [
            (0, "0.00", "first 0 at 0.0100 USD = 0.00 USD"),
            (999, "9.99", "first 999 at 0.0100 USD = 9.99 USD"),
            (1000, "10.00", "first 1,000 at 0.0100 USD = 10.00 USD"),  # exactly at the bound
            (  # one unit above it: tier 2 starts, with its flat fee
                1001,
                "12.01",
                "first 1,000 at 0.0100 USD, next 1 at 0.0080 USD, "
                "flat fee 2.00 USD (tier 2, up to 5,000) = 12.01 USD (exactly 12.0080 USD)",
            ),
            (1200, "13.60", None),  # 10.00 + 200 × 0.008 + 2.00
            (5000, "44.00", None),  # 10.00 + 4,000 × 0.008 + 2.00
            (5001, "44.01", None),  # ... + 1 × 0.005 = 44.005, half-up
            (10000, "69.00", None),  # 44.00 + 5,000 × 0.005
        ],
    )
    def test_worked_examples(self, quantity: int, amount: str, explanation: str | None) -> None:
        c = Graduated(tiers=TABLE).price(quantity)
        assert c.amount == usd(amount)
        if explanation is not None:
            assert c.explanation == explanation

    def test_the_brief_example(self) -> None:
        tiers = [
            {"up_to": 1000, "unit_price": usd("0.0100")},
            {"up_to": None, "unit_price": usd("0.0080")},
        ]
        c = Graduated(tiers=tiers).price(1200)
        assert [line.description for line in c.lines] == [
            "first 1,000 at 0.0100 USD",
            "next 200 at 0.0080 USD",
        ]
        assert [line.amount for line in c.lines] == [usd("10.0000"), usd("1.6000")]
        assert (c.exact, c.amount) == (usd("11.6000"), usd("11.60"))

    def test_fractional_quantity_straddles_a_bound(self) -> None:
        c = Graduated(tiers=TABLE).price("1000.5")
        assert c.exact == usd("12.0040")  # 10 + 0.5 × 0.008 + 2

    def test_first_tier_flat_fee_is_a_base_fee(self) -> None:
        tiers = [Tier(up_to=10, unit_price=usd("1"), flat_fee=usd("5")), TABLE[2]]
        assert Graduated(tiers=tiers).price(0).amount == usd("5.00")
        assert Volume(tiers=tiers).price(0).amount == usd("5.00")


class TestVolume:
    @pytest.mark.parametrize(
        ("quantity", "amount"),
        [
            (0, "0.00"),
            (1000, "10.00"),  # exactly at the bound: tier 1 for every unit
            (1001, "10.01"),  # one above: every unit at 0.0080 (8.008) plus the 2.00 fee
            (5000, "42.00"),
            (5001, "25.01"),  # tier 3: 25.005, no fee; volume pricing is not monotonic
        ],
    )
    def test_worked_examples(self, quantity: int, amount: str) -> None:
        assert Volume(tiers=TABLE).price(quantity).amount == usd(amount)

    def test_explanation(self) -> None:
        c = Volume(tiers=TABLE).price(1200)
        assert c.explanation == (
            "all 1,200 at 0.0080 USD (tier 2, up to 5,000), flat fee 2.00 USD "
            "(tier 2, up to 5,000) = 11.60 USD"
        )
        assert Volume(tiers=TABLE).price(6000).lines[0].description == (
            "all 6,000 at 0.0050 USD (tier 3, above 5,000)"
        )


class TestPackage:
    @pytest.mark.parametrize(
        ("quantity", "free", "amount", "packages"),
        [
            (0, 0, "0.00", 0),
            (1, 0, "5.00", 1),  # a started package counts whole
            (100, 0, "5.00", 1),  # exactly one package
            (101, 0, "10.00", 2),
            (250, 0, "15.00", 3),
            (250, 50, "10.00", 2),  # 200 billable
            (40, 50, "0.00", 0),  # all free
            ("100.5", 0, "10.00", 2),
        ],
    )
    def test_worked_examples(self, quantity: int, free: int, amount: str, packages: int) -> None:
        c = Package(size=100, price_per_package=usd("5.00"), free_units=free).price(quantity)
        assert c.amount == usd(amount)
        assert c.lines[0].quantity == packages

    def test_explanation(self) -> None:
        c = Package(size=100, price_per_package=usd("5.00"), free_units=50).price(250)
        assert (
            c.explanation
            == "2 started packages of 100 at 5.00 USD (250 units, 50 free) = 10.00 USD"
        )


class TestInvalidTables:
    @pytest.mark.parametrize(
        ("tiers", "error", "field"),
        [
            ([], ConfigurationError, "$.tiers"),
            ([TABLE[1], TABLE[0], TABLE[2]], ConfigurationError, "$.tiers[1].up_to"),  # unsorted
            ([TABLE[0], TABLE[0], TABLE[2]], ConfigurationError, "$.tiers[1].up_to"),  # overlap
            ([TABLE[0], TABLE[1]], ConfigurationError, "$.tiers[1].up_to"),  # no unbounded last
            ([TABLE[2], TABLE[0]], ConfigurationError, "$.tiers[0].up_to"),  # unbounded first
            (
                [TABLE[0], Tier(up_to=None, unit_price=Money("0.01", "EUR"))],
                CurrencyMismatchError,
                "$.tiers[1].unit_price",
            ),
            (
                [TABLE[0], {"up_to": None, "unit_price": usd("-0.01")}],
                InvalidAmountError,
                "$.tiers[1].unit_price",
            ),
            (
                [{"up_to": 0, "unit_price": usd("0.01")}, TABLE[2]],
                ConfigurationError,
                "$.tiers[0].up_to",
            ),
            (
                [{"up_to": 1.5, "unit_price": usd("0.01")}, TABLE[2]],
                InvalidTypeError,
                "$.tiers[0].up_to",
            ),
            ([TABLE[0], "tier"], InvalidTypeError, "$.tiers[1]"),
            ("tiers", InvalidTypeError, "$.tiers"),
        ],
    )
    def test_refused_naming_the_field(
        self, tiers: object, error: type[BillingError], field: str
    ) -> None:
        for model in (Graduated, Volume):
            with pytest.raises(error) as err:
                model(tiers=tiers)
            assert err.value.field == field

    def test_tier_values(self) -> None:
        with pytest.raises(InvalidAmountError) as err:
            Tier(up_to=None, unit_price=usd("1"), flat_fee=usd("-1"))
        assert err.value.field == "$.flat_fee"
        with pytest.raises(CurrencyMismatchError) as err2:
            Tier(up_to=None, unit_price=usd("1"), flat_fee=Money("1", "EUR"))
        assert err2.value.field == "$.flat_fee"
        with pytest.raises(InvalidAmountError) as err3:
            Tier(up_to=-5, unit_price=usd("1"))
        assert err3.value.field == "$.up_to"

    def test_other_models(self) -> None:
        cases: list[tuple[object, type[BillingError], str]] = [
            (lambda: PerUnit(unit_price=usd("-0.01")), InvalidAmountError, "$.unit_price"),
            (
                lambda: PerUnit(unit_price="0.01"),  # type: ignore[arg-type]
                InvalidTypeError,
                "$.unit_price",
            ),
            (lambda: Package(size=0, price_per_package=usd("1")), ConfigurationError, "$.size"),
            (
                lambda: Package(size=10, price_per_package=usd("1"), free_units=-1),
                InvalidAmountError,
                "$.free_units",
            ),
            (
                lambda: Package(size=10, price_per_package=usd("-1")),
                InvalidAmountError,
                "$.price_per_package",
            ),
            (lambda: PerUnit(unit_price=usd("1")).price(-1), InvalidAmountError, "$.quantity"),
            (
                lambda: Graduated(tiers=TABLE).price(1.5),  # type: ignore[arg-type]
                InvalidTypeError,
                "$.quantity",
            ),
            (lambda: pricing.price(usd("1"), 1), InvalidTypeError, "$.model"),  # type: ignore[arg-type]
        ]
        for build, error, field in cases:
            with pytest.raises(error) as err:
                build()  # type: ignore[operator]
            assert err.value.field == field


# -- properties --------------------------------------------------------------------------------
_prices = st.decimals(min_value=0, max_value=5, places=4).map(usd)
_fees = st.none() | st.decimals(min_value=0, max_value=50, places=2).map(usd)
_quantities = st.decimals(min_value=0, max_value=100_000, places=2)


@st.composite
def tables(draw: st.DrawFn) -> list[Tier]:
    bounds = sorted(draw(st.sets(st.integers(1, 50_000), max_size=4)))
    ups: list[int | None] = [*bounds, None]
    return [Tier(up_to=u, unit_price=draw(_prices), flat_fee=draw(_fees)) for u in ups]


def _graduated_reference(tiers: list[Tier], q: Decimal) -> Decimal:
    total, low = Decimal(0), Decimal(0)
    for i, tier in enumerate(tiers):
        high = q if tier.up_to is None else tier.up_to
        if i == 0 or q > low:
            total += tier.unit_price.amount * max(Decimal(0), min(q, high) - low)
            total += tier.flat_fee.amount if tier.flat_fee is not None else 0
        if tier.up_to is None:
            break
        low = tier.up_to
    return total


class TestProperties:
    @given(price=_prices, fee=_fees, q=_quantities)
    def test_graduated_and_volume_agree_with_one_tier(
        self, price: Money, fee: Money | None, q: Decimal
    ) -> None:
        tiers = [Tier(up_to=None, unit_price=price, flat_fee=fee)]
        g, v = Graduated(tiers=tiers).price(q), Volume(tiers=tiers).price(q)
        assert (g.exact, g.amount) == (v.exact, v.amount)
        assert g.exact.amount == price.amount * q + (fee.amount if fee else 0)

    @given(tiers=tables(), a=_quantities, b=_quantities)
    def test_graduated_is_monotonic_in_quantity(
        self, tiers: list[Tier], a: Decimal, b: Decimal
    ) -> None:
        model = Graduated(tiers=tiers)
        low, high = sorted((a, b))
        assert model.price(low).exact <= model.price(high).exact
        assert model.price(low).amount <= model.price(high).amount

    @given(tiers=tables(), q=_quantities)
    def test_graduated_matches_a_slice_by_slice_reference(
        self, tiers: list[Tier], q: Decimal
    ) -> None:
        c = Graduated(tiers=tiers).price(q)
        assert c.exact.amount == _graduated_reference(tiers, q)
        assert c.amount == c.exact.rounded()
        assert sum(line.quantity for line in c.lines if line.unit_price is not None) == q

    @given(tiers=tables(), q=_quantities)
    def test_volume_prices_every_unit_at_the_tier_reached(
        self, tiers: list[Tier], q: Decimal
    ) -> None:
        c = Volume(tiers=tiers).price(q)
        reached = next(t for t in tiers if t.up_to is None or q <= t.up_to)
        fee = reached.flat_fee.amount if reached.flat_fee is not None else 0
        assert c.exact.amount == reached.unit_price.amount * q + fee

    @given(
        size=st.integers(1, 1000),
        free=st.integers(0, 500),
        q=_quantities,
    )
    def test_packages_cover_the_billable_units_with_fewest_packages(
        self, size: int, free: int, q: Decimal
    ) -> None:
        c = Package(size=size, price_per_package=usd("3.00"), free_units=free).price(q)
        billable = max(q - free, Decimal(0))
        n = c.lines[0].quantity
        assert n * size >= billable > (n - 1) * size or (n == 0 and billable == 0)
        assert c.amount == usd("3.00") * n
