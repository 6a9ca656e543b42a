"""Money: construction, exact arithmetic, rounding once, allocation that loses no cent."""

from __future__ import annotations

import decimal
import pickle
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from billing_core import (
    BillingError,
    CurrencyMismatchError,
    InvalidAmountError,
    InvalidTypeError,
    Money,
    PrecisionError,
    UnknownCurrencyError,
)
from billing_core.currencies import MINOR_UNITS, minor_unit_exponent, register_currency
from billing_core.testing import strategies as bst


class TestConstruction:
    def test_contract(self) -> None:
        m = Money("19.99", "USD")
        assert m.amount == Decimal("19.99")
        assert isinstance(m.amount, Decimal)
        assert m.currency == "USD"
        assert Money.from_minor_units(1999, "USD") == m
        assert m.minor_units == 1999

    @pytest.mark.parametrize(
        ("amount", "expected"),
        [
            (Decimal("1.50"), Decimal("1.50")),
            (3, Decimal(3)),
            ("2.005", Decimal("2.005")),
            (" 7 ", Decimal(7)),
        ],
    )
    def test_accepted_amounts(self, amount: object, expected: Decimal) -> None:
        assert Money(amount, "USD").amount == expected  # type: ignore[arg-type]

    @pytest.mark.parametrize("amount", [1.5, 0.1, True, False, None, [1], b"1"])
    def test_wrong_types_are_type_errors(self, amount: object) -> None:
        with pytest.raises(InvalidTypeError) as info:
            Money(amount, "USD")  # type: ignore[arg-type]
        assert isinstance(info.value, TypeError)
        assert isinstance(info.value, BillingError)
        assert info.value.field == "$.amount"
        assert str(info.value).endswith("@ $.amount")

    @pytest.mark.parametrize(
        "amount", ["nan", "NaN", "inf", "-Infinity", "sNaN", "abc", "", Decimal("nan")]
    )
    def test_wrong_values_are_value_errors(self, amount: object) -> None:
        with pytest.raises(InvalidAmountError) as info:
            Money(amount, "USD")  # type: ignore[arg-type]
        assert isinstance(info.value, ValueError)
        assert info.value.field == "$.amount"

    @pytest.mark.parametrize("code", ["XYZ", "usd", "XAU", "XXX", "", "US"])
    def test_unknown_currency(self, code: str) -> None:
        with pytest.raises(UnknownCurrencyError, match="unknown currency") as info:
            Money(1, code)
        assert isinstance(info.value, ValueError)
        assert info.value.field == "$.currency"

    def test_currency_of_wrong_type(self) -> None:
        with pytest.raises(InvalidTypeError):
            Money(1, 840)  # type: ignore[arg-type]

    def test_immutable(self) -> None:
        m = Money("1", "USD")
        with pytest.raises(AttributeError):
            m.amount = Decimal(2)  # type: ignore[misc]

    def test_pickles(self) -> None:
        m = Money("0.0015", "USD")
        assert pickle.loads(pickle.dumps(m)) == m


class TestCurrencyTable:
    @pytest.mark.parametrize(
        ("code", "exponent"),
        [
            ("JPY", 0),
            ("KRW", 0),
            ("USD", 2),
            ("EUR", 2),
            ("GBP", 2),
            ("KWD", 3),
            ("BHD", 3),
            ("TND", 3),
            ("CLF", 4),
            ("UYW", 4),
            ("XCG", 2),
            ("ZWG", 2),
            ("ISK", 0),
            ("VND", 0),
        ],
    )
    def test_exponents(self, code: str, exponent: int) -> None:
        assert minor_unit_exponent(code) == exponent

    def test_complete(self) -> None:
        # Every active ISO 4217 code with a minor unit, not a handful.
        assert len(MINOR_UNITS) >= 165
        assert all(len(c) == 3 and c.isupper() for c in MINOR_UNITS)
        rare = "BOV CHE CHW COU MRU MXV SLE STN SVC USN UYI UYW VED VES XAF XCD XCG XOF XPF ZWG"
        assert set(rare.split()) <= set(MINOR_UNITS)
        # codes without a minor unit are not billing currencies
        assert not {"XAU", "XAG", "XDR", "XTS", "XXX"} & set(MINOR_UNITS)

    def test_register(self) -> None:
        register_currency("XPN", 4)
        assert Money("1.2345", "XPN").rounded().amount == Decimal("1.2345")
        with pytest.raises(BillingError):
            register_currency("XPN", 2)
        with pytest.raises(BillingError):
            register_currency("bad", 2)


class TestRounding:
    @pytest.mark.parametrize(
        ("amount", "currency", "expected"),
        [
            ("2.5", "JPY", "3"),
            ("-2.5", "JPY", "-3"),
            ("1.005", "USD", "1.01"),
            ("1.0049", "USD", "1.00"),
            ("0.0005", "KWD", "0.001"),
            ("0.0004", "KWD", "0.000"),
            ("19.99", "USD", "19.99"),
            ("7", "USD", "7.00"),
        ],
    )
    def test_half_up_default(self, amount: str, currency: str, expected: str) -> None:
        r = Money(amount, currency).rounded()
        assert str(r.amount) == expected

    def test_other_modes(self) -> None:
        assert Money("2.5", "JPY").rounded(decimal.ROUND_HALF_EVEN).amount == 2
        assert Money("1.001", "USD").rounded(decimal.ROUND_CEILING).amount == Decimal("1.01")
        with pytest.raises(BillingError, match="rounding mode"):
            Money("1", "USD").rounded("nearest")

    def test_scale_rounds_once_exactly(self) -> None:
        # 17/31 of 120.00 USD = 65.806451... -> 65.81
        assert Money("120.00", "USD").scale(Fraction(17, 31)) == Money("65.81", "USD")
        # 1/8 of 0.10 = 0.0125 -> 0.01 half-up; half-even 0.01 too; 3/8 = 0.0375 -> 0.04
        assert Money("0.10", "USD").scale(Fraction(3, 8)).amount == Decimal("0.04")
        assert Money("100", "JPY").scale(Fraction(1, 3)).amount == Decimal(33)
        assert Money("0.005", "KWD").scale(Fraction(1, 10)).amount == Decimal("0.001")
        assert Money("-1.00", "USD").scale(Fraction(1, 8)).amount == Decimal("-0.13")

    @given(
        bst.money("USD", extra_digits=3),
        st.fractions(min_value=-10, max_value=10, max_denominator=400),
    )
    def test_scale_equals_exact_rational_rounding(self, m: Money, ratio: Fraction) -> None:
        exact = Fraction(m.amount) * ratio * 100
        # half-up on the magnitude
        magnitude = abs(exact)
        whole = int(magnitude)
        units = whole + (1 if magnitude - whole >= Fraction(1, 2) else 0)
        expected = units if exact >= 0 else -units
        assert m.scale(ratio).minor_units == expected

    def test_scale_is_exact_beyond_28_digits(self) -> None:
        big = Money("983653588106932502785500", "KWD")
        exact_fils = Fraction(983653588106932502785500 * 5002 * 1000, 131)
        expected = int(exact_fils) + (exact_fils - int(exact_fils) >= Fraction(1, 2))
        result = big.scale(Fraction(5002, 131))
        assert result.minor_units == expected
        assert str(result.amount) == "37559047692449438007122679.389"

    def test_minor_units_refuses_sub_minor_amounts(self) -> None:
        with pytest.raises(PrecisionError, match="rounded"):
            _ = Money("0.0015", "USD").minor_units
        assert Money("0.0015", "USD").rounded().minor_units == 0


class TestArithmetic:
    def test_same_currency(self) -> None:
        a, b = Money("10.10", "USD"), Money("0.05", "USD")
        assert a + b == Money("10.15", "USD")
        assert a - b == Money("10.05", "USD")
        assert -a == Money("-10.10", "USD")
        assert a * 3 == Money("30.30", "USD")
        assert 3 * a == a * 3
        assert a * Decimal("0.5") == Money("5.05", "USD")
        assert sum([a, b, b]) == Money("10.20", "USD")
        assert abs(Money("-1", "EUR")) == Money("1", "EUR")
        assert b < a and a > b and a >= a and b <= b

    @pytest.mark.parametrize(
        "op",
        [
            lambda a, b: a + b,
            lambda a, b: a - b,
            lambda a, b: a < b,
            lambda a, b: a <= b,
            lambda a, b: a > b,
            lambda a, b: a >= b,
            lambda a, b: a == b,
            lambda a, b: a != b,
        ],
    )
    def test_mixed_currencies_raise(self, op: object) -> None:
        with pytest.raises(CurrencyMismatchError) as info:
            op(Money(1, "USD"), Money(1, "EUR"))  # type: ignore[operator]
        assert isinstance(info.value, ValueError)

    def test_float_factor_refused(self) -> None:
        with pytest.raises(InvalidTypeError):
            _ = Money(1, "USD") * 1.5

    @given(bst.money("USD"), bst.money("USD"), bst.money("EUR"))
    def test_never_mixes_silently(self, a: Money, b: Money, c: Money) -> None:
        assert (a + b).currency == "USD"
        assert (a + b) - b == a
        with pytest.raises(CurrencyMismatchError):
            _ = a + c
        with pytest.raises(CurrencyMismatchError):
            _ = a == c

    def test_str_and_format(self) -> None:
        assert str(Money("1234567.5", "USD")) == "1,234,567.50 USD"
        assert str(Money("0.0015", "USD")) == "0.0015 USD"
        assert str(Money(100, "JPY")) == "100 JPY"
        assert str(Money("1.5", "KWD")) == "1.500 KWD"
        assert f"{Money('2', 'EUR')}" == "2.00 EUR"


class TestAllocation:
    @pytest.mark.parametrize(
        ("amount", "currency", "weights", "expected"),
        [
            ("100", "JPY", [1, 2], ["33", "67"]),
            ("100", "JPY", [1, 1, 1], ["34", "33", "33"]),
            ("10.00", "USD", [1, 1, 1], ["3.34", "3.33", "3.33"]),
            ("0.05", "USD", [1, 1, 1, 1, 1, 1], ["0.01", "0.01", "0.01", "0.01", "0.01", "0.00"]),
            ("1.000", "KWD", [1, 2, 3], ["0.167", "0.333", "0.500"]),
            ("100.00", "USD", [0, 1], ["0.00", "100.00"]),
            ("-10.00", "USD", [1, 1, 1], ["-3.34", "-3.33", "-3.33"]),
            ("0.015", "USD", [1, 1], ["0.01", "0.01"]),  # rounded whole 0.02, split
            ("7", "JPY", [Fraction(1, 3), Fraction(2, 3)], ["2", "5"]),
        ],
    )
    def test_worked_examples(
        self, amount: str, currency: str, weights: list[int], expected: list[str]
    ) -> None:
        parts = Money(amount, currency).allocate(weights)
        assert [str(p.amount) for p in parts] == expected

    def test_ties_go_to_the_earlier_part(self) -> None:
        # 0.02 over three equal parts: remainders tie, the first two get a cent each
        assert [p.minor_units for p in Money("0.02", "USD").allocate([1, 1, 1])] == [1, 1, 0]

    @pytest.mark.parametrize("weights", [[], [0, 0], [-1, 2], [1.5], [True]])
    def test_bad_weights(self, weights: list[object]) -> None:
        with pytest.raises(BillingError) as info:
            Money("1", "USD").allocate(weights)  # type: ignore[arg-type]
        assert info.value.field is not None and info.value.field.startswith("$.weights")

    @given(
        bst.money(extra_digits=2),
        st.lists(st.integers(0, 1000) | st.decimals(0, 1000, places=3), min_size=1, max_size=12),
    )
    def test_parts_sum_to_rounded_whole(self, m: Money, weights: list[int | Decimal]) -> None:
        assume(sum(weights) > 0)
        parts = m.allocate(weights)
        assert len(parts) == len(weights)
        assert sum(parts, Money.zero(m.currency)) == m.rounded()
        assert all(p.is_rounded for p in parts)
        total_w = sum(Fraction(w) for w in weights)
        unit = Fraction(1, 10**m.exponent)
        for p, w in zip(parts, weights, strict=True):
            share = Fraction(m.rounded().amount) * Fraction(w) / total_w
            # each part is within one minor unit of its exact share, and zero weights get zero
            assert abs(Fraction(p.amount) - share) < unit
            if w == 0:
                assert p.amount == 0
