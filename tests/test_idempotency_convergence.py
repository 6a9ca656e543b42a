"""Idempotency keys always converge (issue 11, observation 5), on memory, SQLite and PostgreSQL.

The life of a key (docs/engine.md, "Idempotency keys: a key's life"), cell by cell:

* bad input or a missing record *before anything was written ahead*: the key is forgotten, so
  the same key runs again with corrected parameters;
* an error *after* a write-ahead (a store error while recording the gateway's answer, an
  ``InvalidValueError`` from a certificate provider after the charge): the key stays bound to
  what it wrote ahead, its lease ends, and ``reconcile()`` resolves it; a replay then answers
  from the records and nothing runs twice;
* a crashed caller (``Crash``: nothing after it runs) at each of four points: "reconcile, then
  ask again" moves the money once, and a new key for the same request is refused while the old
  one is unresolved.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_core import (
    BillingEngine,
    Customer,
    Money,
    NotFoundError,
    OperationInProgressError,
    Period,
)
from billing_core.engine import (
    ChargeOutcome,
    InventoryResult,
    RefundOutcome,
    RefundResult,
    SubscriptionResult,
)
from billing_core.errors import InvalidValueError
from billing_core.plugins.manager import Plugins
from billing_core.plugins.memory_store import MemoryStore
from billing_core.plugins.protocols import Store, StoreSession
from billing_core.plugins.records import IdempotencyRecord, IdempotencyState
from billing_core.plugins.sandbox_certificates import SandboxCertificateProvider
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.plugins.sql_store import SqlStore
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock
from billing_core.testing.hooked_gateway import Crash, HookedGateway

ADMIN = Actor(id="ada", role="admin")
START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
LEASE = 300
USD = "USD"
SEVEN = Money("7.00", USD)


class StoreDown(Exception):
    """What a driver raises when the store refuses a session (a SQLite busy timeout)."""


@attrs.define
class FlakyStore:
    """``inner``, whose next ``fail`` sessions raise ``StoreDown`` on entry."""

    inner: Store
    name: str = "flaky"
    fail: int = 0

    def session(self) -> AbstractContextManager[StoreSession]:
        if self.fail:
            self.fail -= 1
            raise StoreDown("database is locked")
        return self.inner.session()

    def close(self) -> None:
        self.inner.close()


class FailingProvider(SandboxCertificateProvider):
    """A certificate provider whose ``order`` raises ``error`` (once)."""

    def __init__(self) -> None:
        super().__init__()
        self.error: Exception | None = None

    def order(self, **kwargs: Any) -> Any:
        error, self.error = self.error, None
        if error is not None:
            raise error
        return super().order(**kwargs)


@attrs.define
class Rig:
    engine: BillingEngine
    store: FlakyStore
    gateway: SandboxGateway
    hooked: HookedGateway
    clock: ManualClock
    provider: FailingProvider

    def payment(self) -> str:
        sale = self.engine.charge("c1", Money("100.00", USD), idempotency_key="p", actor=ADMIN)
        assert sale.transaction_id is not None
        self.clock.advance(days=2)  # settled: refunds, not voids
        return sale.transaction_id

    def refund(self, payment: str, key: str) -> RefundResult:
        return self.engine.refund_transaction(
            payment, amount=SEVEN, idempotency_key=key, actor=ADMIN
        )

    def key(self, key: str) -> IdempotencyRecord | None:
        with self.store.session() as s:
            return s.get_idempotency(key)

    def at_gateway(self, operation: str) -> list[Money]:
        return [e.amount for e in self.gateway.ledger() if e.operation == operation]


def _rig(url: str) -> Rig:
    clock = ManualClock(START)
    gateway = SandboxGateway(clock=clock, settle_after=timedelta(days=1))
    hooked = HookedGateway(gateway)
    inner: Store = MemoryStore() if url == "memory://" else SqlStore(url)
    store = FlakyStore(inner)
    provider = FailingProvider()
    engine = BillingEngine(
        store=store,
        clock=clock,
        gateway=hooked,
        certificate_provider=provider,
        plugins=Plugins(clock=clock, entry_points=False),
        lease_seconds=LEASE,
        worker_id="w1",
    )
    engine.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
    return Rig(
        engine=engine, store=store, gateway=gateway, hooked=hooked, clock=clock, provider=provider
    )


@pytest.fixture
def rig(store_url: str) -> Iterator[Rig]:
    url = store_url
    made = _rig(url)
    yield made
    made.engine.store.close()


# -- before anything was written ahead: the key is forgotten ----------------------------------
def test_a_missing_transaction_forgets_the_key(rig: Rig) -> None:
    payment = rig.payment()
    with pytest.raises(NotFoundError, match="no transaction 'tx-typo'"):
        rig.refund("tx-typo", key="k")
    assert rig.key("k") is None

    result = rig.refund(payment, key="k")  # the same key, the right id

    assert result.outcome is RefundOutcome.REFUNDED
    assert rig.at_gateway("refund") == [SEVEN]


# -- after a write-ahead: the key stays bound, reconcile resolves it --------------------------
def test_a_store_error_after_the_charge_converges_after_reconcile(rig: Rig) -> None:
    rig.hooked.after["sale"] = lambda _: setattr(rig.store, "fail", 1)  # recording fails
    with pytest.raises(StoreDown):
        rig.engine.charge("c1", Money("12.00", USD), idempotency_key="c", actor=ADMIN)
    record = rig.key("c")
    assert record is not None and record.state is IdempotencyState.IN_PROGRESS
    assert len(record.written_ahead) == 1
    with pytest.raises(OperationInProgressError, match="run reconcile"):
        rig.engine.charge("c1", Money("12.00", USD), idempotency_key="c", actor=ADMIN)

    rig.engine.reconcile()  # no clock moved: the call has ended, nothing waits for its lease

    done = rig.key("c")
    assert done is not None and done.state is IdempotencyState.COMPLETED
    again = rig.engine.charge("c1", Money("12.00", USD), idempotency_key="c", actor=ADMIN)
    assert again.outcome is ChargeOutcome.CHARGED
    assert again.transaction_id == record.written_ahead[0]
    assert rig.at_gateway("sale") == [Money("12.00", USD)]


@pytest.mark.parametrize(
    "error", [InvalidValueError("is not a domain we sign", field="domain"), OSError("timed out")]
)
def test_a_provider_failing_after_the_charge_leaves_a_recorded_follow_up(
    rig: Rig, error: Exception
) -> None:
    """The customer is charged and the subscription recorded; the certificate is kept pending
    with a follow-up; the key is completed, so the same key never runs twice."""
    rig.provider.error = error

    def order() -> SubscriptionResult:
        return rig.engine.add_subscription(
            "c1",
            term=Period.years(1),
            inventory={"dv": 1},
            unit_prices={"dv": Money("100.00", USD)},
            domains=["example.com"],
            idempotency_key="order-1",
            actor=ADMIN,
        )

    result = order()

    assert result.outcome is ChargeOutcome.CHARGED
    assert "could not order the certificate of example.com (" in result.explanation
    assert result.subscription_id is not None
    assert rig.engine.subscription(result.subscription_id).inventory == {"dv": 1}
    (follow_up,) = [e for e in rig.engine.audit_log() if e.action == "certificate.order_pending"]
    assert follow_up.subject_id == result.certificate_ids[0]
    assert follow_up.detail["provider_key"] == f"order-1:cert:{result.certificate_ids[0]}"
    assert order() == result  # a replay
    assert rig.at_gateway("sale") == [Money("100.00", USD)]


def test_a_provider_failing_after_added_inventory_never_adds_it_twice(rig: Rig) -> None:
    sub = rig.engine.add_subscription(
        "c1",
        term=Period.years(1),
        inventory={"dv": 1},
        unit_prices={"dv": Money("100.00", USD)},
        idempotency_key="order-1",
        actor=ADMIN,
    )
    assert sub.subscription_id is not None
    rig.provider.error = InvalidValueError("is not a domain we sign", field="domain")

    def add() -> InventoryResult:
        assert sub.subscription_id is not None
        return rig.engine.add_inventory(
            sub.subscription_id,
            certificate_type="dv",
            quantity=1,
            domains=["shop.example.com"],
            idempotency_key="more-1",
            actor=ADMIN,
        )

    first = add()
    assert add() == first
    assert rig.engine.subscription(sub.subscription_id).inventory == {"dv": 2}
    assert "could not order the certificate of shop.example.com" in first.explanation


# -- a crashed caller: "reconcile, then ask again" moves the money once -----------------------
def _crash(*_: object) -> None:
    raise Crash


CRASH_POINTS = ["before the write-ahead", "before sending", "after sending", "after recording"]


def _crash_refund(rig: Rig, payment: str, point: str) -> None:
    if point == "before the write-ahead":
        rig.hooked.before["lookup"] = _crash
    elif point == "before sending":
        rig.hooked.before["refund"] = _crash
    elif point == "after sending":
        rig.hooked.after["refund"] = _crash
    else:  # the refund is recorded; the process dies before the key is completed

        def die(_: object) -> None:
            raise Crash

        rig.engine.ctx.emit = die  # recording the refund's event: the key is not completed yet
    record = rig.engine.outbox.record
    try:
        with pytest.raises(Crash):
            rig.refund(payment, key="r")
    finally:
        rig.engine.ctx.emit = record


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_the_documented_recovery_refunds_once(rig: Rig, point: str) -> None:
    payment = rig.payment()
    _crash_refund(rig, payment, point)
    rig.clock.advance(days=1)  # a day later, on another worker

    with pytest.raises(OperationInProgressError, match="unresolved under idempotency key 'r'"):
        rig.refund(payment, key="r-again")  # a new key for the same request
    rig.engine.reconcile()
    answer = rig.refund(payment, key="r")  # the old key answers
    rig.engine.process_refund_queue()
    rig.clock.advance(days=1)
    rig.engine.process_refund_queue()

    assert answer.outcome in (RefundOutcome.REFUNDED, RefundOutcome.QUEUED)
    assert rig.at_gateway("refund") == [SEVEN]
    assert rig.engine.transaction(payment).refunded == SEVEN
    assert rig.refund(payment, key="r") == answer  # completed: a replay
    key = rig.key("r")
    assert key is not None and key.state is IdempotencyState.COMPLETED


def _unresolved(rig: Rig) -> bool:
    record = rig.key("r")
    return record is not None and record.state is IdempotencyState.IN_PROGRESS


@settings(max_examples=25, deadline=None)
@given(
    point=st.sampled_from(CRASH_POINTS),
    steps=st.lists(st.sampled_from(["wait", "reconcile", "old", "new", "queue"]), max_size=8),
)
def test_whatever_follows_a_crash_the_money_moves_at_most_once(
    point: str, steps: list[str]
) -> None:
    """After a crash at any point, any mix of waiting, reconciling, queue runs and asking
    again with the old key, or with new keys for the same request once the crashed call's lease
    has run out (while it runs, a crashed call cannot be told from a running one, and a second
    request for the same amount is a second refund), refunds 7.00 at most once, and
    the books agree with the gateway once reconciled."""
    rig = _rig("memory://")
    payment = rig.payment()
    _crash_refund(rig, payment, point)
    dead = False  # a crashed call is told from a running one by its lease only
    for i, step in enumerate(steps):
        if step == "wait":
            rig.clock.advance(seconds=LEASE)
            dead = True
        elif step == "new" and not (dead and _unresolved(rig)):
            continue  # once the old key has answered, a new key is a new request
        elif step == "reconcile":
            rig.engine.reconcile()
        elif step == "queue":
            rig.engine.process_refund_queue()
        else:
            with suppress(OperationInProgressError):
                rig.refund(payment, key="r" if step == "old" else f"new-{i}")
    rig.clock.advance(days=1)
    rig.engine.reconcile()
    rig.engine.process_refund_queue()
    assert sum((m for m in rig.at_gateway("refund")), Money("0.00", USD)) <= SEVEN
    assert rig.engine.transaction(payment).refunded == sum(
        (m for m in rig.at_gateway("refund")), Money("0.00", USD)
    )
