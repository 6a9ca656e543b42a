"""JSON: every value round-trips exactly; bad JSON raises one error listing every bad field."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import (
    BillingError,
    Certificate,
    Customer,
    InvoiceLine,
    Money,
    Period,
    StructureError,
    Subscription,
    Transaction,
    TransactionStatus,
    UsageEvent,
)
from billing_core.serialization import dumps, loads, structure, unstructure
from billing_core.testing import strategies as bst

LONDON = ZoneInfo("Europe/London")


def _round_trip(value: Any, cls: type) -> None:
    data = unstructure(value)
    text = json.dumps(data)
    back: Any = loads(text, cls)
    assert back == value
    assert unstructure(back) == data  # exactly the same text form, digits and zone included


@given(bst.transactions())
def test_transactions_round_trip(t: Transaction) -> None:
    _round_trip(t, Transaction)


@given(bst.customers())
def test_customers_round_trip(c: Customer) -> None:
    _round_trip(c, Customer)


@given(bst.subscriptions())
def test_subscriptions_round_trip(s: Subscription) -> None:
    _round_trip(s, Subscription)


@given(bst.certificates())
def test_certificates_round_trip(c: Certificate) -> None:
    _round_trip(c, Certificate)


@given(bst.usage_events())
def test_usage_events_round_trip(e: UsageEvent) -> None:
    _round_trip(e, UsageEvent)


@given(bst.invoice_lines())
def test_invoice_lines_round_trip(line: InvoiceLine) -> None:
    _round_trip(line, InvoiceLine)


@given(bst.money(extra_digits=3))
def test_money_round_trip(m: Money) -> None:
    _round_trip(m, Money)


@given(bst.periods())
def test_periods_round_trip(p: Period) -> None:
    _round_trip(p, Period)


@given(st.fractions())
def test_fractions_round_trip(f: Fraction) -> None:
    _round_trip(f, Fraction)


def test_exact_forms() -> None:
    assert unstructure(Money("19.990", "USD")) == {"amount": "19.990", "currency": "USD"}
    assert unstructure(Period.months(1)) == "P1M"
    assert unstructure(Fraction(17, 31)) == "17/31"
    assert unstructure(TransactionStatus.PARTIALLY_REFUNDED) == "partially_refunded"
    when = datetime(2026, 3, 29, 10, 0, tzinfo=LONDON)
    assert unstructure(when) == "2026-03-29T10:00:00+01:00[Europe/London]"
    assert unstructure(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00+00:00"
    assert unstructure(date(2026, 11, 21)) == "2026-11-21"


def test_zone_survives_so_calendar_arithmetic_agrees() -> None:
    when = datetime(2026, 3, 28, 10, 0, tzinfo=LONDON)  # the day before the clocks change
    back = structure(unstructure(when), datetime)
    assert Period.days(1).after(back) == Period.days(1).after(when)
    assert Period.days(1).after(back).utcoffset() == Period.days(1).after(when).utcoffset()


def _valid_transaction() -> dict[str, Any]:
    t = Transaction(
        id="t-1",
        amount=Money("49.00", "USD"),
        created_at=datetime(2026, 10, 1, 9, 30, tzinfo=UTC),
        settled=True,
    )
    data: dict[str, Any] = unstructure(t)
    return data


def test_every_bad_field_is_listed_with_its_path() -> None:
    data = _valid_transaction()
    del data["id"]
    data["amount"] = {"amount": 49.0, "currency": "USD"}
    data["created_at"] = "2026-10-01T09:30:00"
    data["status"] = "done"
    data["surprise"] = True
    with pytest.raises(StructureError) as info:
        structure(data, Transaction)
    err = info.value
    paths = dict(err.errors)
    assert set(paths) == {"$.id", "$.amount.amount", "$.created_at", "$.status", "$.surprise"}
    assert paths["$.id"] == "required field missing"
    assert "float" in paths["$.amount.amount"]
    assert "timezone-aware" in paths["$.created_at"]
    assert paths["$.surprise"] == "extra field not allowed"
    assert isinstance(err, ValueError) and isinstance(err, BillingError)
    assert str(err).startswith("invalid Transaction: ")


@pytest.mark.parametrize(
    ("patch", "path", "fragment"),
    [
        ({"amount": {"amount": "NaN", "currency": "USD"}}, "$.amount.amount", "finite"),
        ({"amount": {"amount": "1", "currency": "ABC"}}, "$.amount.currency", "unknown currency"),
        ({"amount": {"amount": "1"}}, "$.amount.currency", "required field missing"),
        ({"amount": "49.00"}, "$.amount", "must be an object"),
        ({"settled": "yes"}, "$.settled", "true or false"),
        ({"created_at": "yesterday"}, "$.created_at", "ISO 8601"),
        (
            {"created_at": "2026-10-01T09:30:00+01:00[Mars/Olympus]"},
            "$.created_at",
            "unknown timezone",
        ),
        (
            {"created_at": "2026-07-01T09:30:00+00:00[Europe/London]"},
            "$.created_at",
            "does not match",
        ),
        ({"refunded": {"amount": "60.00", "currency": "USD"}}, "$.refunded", "between 0"),
        ({"refunded": {"amount": "1.00", "currency": "EUR"}}, "$.refunded", "must be in USD"),
        (
            {
                "lines": [
                    {
                        "certificate_type": "dv",
                        "quantity": 0,
                        "unit_price": {"amount": "1", "currency": "USD"},
                    }
                ]
            },
            "$.lines[0].quantity",
            "positive",
        ),
        (
            {
                "lines": [
                    {
                        "certificate_type": "dv",
                        "quantity": 1.5,
                        "unit_price": {"amount": "1", "currency": "USD"},
                    }
                ]
            },
            "$.lines[0].quantity",
            "integer",
        ),
        ({"id": 7}, "$.id", "must be a string"),
    ],
)
def test_bad_fields(patch: dict[str, Any], path: str, fragment: str) -> None:
    data = {**_valid_transaction(), **patch}
    with pytest.raises(StructureError) as info:
        structure(data, Transaction)
    paths = dict(info.value.errors)
    assert path in paths, info.value.errors
    assert fragment in paths[path]


def test_bad_json_text() -> None:
    with pytest.raises(StructureError, match="invalid JSON"):
        loads("{not json", Transaction)
    with pytest.raises(StructureError):
        loads('{"amount": 1.5, "currency": "USD"}', Money)


def test_dumps_is_plain_json() -> None:
    text = dumps(Money("0.0015", "USD"))
    assert json.loads(text) == {"amount": "0.0015", "currency": "USD"}
    assert loads(text, Money).amount == Decimal("0.0015")
