"""The event outbox (issue 11, observation 6), on memory, SQLite and PostgreSQL.

Listeners used to run inside the open store session, before commit: a slow listener stalled every
other writer, a listener waiting on another writer deadlocked, and PostgreSQL readers saw
uncommitted states; ``engine.events`` grew without bound. Now an event is recorded in the session
of the change and delivered after commit, at least once, with retries and a delivery record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_core import BillingEngine, Customer, Money
from billing_core.cli.steps import DEFAULT_STEPS, Events, StepContext
from billing_core.engine import RefundOutcome
from billing_core.plugins.events import Event, RefundFailed, RefundGaveUp
from billing_core.plugins.hookspecs import hookimpl
from billing_core.plugins.manager import Plugins
from billing_core.plugins.memory_store import MemoryStore
from billing_core.plugins.protocols import Store
from billing_core.plugins.records import OutboxEvent, QueueEntry, QueueState
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.plugins.sql_store import SqlStore
from billing_core.rules.permissions import Actor
from billing_core.rules.retry import RetryPolicy
from billing_core.testing.clock import ManualClock

ADMIN = Actor(id="ada", role="admin")
AGENT = Actor(id="sam", role="support_agent")
START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
USD = "USD"


class Listener:
    """A plugin listening on ``billing_core_refund_gave_up``: runs ``action`` per event."""

    def __init__(self, action: Any = None) -> None:
        self.action = action
        self.calls: list[RefundGaveUp] = []

    @hookimpl
    def billing_core_refund_gave_up(self, event: RefundGaveUp) -> None:
        self.calls.append(event)
        if self.action is not None:
            self.action(event)


class FailedListener:
    """Listens on ``billing_core_refund_failed``; raises for the markers in ``fail``."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.fail: set[str] = set()

    @hookimpl
    def billing_core_refund_failed(self, event: RefundFailed) -> None:
        if event.error in self.fail:
            self.fail.discard(event.error)  # fails once
            raise RuntimeError(f"listener down on {event.error}")
        self.seen.append(event.error)


@attrs.define
class Rig:
    engine: BillingEngine
    clock: ManualClock
    gateway: SandboxGateway
    url: str
    payment: str
    opened: list[Store] = attrs.field(factory=list)

    def other_store(self) -> Store:
        """Another writer's store: a store of its own (other connections) on SQL; the same
        object on memory, used from another thread."""
        if self.url.startswith("memory"):
            return self.engine.store
        store = SqlStore(self.url)
        self.opened.append(store)
        return store

    def other_engine(self) -> BillingEngine:
        return BillingEngine(store=self.other_store(), clock=self.clock, gateway=self.gateway)

    def give_up_refund(self, key: str = "r1") -> None:
        """A refund the gateway declines, with a policy that allows no retry: it gives up, and
        ``RefundGaveUp`` is emitted inside the session that records it."""
        self.gateway.script("refund", ["decline"])
        result = self.engine.refund_transaction(
            self.payment, amount=Money("50.00", USD), idempotency_key=key, actor=AGENT
        )
        assert result.outcome is RefundOutcome.GAVE_UP, result.explanation


def _rig(url: str, *plugins: object, keep_events: int = 1000) -> Rig:
    clock = ManualClock(START)
    gateway = SandboxGateway(clock=clock, settle_after=timedelta(days=1))
    engine = BillingEngine(
        store=url,
        clock=clock,
        plugins=Plugins(clock=clock, plugins=plugins, entry_points=False),
        gateway=gateway,
        retry_policy=RetryPolicy(retries=0),
        notify_emails=["billing@example.com"],
        keep_events=keep_events,
    )
    engine.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
    charge = engine.charge("c1", Money("100.00", USD), idempotency_key="pay", actor=AGENT)
    assert charge.transaction_id is not None
    clock.advance(days=2)  # settled: refunds, not voids
    return Rig(engine=engine, clock=clock, gateway=gateway, url=url, payment=charge.transaction_id)


@pytest.fixture
def listener() -> Listener:
    return Listener()


@pytest.fixture
def rig(store_url: str, listener: Listener) -> Iterator[Rig]:
    made = _rig(store_url, listener)
    yield made
    for store in made.opened:
        store.close()
    made.engine.store.close()


def _in_thread(target: Any, timeout: float) -> tuple[bool, list[Any], list[BaseException]]:
    """Run ``target`` in a thread and wait up to ``timeout`` s: (finished, [result], [error])."""
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(target())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive(), results, errors


# -- a slow listener holds no lock -----------------------------------------------------------------
def test_a_3_second_listener_does_not_stall_another_writer(rig: Rig, listener: Listener) -> None:
    started, finished = threading.Event(), threading.Event()

    def mailer(_: RefundGaveUp) -> None:
        started.set()
        time.sleep(3)  # a slow SMTP server
        finished.set()

    listener.action = mailer
    other = rig.other_engine()  # opened first: opening a SQL store migrates, which writes
    caller = threading.Thread(target=rig.give_up_refund, daemon=True)
    caller.start()
    assert started.wait(30), "the listener never ran"
    began = time.monotonic()
    # another writer on the same payment (its row is what the refund's session locked)
    result = other.refund_transaction(
        rig.payment, amount=Money("10.00", USD), idempotency_key="r2", actor=AGENT
    )
    took = time.monotonic() - began
    still_mailing = not finished.is_set()
    print(f"\nOUTBOX the other writer took {took:.3f} s during a 3 s listener")
    caller.join(30)
    assert result.outcome is RefundOutcome.REFUNDED
    assert still_mailing and took < 1.5, f"the other writer waited {took:.2f} s for the listener"
    assert len(listener.calls) == 1


def test_a_listener_waiting_on_another_writer_does_not_deadlock(
    rig: Rig, listener: Listener
) -> None:
    outcome: list[tuple[bool, list[Any], list[BaseException]]] = []
    other = rig.other_engine()

    def wait_for_a_writer(_: RefundGaveUp) -> None:
        def write() -> str:  # on the same payment: the row the refund's session locked
            return other.refund_transaction(
                rig.payment, amount=Money("10.00", USD), idempotency_key="r2", actor=AGENT
            ).outcome

        outcome.append(_in_thread(write, timeout=5))

    listener.action = wait_for_a_writer
    finished, _, _ = _in_thread(rig.give_up_refund, timeout=60)
    assert finished
    [(done, results, errors)] = outcome
    assert errors == []
    assert done, "the writer the listener waited for was blocked by the listener's own session"
    assert results == [RefundOutcome.REFUNDED]


def test_a_listener_sees_the_committed_state(rig: Rig, listener: Listener) -> None:
    """On PostgreSQL another connection reads the change while the listener runs; on SQLite and
    memory another thread can read at all."""
    seen: list[tuple[bool, list[Any], list[BaseException]]] = []
    reader = rig.other_store()

    def read_elsewhere(event: RefundGaveUp) -> None:
        def read() -> tuple[list[QueueState], Money | None]:
            with reader.session() as s:
                states = [e.state for e in s.list_queue()]
                payment = s.get_transaction(rig.payment)
            return states, None if payment is None else payment.reserved

        seen.append(_in_thread(read, timeout=5))

    listener.action = read_elsewhere
    finished, _, _ = _in_thread(rig.give_up_refund, timeout=60)
    assert finished
    [(done, results, errors)] = seen
    assert errors == []
    assert done, "the reader was blocked by the listener's own session"
    assert results == [([QueueState.GAVE_UP], Money("0.00", USD))]  # the release is committed


# -- retries and the delivery record ---------------------------------------------------------------
def test_a_failing_listener_is_retried_until_it_takes_the_event(
    rig: Rig, listener: Listener
) -> None:
    failures = [RuntimeError("smtp down"), RuntimeError("smtp still down")]

    def flaky(_: RefundGaveUp) -> None:
        if failures:
            raise failures.pop(0)

    listener.action = flaky
    rig.give_up_refund()  # the caller gets its result although the listener raised
    assert len(listener.calls) == 1
    assert [type(e).__name__ for e, _ in rig.engine.event_errors] == ["RefundGaveUp"]
    [record] = rig.engine.outbox_events(pending=True)
    failed_at = rig.clock()
    assert (record.name, record.attempts, record.last_error) == (
        "RefundGaveUp",
        1,
        "RuntimeError: smtp down",
    )
    assert record.next_attempt_at == failed_at + timedelta(seconds=10)

    assert rig.engine.deliver_events().claimed == 0  # not due before its backoff
    rig.clock.advance(seconds=10)
    second = rig.engine.deliver_events()
    assert (second.claimed, second.delivered) == (1, 0)
    assert second.failed == ((record.id, "RuntimeError: smtp still down"),)
    [record] = rig.engine.outbox_events(pending=True)
    assert record.attempts == 2
    assert record.next_attempt_at == rig.clock() + timedelta(seconds=20)  # doubled

    rig.clock.advance(seconds=20)
    third = rig.engine.deliver_events()
    assert (third.claimed, third.delivered, third.failed) == (1, 1, ())
    assert third.explanation == "Claimed 1 due event: 1 delivered."
    assert rig.engine.outbox_events(pending=True) == []
    [done] = _named(rig.engine.outbox_events(pending=False), "RefundGaveUp")
    assert (done.id, done.attempts, done.delivered_at) == (record.id, 3, rig.clock())
    # the retries were read back from the store: the same event, exactly
    assert len(listener.calls) == 3
    assert listener.calls[2] == listener.calls[0]
    assert "50.00 USD" in listener.calls[2].message
    assert rig.engine.deliver_events().claimed == 0  # delivered: never again


def test_a_worker_step_delivers_what_is_due(rig: Rig, listener: Listener) -> None:
    listener.action = lambda _: (_ for _ in ()).throw(RuntimeError("down"))
    rig.give_up_refund()
    listener.action = None
    rig.clock.advance(minutes=1)
    assert "events" in [step.name for step in DEFAULT_STEPS]
    context = StepContext(
        engine=rig.engine, actor=ADMIN, stopping=lambda: False, progress=lambda _: None
    )
    assert Events().run(context) == {"claimed": 1, "delivered": 1, "failed": 0}
    assert len(listener.calls) == 2
    assert rig.engine.deliver_events(actor=AGENT).outcome == "denied"  # a job: not for agents


# -- rollback, bounds ------------------------------------------------------------------------------
def _named(records: list[OutboxEvent], name: str) -> list[OutboxEvent]:
    """The outbox records of one event (the rig's charge records collection events too)."""
    return [r for r in records if r.name == name]


def _failed_event(rig: Rig, marker: str) -> RefundFailed:
    entry = QueueEntry(
        id=f"q-{marker}",
        refund_transaction_id="tx-r",
        original_transaction_id=rig.payment,
        amount=Money("1.00", USD),
        idempotency_key="k",
        created_at=rig.clock(),
    )
    return RefundFailed(at=rig.clock(), entry=entry, error=marker)


class Boom(Exception):
    pass


def _emit_then_fail(rig: Rig, marker: str) -> None:
    """A session (nested when one is open) that records an event and a change, then raises."""
    ctx = rig.engine.ctx
    with ctx.store.session() as s:
        s.put_customer(Customer(id=f"c-{marker}", company="Gone"))
        ctx.emit(_failed_event(rig, marker))
        raise Boom


def test_a_rolled_back_session_delivers_nothing(store_url: str) -> None:
    failed = FailedListener()
    rig = _rig(store_url, failed)
    try:
        ctx = rig.engine.ctx
        with pytest.raises(Boom):
            _emit_then_fail(rig, "rolled back")
        with ctx.store.session():
            ctx.emit(_failed_event(rig, "kept"))
            with pytest.raises(Boom):
                _emit_then_fail(rig, "inner rolled back")  # a savepoint, undone alone
            assert failed.seen == []  # not before the outermost session commits
        assert failed.seen == ["kept"]
        failed_records = _named(rig.engine.outbox_events(), "RefundFailed")
        assert [e.payload["error"] for e in failed_records] == ["kept"]
        assert [e.error for e in rig.engine.events if isinstance(e, RefundFailed)] == ["kept"]
        with ctx.store.session() as s:
            assert s.get_customer("c-rolled back") is None
    finally:
        rig.engine.store.close()


def test_engine_events_are_bounded(store_url: str) -> None:
    rig = _rig(store_url, keep_events=3)
    try:
        for i in range(5):
            rig.engine.ctx.emit(_failed_event(rig, f"e{i}"))
        assert [e.error for e in rig.engine.events if isinstance(e, RefundFailed)] == [
            "e2",
            "e3",
            "e4",
        ]
        assert len(_named(rig.engine.outbox_events(), "RefundFailed")) == 5  # the outbox keeps all
    finally:
        rig.engine.store.close()


# -- property: every committed event delivered at least once, in order ---------------------------
programs = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=3),  # events in the session
        st.booleans(),  # commits?
        st.booleans(),  # a nested session inside, rolled back?
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(program=programs, fail=st.sets(st.integers(min_value=0, max_value=20), max_size=4))
def test_every_committed_event_is_delivered_at_least_once_in_sequence_order(
    program: list[tuple[int, bool, bool]], fail: set[int]
) -> None:
    failed = FailedListener()
    rig = _rig("memory://", failed)
    ctx = rig.engine.ctx
    committed: list[str] = []
    n = 0
    for count, commits, nested in program:
        markers = [f"e{n + i:02}" for i in range(count)]
        n += count
        failed.fail |= {m for m in markers if int(m[1:]) in fail}
        try:
            with ctx.store.session():
                for marker in markers:
                    ctx.emit(_failed_event(rig, marker))
                if nested:
                    with pytest.raises(Boom):
                        _emit_then_fail(rig, f"x{n}")
                if not commits:
                    raise Boom
        except Boom:
            continue
        committed.extend(markers)
    for _ in range(10):  # drain: every failure is retried after its backoff
        rig.clock.advance(hours=1)
        rig.engine.deliver_events()
    assert set(failed.seen) == set(committed)  # at least once, and nothing rolled back
    assert rig.engine.outbox_events(pending=True) == []
    first_try = [m for m in failed.seen if int(m[1:]) not in fail]
    assert first_try == sorted(first_try)  # delivered in sequence order
    records = _named(rig.engine.outbox_events(), "RefundFailed")  # the rig's charge emits too
    assert [r.payload["error"] for r in records] == committed
    assert [r.sequence for r in records] == sorted(r.sequence or 0 for r in records)


def test_events_round_trip_through_the_outbox() -> None:
    """Each event the flows emit comes back from its stored form equal to what was emitted."""
    from billing_core.engine.outbox import EVENT_TYPES, decode_event, encode_event
    from billing_core.plugins.records import OutboxEvent

    rig = _rig("memory://", Listener())
    rig.give_up_refund()
    emitted: list[Event] = list(rig.engine.events)
    assert {type(e).__name__ for e in emitted} >= {"RefundGaveUp"}
    for event in emitted:
        name, payload = encode_event(event)
        assert name in EVENT_TYPES
        record = OutboxEvent(
            id="ev", name=name, payload=payload, created_at=START, next_attempt_at=START
        )
        assert decode_event(record) == event
    assert isinstance(rig.engine.store, MemoryStore)


def test_a_store_failing_at_delivery_time_leaves_the_event_for_deliver_events(
    rig: Rig, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    from billing_core import StoreUnavailableError

    def store_down(**_: Any) -> None:
        raise StoreUnavailableError("the database cannot be used")

    monkeypatch.setattr(rig.engine.outbox, "deliver", store_down)
    rig.give_up_refund()  # the caller still gets its result: the change is committed
    assert listener.calls == []
    monkeypatch.undo()
    [pending] = rig.engine.outbox_events(pending=True)
    assert (pending.name, pending.attempts) == ("RefundGaveUp", 0)
    assert rig.engine.deliver_events().delivered == 1
    assert len(listener.calls) == 1


def test_two_engines_delivering_at_once_deliver_each_event_once(store_url: str) -> None:
    """Two workers drain one outbox together: each event reaches a listener once (claims)."""
    first, second = FailedListener(), FailedListener()
    rig = _rig(store_url, first)
    markers = [f"e{i:02}" for i in range(20)]
    first.fail = set(markers)  # every first delivery fails: all 20 wait in the outbox
    for marker in markers:
        rig.engine.ctx.emit(_failed_event(rig, marker))
    assert first.seen == []
    other = BillingEngine(
        store=rig.other_store(),
        clock=rig.clock,
        gateway=rig.gateway,
        plugins=Plugins(clock=rig.clock, plugins=[second], entry_points=False),
    )
    rig.clock.advance(minutes=1)
    barrier = threading.Barrier(2)

    errors: list[BaseException] = []

    def drain(engine: BillingEngine) -> None:
        try:
            barrier.wait(30)
            while engine.deliver_events(limit=3).claimed:
                pass
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=drain, args=(e,)) for e in (rig.engine, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert errors == []
        assert sorted(first.seen + second.seen) == markers  # each once, none lost
        assert rig.engine.outbox_events(pending=True) == []
    finally:
        for store in rig.opened:
            store.close()
        rig.engine.store.close()


def test_the_outbox_knows_every_event_class() -> None:
    """An event class the outbox does not know could not be recorded (the call would log an
    error and its listeners never hear of it): every ``Event`` subclass of
    ``billing_core.plugins.events`` must be exported and known."""
    from billing_core.engine.outbox import EVENT_TYPES
    from billing_core.plugins import events

    classes = {
        cls
        for cls in vars(events).values()
        if isinstance(cls, type) and issubclass(cls, Event) and cls is not Event
    }
    assert classes == set(EVENT_TYPES.values())
    assert {"CollectionAttempted", "InvoiceIssued", "RefundGaveUp"} <= set(EVENT_TYPES)
