"""Hypothesis strategies for billing_core's values, for the project's tests and for plugin authors.

from billing_core.testing import strategies as bst

@given(bst.money(currency="USD"), bst.aware_datetimes())
def test_something(price, when): ...
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from ..currencies import MINOR_UNITS
from ..model import (
    Certificate,
    CertificateLine,
    CertificateStatus,
    Customer,
    InvoiceLine,
    InvoiceLineKind,
    Subscription,
    SubscriptionState,
    Transaction,
    TransactionKind,
    TransactionStatus,
    UsageEvent,
)
from ..money import Money
from ..periods import Period, PeriodUnit

__all__ = [
    "ZONES",
    "amounts",
    "aware_datetimes",
    "certificate_lines",
    "certificates",
    "currencies",
    "customers",
    "dates",
    "invoice_lines",
    "money",
    "periods",
    "subscriptions",
    "transactions",
    "usage_events",
    "zones",
]

ZONES = (
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Asia/Kolkata",  # +05:30, no DST
    "Pacific/Kiritimati",  # +14:00
    "Pacific/Pago_Pago",  # -11:00
)

currencies = st.sampled_from(sorted(MINOR_UNITS))
"""Any known ISO 4217 code."""


def zones() -> st.SearchStrategy[tzinfo]:
    """Timezones that stress local-date logic (DST, half-hour offsets, the date line)."""
    return st.sampled_from(ZONES).map(lambda n: UTC if n == "UTC" else ZoneInfo(n))


def amounts(
    exponent: int = 2, *, min_units: int = -(10**12), max_units: int = 10**12, extra_digits: int = 0
) -> st.SearchStrategy[Decimal]:
    """Decimals with ``exponent + extra_digits`` decimal places, within the given minor units."""
    scale = exponent + extra_digits
    return st.integers(min_units * 10**extra_digits, max_units * 10**extra_digits).map(
        lambda n: Decimal(n).scaleb(-scale)
    )


@st.composite
def money(
    draw: st.DrawFn,
    currency: str | None = None,
    *,
    min_units: int = -(10**12),
    max_units: int = 10**12,
    extra_digits: int = 0,
) -> Money:
    """Money in ``currency`` (or any), between ``min_units`` and ``max_units`` minor units."""
    code = currency if currency is not None else draw(currencies)
    exponent = MINOR_UNITS[code]
    return Money(
        draw(
            amounts(exponent, min_units=min_units, max_units=max_units, extra_digits=extra_digits)
        ),
        code,
    )


def dates(
    min_value: date = date(1970, 1, 1), max_value: date = date(2200, 12, 31)
) -> st.SearchStrategy[date]:
    return st.dates(min_value=min_value, max_value=max_value)


def aware_datetimes(
    min_value: datetime = datetime(1990, 1, 1),  # noqa: DTZ001 - bounds are naive by Hypothesis' API
    max_value: datetime = datetime(2100, 1, 1),  # noqa: DTZ001
) -> st.SearchStrategy[datetime]:
    """Aware datetimes in the ``ZONES`` (including ambiguous and imaginary wall times)."""
    return st.datetimes(min_value=min_value, max_value=max_value, timezones=zones())


def periods(max_count: int = 36) -> st.SearchStrategy[Period]:
    return st.builds(Period, st.sampled_from(list(PeriodUnit)), st.integers(1, max_count))


_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=16)
_text = st.text(max_size=30)


def customers() -> st.SearchStrategy[Customer]:
    return st.builds(
        Customer,
        id=_ids,
        company=_text,
        address=st.lists(_text, max_size=3).map(tuple),
        city=_text,
        postal_code=_text,
        state=_text,
        country=_text,
        reseller_id=st.none() | _ids,
        timezone=st.sampled_from(ZONES),
        blocklisted=st.booleans(),
        email=st.none() | st.emails(),
    )


def certificate_lines(currency: str = "USD") -> st.SearchStrategy[CertificateLine]:
    return st.integers(1, 50).flatmap(
        lambda qty: st.builds(
            CertificateLine,
            certificate_type=st.sampled_from(["dv", "ov", "ev", "wildcard"]),
            quantity=st.just(qty),
            unit_price=money(currency, min_units=0, max_units=10**7),
            refunded_quantity=st.integers(0, qty),
            domain=st.none() | st.just("example.com"),
            certificate_id=st.none() | _ids,
        )
    )


@st.composite
def transactions(draw: st.DrawFn, currency: str | None = None) -> Transaction:
    code = currency if currency is not None else draw(currencies)
    amount = draw(money(code, min_units=0, max_units=10**9))
    refunded_units = draw(st.integers(0, amount.minor_units))
    reserved_units = draw(st.integers(0, amount.minor_units - refunded_units))
    return Transaction(
        id=draw(_ids),
        amount=amount,
        created_at=draw(aware_datetimes()),
        settled=draw(st.booleans()),
        refunded=Money.from_minor_units(refunded_units, code),
        reserved=Money.from_minor_units(reserved_units, code),
        status=draw(st.sampled_from(list(TransactionStatus))),
        kind=draw(st.sampled_from(list(TransactionKind))),
        lines=draw(st.lists(certificate_lines(code), max_size=3)),
        parent_id=draw(st.none() | _ids),
        customer_id=draw(st.none() | _ids),
        settled_at=draw(st.none() | aware_datetimes()),
        idempotency_key=draw(st.none() | _ids),
    )


def certificates() -> st.SearchStrategy[Certificate]:
    return st.builds(
        Certificate,
        id=_ids,
        domain=st.sampled_from(["example.com", "shop.example.org", "xn--bcher-kva.example"]),
        status=st.sampled_from(list(CertificateStatus)),
        customer_id=st.none() | _ids,
    )


def subscriptions() -> st.SearchStrategy[Subscription]:
    inventory = st.dictionaries(
        st.sampled_from(["dv", "ov", "ev"]), st.integers(0, 100), max_size=3
    )
    return st.builds(
        Subscription,
        id=_ids,
        customer_id=_ids,
        term=periods(),
        start=dates(),
        auto_renew=st.booleans(),
        inventory=inventory,
        renewal_inventory=inventory,
        unit_prices=st.dictionaries(
            st.sampled_from(["dv", "ov", "ev"]), money("EUR", min_units=0, max_units=10**6)
        ),
        state=st.sampled_from(list(SubscriptionState)),
    )


def usage_events() -> st.SearchStrategy[UsageEvent]:
    return st.builds(
        UsageEvent,
        id=_ids,
        quantity=amounts(0, min_units=0, max_units=10**6, extra_digits=4),
        at=aware_datetimes(),
        properties=st.dictionaries(st.sampled_from(["user", "region"]), _ids, max_size=2),
        subscription_id=st.none() | _ids,
    )


def invoice_lines(currency: str = "USD") -> st.SearchStrategy[InvoiceLine]:
    return st.builds(
        InvoiceLine,
        description=_text,
        amount=money(currency),
        kind=st.sampled_from(list(InvoiceLineKind)),
        quantity=amounts(0, min_units=0, max_units=10**4, extra_digits=2),
        unit_price=st.none() | money(currency, extra_digits=2),
        exact_amount=st.none() | money(currency, extra_digits=4),
        period_start=st.none() | dates(),
        period_end=st.none() | dates(),
    )
