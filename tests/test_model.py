"""Domain values validate on construction and name the offending field."""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime

import attrs
import pytest

from billing_core import (
    BillingError,
    Certificate,
    CertificateLine,
    CertificateStatus,
    CurrencyMismatchError,
    Customer,
    InvalidAmountError,
    InvalidTypeError,
    Money,
    NaiveDatetimeError,
    Period,
    Subscription,
    SubscriptionState,
    Transaction,
    TransactionKind,
    TransactionStatus,
    UsageEvent,
)
from billing_core.errors import CurrencyMismatchError as CME
from billing_core.errors import InvalidValueError, StructureError, UnknownTimezoneError, join_path

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_transaction_minimal_and_defaults() -> None:
    t = Transaction(id="t1", amount=Money("49.00", "USD"), created_at=NOW, settled=False)
    assert t.refunded == Money("0.00", "USD")
    assert t.reserved == Money("0.00", "USD")
    assert t.status is TransactionStatus.COMPLETED
    assert str(t.status) == "completed"
    assert t.kind is TransactionKind.SALE
    assert t.kind.value == "sale"
    assert t.lines == ()
    assert t.refundable == Money("49.00", "USD")
    partly = attrs.evolve(t, refunded=Money("10.00", "USD"), reserved=Money("5.00", "USD"))
    assert partly.refundable == Money("34.00", "USD")


def test_enums_are_strenums_with_spec_values() -> None:
    assert [k.value for k in TransactionKind] == [
        "sale",
        "authorization",
        "capture",
        "refund",
        "void",
        "credit",
        "payout",
    ]
    assert [s.value for s in TransactionStatus] == [
        "pending",
        "completed",
        "partially_refunded",
        "refunded",
        "voided",
        "failed",
        "unknown",
    ]
    assert [s.value for s in CertificateStatus] == [
        "pending",
        "issued",
        "cancelled",
        "revoked",
        "rejected",
        "expired",
    ]
    assert TransactionStatus("voided") == "voided"


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"amount": "49.00"}, InvalidTypeError, "$.amount"),
        ({"created_at": datetime(2026, 1, 1)}, NaiveDatetimeError, "$.created_at"),  # noqa: DTZ001
        ({"created_at": date(2026, 1, 1)}, InvalidTypeError, "$.created_at"),
        ({"settled": 1}, InvalidTypeError, "$.settled"),
        ({"refunded": Money("50.00", "USD")}, InvalidAmountError, "$.refunded"),
        ({"refunded": Money("1.00", "EUR")}, CurrencyMismatchError, "$.refunded"),
        (
            {"reserved": Money("30.00", "USD"), "refunded": Money("20.00", "USD")},
            InvalidAmountError,
            "$.reserved",
        ),
        ({"amount": Money("-1.00", "USD")}, InvalidAmountError, "$.amount"),
        ({"status": "done"}, InvalidValueError, "$.status"),
        ({"id": ""}, InvalidValueError, "$.id"),
        ({"lines": ["x"]}, InvalidTypeError, "$.lines[0]"),
    ],
)
def test_transaction_bad_input(
    kwargs: dict[str, object], error: type[BillingError], field: str
) -> None:
    base: dict[str, object] = {
        "id": "t1",
        "amount": Money("49.00", "USD"),
        "created_at": NOW,
        "settled": True,
    }
    with pytest.raises(error) as info:
        Transaction(**{**base, **kwargs})  # type: ignore[arg-type]
    assert info.value.field == field


def test_certificate_lines() -> None:
    line = CertificateLine(certificate_type="dv", quantity=3, unit_price=Money("24.50", "USD"))
    assert line.total == Money("73.50", "USD")
    assert line.remaining_quantity == 3
    with pytest.raises(InvalidAmountError):
        CertificateLine(certificate_type="dv", quantity=0, unit_price=Money("1", "USD"))
    with pytest.raises(InvalidValueError, match="exceed"):
        CertificateLine(
            certificate_type="dv", quantity=1, refunded_quantity=2, unit_price=Money("1", "USD")
        )
    with pytest.raises(CME) as info:
        Transaction(
            id="t",
            amount=Money("1", "USD"),
            created_at=NOW,
            settled=True,
            lines=[
                CertificateLine(certificate_type="dv", quantity=1, unit_price=Money("1", "EUR"))
            ],
        )
    assert info.value.field == "$.lines[0].unit_price"


def test_customer() -> None:
    c = Customer(
        id="c1",
        company="Acme",
        address=["1 Main St", "Suite 2"],
        city="Springfield",
        postal_code="12345",
        state="IL",
        country="US",
        reseller_id="r1",
        timezone="America/Chicago",
    )
    assert c.address == ("1 Main St", "Suite 2")
    with pytest.raises(UnknownTimezoneError):
        Customer(id="c1", company="Acme", timezone="Mars/Olympus")
    with pytest.raises(InvalidValueError, match="at most 3"):
        Customer(id="c1", company="Acme", address=["a", "b", "c", "d"])


def test_subscription() -> None:
    s = Subscription(
        id="s1",
        customer_id="c1",
        term=Period.years(1),
        start=date(2024, 2, 29),
        inventory={"dv": 2},
        unit_prices={"dv": Money("10.00", "USD")},
    )
    assert s.term_end == date(2025, 2, 28)
    assert s.state is SubscriptionState.ACTIVE
    with pytest.raises(InvalidTypeError):
        Subscription(id="s1", customer_id="c1", term="P1Y", start=date(2024, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError):
        Subscription(id="s1", customer_id="c1", term=Period.years(1), start=NOW)
    with pytest.raises(InvalidAmountError) as info:
        Subscription(
            id="s1",
            customer_id="c1",
            term=Period.years(1),
            start=date(2024, 1, 1),
            inventory={"dv": -1},
        )
    assert info.value.field == "$.inventory.dv"
    with pytest.raises(CME):
        Subscription(
            id="s1",
            customer_id="c1",
            term=Period.years(1),
            start=date(2024, 1, 1),
            unit_prices={"dv": Money(1, "USD"), "ov": Money(1, "EUR")},
        )


def test_certificate_and_usage_event() -> None:
    assert Certificate(id="x", domain="example.com").live
    assert not Certificate(id="x", domain="example.com", status="cancelled").live
    e = UsageEvent(id="e1", quantity="1.5", at=NOW)
    assert e.properties == {}
    with pytest.raises(InvalidTypeError):
        UsageEvent(id="e1", quantity=1.5, at=NOW)  # type: ignore[arg-type]
    with pytest.raises(InvalidAmountError):
        UsageEvent(id="e1", quantity=-1, at=NOW)
    with pytest.raises(NaiveDatetimeError):
        UsageEvent(id="e1", quantity=1, at=datetime(2026, 1, 1))  # noqa: DTZ001


class TestErrors:
    def test_paths(self) -> None:
        assert join_path("refund", "amount") == "$.refund.amount"
        assert join_path("$.lines", "[0]") == "$.lines[0]"
        assert join_path(None, None) is None
        err = InvalidAmountError("must be positive", field="amount", value=-1)
        assert str(err) == "must be positive @ $.amount"
        err.at("refund")
        assert str(err) == "must be positive @ $.refund.amount"
        assert err.value == -1

    def test_pickle_keeps_everything(self) -> None:
        err = pickle.loads(
            pickle.dumps(InvalidAmountError("must be positive", field="amount", value=-1))
        )
        assert isinstance(err, InvalidAmountError)
        assert (str(err), err.field, err.value) == ("must be positive @ $.amount", "$.amount", -1)
        s = pickle.loads(pickle.dumps(StructureError("invalid X", errors=[("$.a", "bad")])))
        assert s.errors == [("$.a", "bad")]

    def test_hierarchy_matches_docstring(self) -> None:
        import billing_core.errors as errors_module

        doc = errors_module.__doc__ or ""
        for name in errors_module.__all__:
            obj = getattr(errors_module, name)
            if isinstance(obj, type) and issubclass(obj, BillingError):
                assert name in doc, f"{name} is missing from the hierarchy drawn in the docstring"
