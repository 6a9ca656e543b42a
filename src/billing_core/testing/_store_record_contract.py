"""The store contract, part 1: exact round trips, filters, conflicts and the money invariant.

Private: use ``billing_core.testing.store_contract.StoreContract``. The sample builders and
``assert_same`` here are shared with part 2 (``_store_work_contract``).
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import timezone as fixed_offset
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..errors import (
    ConflictError,
    InvalidAmountError,
    NotFoundError,
)
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
from ..periods import Period
from ..plugins.protocols import Store
from ..plugins.records import (
    IdempotencyRecord,
    IdempotencyState,
    QueueEntry,
)
from ..serialization import unstructure

LONDON = ZoneInfo("Europe/London")
KOLKATA = fixed_offset(timedelta(hours=5, minutes=30))
T0 = datetime(2026, 3, 29, 0, 30, tzinfo=LONDON)  # the hour before London's clocks go forward
_ids = itertools.count()


def assert_same(got: object, want: object) -> None:
    """Equal, and with the same JSON form: same digits, trailing zeros, offsets and zones."""
    assert got == want
    assert unstructure(got) == unstructure(want)


def _forged(value: Any, **changes: Any) -> Any:
    """A copy of a frozen value with fields set behind its validators' back."""
    forged = copy.copy(value)
    for name, v in changes.items():
        object.__setattr__(forged, name, v)
    return forged


def _usd(amount: str) -> Money:
    return Money(amount, "USD")


def _transaction(tid: str, amount: str = "100.00", **kw: Any) -> Transaction:
    return Transaction(id=tid, amount=_usd(amount), created_at=T0, **kw)


def _entry(eid: str, next_at: datetime | None, **kw: Any) -> QueueEntry:
    return QueueEntry(
        id=eid,
        refund_transaction_id=f"r-{eid}",
        original_transaction_id="t-1",
        amount=_usd("12.50"),
        idempotency_key=f"key-{eid}",
        created_at=T0,
        next_attempt_at=next_at,
        **kw,
    )


def _in_thread(target: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


class Boom(Exception):
    """Raised inside a session to check that it rolls back."""


class RecordContract:
    """Round trips of every record type, list filters, conflicts, the refund invariant."""

    # -- the protocol and round trips ---------------------------------------------------------
    def test_satisfies_the_store_protocol(self, store: Store) -> None:
        assert isinstance(store, Store)
        assert isinstance(store.name, str)
        assert store.name

    def test_customer_round_trip_and_replace(self, store: Store) -> None:
        c = Customer(
            id="c-1",
            company="Müller & Söhne GmbH",
            address=("Hauptstraße 1", "2. OG"),
            city="Berlin",
            postal_code="10115",
            country="DE",
            reseller_id="res-1",
            timezone="Europe/Berlin",
            blocklisted=True,
            email="billing@example.com",
        )
        with store.session() as s:
            assert s.get_customer("c-1") is None
            s.put_customer(c)
            assert_same(s.get_customer("c-1"), c)  # a session reads its own writes
        renamed = attrs.evolve(c, company="Müller AG", blocklisted=False)
        with store.session() as s:
            assert_same(s.get_customer("c-1"), c)
            s.put_customer(renamed)
        with store.session() as s:
            assert_same(s.get_customer("c-1"), renamed)

    def test_insert_customer_refuses_an_existing_id(self, store: Store) -> None:
        first = Customer(id="c-new", company="First")
        with store.session() as s:
            s.insert_customer(first)
        with store.session() as s, pytest.raises(ConflictError) as caught:
            s.insert_customer(attrs.evolve(first, company="Second"))
        assert caught.value.field == "$.customer.id"
        with store.session() as s:
            assert_same(s.get_customer("c-new"), first)

    def test_subscription_round_trip_and_filters(self, store: Store) -> None:
        sub = Subscription(
            id="s-1",
            customer_id="c-1",
            term=Period.parse("P1Y"),
            start=date(2026, 1, 31),
            auto_renew=False,
            inventory={"standard": 3, "wildcard": 1},
            renewal_inventory={"standard": 2},
            unit_prices={"standard": _usd("49.9000"), "wildcard": _usd("0.0015")},
            product="ssl-pro",
        )
        other = Subscription(
            id="s-2", customer_id="c-2", term=Period.parse("P1M"), start=date(2026, 2, 1)
        )
        third = attrs.evolve(sub, id="s-3", state=SubscriptionState.SUSPENDED)
        with store.session() as s:
            for x in (sub, other, third):
                s.put_subscription(x)
        with store.session() as s:
            assert_same(s.get_subscription("s-1"), sub)
            assert_same(s.get_subscription("s-1", lock=True), sub)
            assert s.get_subscription("nope") is None
            assert [x.id for x in s.list_subscriptions()] == ["s-1", "s-2", "s-3"]
            assert [x.id for x in s.list_subscriptions(customer_id="c-1")] == ["s-1", "s-3"]
            suspended = s.list_subscriptions(states=[SubscriptionState.SUSPENDED])
            assert [x.id for x in suspended] == ["s-3"]
            active_c1 = s.list_subscriptions(customer_id="c-1", states={SubscriptionState.ACTIVE})
            assert [x.id for x in active_c1] == ["s-1"]
            assert s.list_subscriptions(states=[]) == []
            s.put_subscription(attrs.evolve(sub, state=SubscriptionState.CANCELLED))
        with store.session() as s:  # replacing keeps the first-stored order
            listed = s.list_subscriptions()
            assert [x.id for x in listed] == ["s-1", "s-2", "s-3"]
            assert listed[0].state is SubscriptionState.CANCELLED

    def test_certificate_round_trip_and_domain_lookup(self, store: Store) -> None:
        old = Certificate(
            id="cert-1",
            domain="example.com",
            status=CertificateStatus.CANCELLED,
            certificate_type="wildcard",
            customer_id="c-1",
            subscription_id="s-1",
            transaction_id="t-1",
        )
        new = Certificate(id="cert-2", domain="example.com", status=CertificateStatus.ISSUED)
        elsewhere = Certificate(id="cert-3", domain="example.org")
        with store.session() as s:
            for c in (old, elsewhere, new):
                s.put_certificate(c)
        with store.session() as s:
            assert_same(s.get_certificate("cert-1"), old)
            assert s.get_certificate("cert-9") is None
            found = s.certificates_for_domain("example.com")
            assert [c.id for c in found] == ["cert-1", "cert-2"]
            assert_same(found[1], new)
            assert s.certificates_for_domain("example.net") == []

    def test_transaction_round_trip_is_exact(self, store: Store) -> None:
        line = CertificateLine(
            certificate_type="wildcard",
            quantity=2,
            unit_price=_usd("60.250"),
            refunded_quantity=1,
            domain="example.com",
            certificate_id="cert-1",
        )
        usd = Transaction(
            id="t-usd",
            amount=_usd("120.500"),
            created_at=T0,
            settled=True,
            refunded=_usd("20.10"),
            reserved=_usd("0.005"),
            status=TransactionStatus.PARTIALLY_REFUNDED,
            kind=TransactionKind.CAPTURE,
            lines=(line,),
            parent_id="t-auth",
            customer_id="c-1",
            subscription_id="s-1",
            settled_at=datetime(2026, 3, 30, 23, 59, 59, 999999, tzinfo=KOLKATA),
            gateway="sandbox",
            gateway_reference="ch_123",
            idempotency_key="idem-1",
        )
        jpy = Transaction(id="t-jpy", amount=Money("5000", "JPY"), created_at=T0)
        kwd = Transaction(
            id="t-kwd",
            amount=Money("1.250", "KWD"),
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            reserved=Money("1.250", "KWD"),
            status=TransactionStatus.UNKNOWN,
        )
        with store.session() as s:
            for t in (usd, jpy, kwd):
                s.insert_transaction(t)
        with store.session() as s:
            for t in (usd, jpy, kwd):
                assert_same(s.get_transaction(t.id), t)
                assert_same(s.get_transaction(t.id, lock=True), t)
            assert s.get_transaction("t-none") is None
            assert s.get_transaction("t-none", lock=True) is None

    @settings(
        max_examples=20,
        deadline=None,
        # One store per test function (examples use fresh ids); every subclass runs this method
        # on its own store, which is the point of a contract suite.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(data=st.data())
    def test_transaction_amounts_property(self, store: Store, data: st.DataObject) -> None:
        """Any amount split into refunded + reserved + rest, at any precision, round-trips
        exactly; one smallest unit more reserved is refused."""

        def draw_upto(limit: Decimal) -> Decimal:  # 0 <= d <= limit, with 0 to 6 places
            places = data.draw(st.integers(0, 6))
            most = int(limit.scaleb(places).to_integral_value(ROUND_FLOOR))
            return Decimal(data.draw(st.integers(0, most))).scaleb(-places)

        amount = draw_upto(Decimal(10**9))
        refunded = draw_upto(amount)
        reserved = draw_upto(amount - refunded)
        txn = Transaction(
            id=f"t-prop-{next(_ids)}",
            amount=_usd(str(amount)),
            refunded=_usd(str(refunded)),
            reserved=_usd(str(reserved)),
            created_at=T0,
        )
        scale = max(
            -int(m.amount.as_tuple().exponent) for m in (txn.amount, txn.refunded, txn.reserved)
        )
        full = txn.amount - txn.refunded
        with store.session() as s:
            s.insert_transaction(txn)
        with store.session() as s:
            assert_same(s.get_transaction(txn.id), txn)
            one_more = full + Money(Decimal(1).scaleb(-max(scale, 0)), "USD")
            with pytest.raises(InvalidAmountError):
                s.update_transaction(_forged(txn, reserved=one_more))
            assert_same(s.get_transaction(txn.id), txn)
            s.update_transaction(attrs.evolve(txn, reserved=full))
        with store.session() as s:
            assert_same(s.get_transaction(txn.id), attrs.evolve(txn, reserved=full))

    def test_list_transactions_filters(self, store: Store) -> None:
        sale = _transaction("t-1", customer_id="c-1")
        refund = _transaction(
            "t-2",
            "10.00",
            customer_id="c-1",
            parent_id="t-1",
            kind=TransactionKind.REFUND,
            status=TransactionStatus.PENDING,
        )
        other = _transaction("t-3", customer_id="c-2", status=TransactionStatus.FAILED)
        with store.session() as s:
            for t in (sale, refund, other):
                s.insert_transaction(t)
            assert [t.id for t in s.list_transactions()] == ["t-1", "t-2", "t-3"]
            assert [t.id for t in s.list_transactions(customer_id="c-1")] == ["t-1", "t-2"]
            assert [t.id for t in s.list_transactions(parent_id="t-1")] == ["t-2"]
            failed_or_pending = [TransactionStatus.FAILED, TransactionStatus.PENDING]
            assert [t.id for t in s.list_transactions(statuses=failed_or_pending)] == ["t-2", "t-3"]
            by_both = s.list_transactions(customer_id="c-1", statuses=[TransactionStatus.COMPLETED])
            assert [t.id for t in by_both] == ["t-1"]
            assert s.list_transactions(parent_id="t-3") == []

    # -- conflicts and the money invariant ----------------------------------------------------
    def test_duplicate_transaction_id_conflicts_and_session_goes_on(self, store: Store) -> None:
        first = _transaction("t-1")
        with store.session() as s:
            s.insert_transaction(first)
        with store.session() as s:
            with pytest.raises(ConflictError):
                s.insert_transaction(_transaction("t-1", "1.00"))
            s.insert_transaction(_transaction("t-2"))  # the session is still usable
        with store.session() as s:
            assert_same(s.get_transaction("t-1"), first)
            assert s.get_transaction("t-2") is not None

    def test_update_of_a_missing_transaction_is_not_found(self, store: Store) -> None:
        with store.session() as s, pytest.raises(NotFoundError):
            s.update_transaction(_transaction("t-ghost"))

    def test_refund_plus_reserved_above_amount_is_refused(self, store: Store) -> None:
        t = _transaction("t-1", "10.00", refunded=_usd("6.00"))
        with store.session() as s:
            s.insert_transaction(t)
        over = _forged(t, reserved=_usd("4.01"))
        with store.session() as s, pytest.raises(InvalidAmountError) as info:
            s.update_transaction(over)
        assert info.value.field is not None and "reserved" in info.value.field
        with store.session() as s, pytest.raises(InvalidAmountError):
            s.insert_transaction(_forged(_transaction("t-2", "10.00"), refunded=_usd("10.001")))
        with store.session() as s:
            assert_same(s.get_transaction("t-1"), t)
            assert s.get_transaction("t-2") is None
            exact = attrs.evolve(t, reserved=_usd("4.00"))  # up to the amount is fine
            s.update_transaction(exact)
        with store.session() as s:
            assert_same(s.get_transaction("t-1"), exact)

    def test_sub_cent_refund_invariant(self, store: Store) -> None:
        t = _transaction("t-1", "0.010", refunded=_usd("0.0050"))
        with store.session() as s:
            s.insert_transaction(t)
            with pytest.raises(InvalidAmountError):
                s.update_transaction(_forged(t, reserved=_usd("0.0051")))
            s.update_transaction(attrs.evolve(t, reserved=_usd("0.00500")))
        with store.session() as s:
            assert str(s.get_transaction("t-1").reserved.amount) == "0.00500"  # type: ignore[union-attr]

    # -- queue ---------------------------------------------------------------------------------
    # -- usage, invoice lines -----------------------------------------------------------------
    def test_usage_events_dedup_and_range(self, store: Store) -> None:
        start = datetime(2026, 4, 1, tzinfo=UTC)
        end = datetime(2026, 5, 1, tzinfo=UTC)
        tick = timedelta(microseconds=1)

        def ev(eid: str, at: datetime, qty: str = "1", **kw: Any) -> UsageEvent:
            kw.setdefault("subscription_id", "s-1")
            return UsageEvent(id=eid, quantity=Decimal(qty), at=at, **kw)

        first = ev("e-start", start, "1.500", metric="api", properties={"user": "u-1", "n": 2})
        events = [
            ev("e-last", end - tick, "0.000001"),
            first,
            ev("e-end", end),
            ev("e-before", start - tick),
            ev("e-london", datetime(2026, 4, 15, 12, 0, tzinfo=LONDON), "3.10", metric="api"),
            ev("e-other-sub", start, subscription_id="s-2"),
            ev("e-storage", start + tick, "250.0000", metric="storage"),
        ]
        with store.session() as s:
            assert s.add_usage_events(events) == 7
            assert s.add_usage_events([]) == 0
        with store.session() as s:
            again = [ev("e-start", start, "99"), ev("e-new", start), ev("e-new", start, "7")]
            assert (
                s.add_usage_events(again) == 1
            )  # stored ids ignored, a batch's repeats count once
        with store.session() as s:
            got = list(s.usage_events(subscription_id="s-1", start=start, end=end))
            assert [e.id for e in got] == ["e-start", "e-new", "e-storage", "e-london", "e-last"]
            assert_same(got[0], first)
            assert_same(got[3], events[4])
            api = s.usage_events(subscription_id="s-1", start=start, end=end, metric="api")
            assert [e.id for e in api] == ["e-start", "e-london"]
            assert list(s.usage_events(subscription_id="s-1", start=start, end=start)) == []
            assert [e.id for e in s.usage_events(subscription_id="s-2", start=start, end=end)] == [
                "e-other-sub"
            ]
            noon = datetime(2026, 4, 15, 11, 0, tzinfo=UTC)  # 12:00 London summer time
            window = s.usage_events(subscription_id="s-1", start=noon, end=noon + tick)
            assert [e.id for e in window] == ["e-london"]

    def test_invoice_lines_append_in_order(self, store: Store) -> None:
        lines = [
            InvoiceLine(
                description="API calls, April",
                amount=_usd("0.01"),
                kind=InvoiceLineKind.USAGE,
                quantity=Decimal("2.500"),
                unit_price=_usd("0.0015"),
                exact_amount=_usd("0.0037500"),
                period_start=date(2026, 4, 1),
                period_end=date(2026, 5, 1),
                subscription_id="s-1",
            ),
            InvoiceLine(description="Unused wildcard", amount=_usd("-5.00"), kind="credit"),
        ]
        extra = InvoiceLine(description="Renewal", amount=_usd("49.90"), kind="renewal")
        with store.session() as s:
            s.add_invoice_lines("s-1", lines)
            s.add_invoice_lines("s-1", [])
        with store.session() as s:
            s.add_invoice_lines("s-1", [extra])
            got = s.invoice_lines("s-1")
            assert len(got) == 3
            for g, w in zip(got, [*lines, extra], strict=True):
                assert_same(g, w)
            assert s.invoice_lines("s-2") == []

    # -- idempotency ---------------------------------------------------------------------------
    def test_idempotency_records(self, store: Store) -> None:
        rec = IdempotencyRecord(
            key="refund:t-1:1",
            operation="refund",
            fingerprint="sha256:ab12",
            created_at=T0,
            owner="worker-1",
        )
        with store.session() as s:
            assert s.get_idempotency("refund:t-1:1") is None
            s.insert_idempotency(rec)
        done = attrs.evolve(
            rec,
            state=IdempotencyState.COMPLETED,
            owner=None,
            result={
                "amount": {"amount": "10.50", "currency": "USD"},
                "n": 3,
                "ok": True,
                "items": [1, "2", None],
                "nested": {"k": []},
            },
        )
        with store.session() as s:
            with pytest.raises(ConflictError):
                s.insert_idempotency(attrs.evolve(rec, fingerprint="other"))
            assert_same(s.get_idempotency("refund:t-1:1", lock=True), rec)
            s.put_idempotency(done)
            s.put_idempotency(attrs.evolve(rec, key="k-2"))  # put inserts too
        with store.session() as s:
            assert_same(s.get_idempotency("refund:t-1:1"), done)
            assert_same(s.get_idempotency("k-2"), attrs.evolve(rec, key="k-2"))
            s.delete_idempotency("k-2")
            s.delete_idempotency("k-never")  # absent: nothing happens
            assert s.get_idempotency("k-2") is None
        with store.session() as s:
            assert s.get_idempotency("k-2") is None
            s.insert_idempotency(attrs.evolve(rec, key="k-2"))  # a forgotten key is free again
            assert_same(s.get_idempotency("refund:t-1:1"), done)
            s.insert_idempotency(attrs.evolve(rec, key="k-3", operation="charge"))
        with store.session() as s:  # in progress, of one operation: k-2 (not done, not k-3)
            assert [r.key for r in s.unresolved_idempotency("refund")] == ["k-2"]
            assert [r.key for r in s.unresolved_idempotency("charge")] == ["k-3"]
            assert s.unresolved_idempotency("close") == []
