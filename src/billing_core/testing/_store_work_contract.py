"""The store contract, part 2: the refund queue, the audit log, units of work and locking.

Private: use ``billing_core.testing.store_contract.StoreContract``.
"""

from __future__ import annotations

import functools
import threading
import time
from datetime import UTC, date, datetime, timedelta

import attrs
import pytest

from ..errors import InvalidTypeError, InvalidValueError, NaiveDatetimeError
from ..model import Certificate, Customer, InvoiceLine, Subscription, UsageEvent
from ..periods import Period
from ..plugins.protocols import Store, StoreSession
from ..plugins.records import (
    Attempt,
    AuditEntry,
    IdempotencyRecord,
    QueueState,
)
from ._store_record_contract import (
    LONDON,
    T0,
    Boom,
    _entry,
    _in_thread,
    _transaction,
    _usd,
    assert_same,
)


class WorkContract:
    """The queue, the audit log, atomic sessions, nested sessions, locks and concurrency."""

    threads = 8
    increments_per_thread = 5

    # -- queue ---------------------------------------------------------------------------------
    def test_queue_round_trip_and_states(self, store: Store) -> None:
        entry = _entry(
            "q-1",
            datetime(2026, 3, 30, 9, 0, tzinfo=LONDON),
            attempts=[Attempt(at=T0, outcome="declined", error="card_expired")],
        )
        done = _entry("q-2", None, state=QueueState.SUCCEEDED)
        with store.session() as s:
            s.put_queue_entry(entry)
            s.put_queue_entry(done)
        with store.session() as s:
            assert_same(s.get_queue_entry("q-1"), entry)
            assert_same(s.get_queue_entry("q-1", lock=True), entry)
            assert s.get_queue_entry("q-9") is None
            assert [e.id for e in s.list_queue()] == ["q-1", "q-2"]
            assert [e.id for e in s.list_queue(states=[QueueState.SUCCEEDED])] == ["q-2"]
            attempts = [*entry.attempts, Attempt(at=T0, outcome="unknown", error="timeout")]
            retried = _entry("q-1", entry.next_attempt_at, attempts=attempts)
            s.put_queue_entry(retried)
        with store.session() as s:
            assert_same(s.get_queue_entry("q-1"), retried)
            assert s.get_queue_entry("q-1").failures == 2  # type: ignore[union-attr]

    def test_claim_due_semantics(self, store: Store) -> None:
        now = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
        hour = timedelta(hours=1)
        entries = [
            _entry("q-future", now + timedelta(seconds=1)),
            _entry("q-a", now - 2 * hour),
            _entry("q-b", (now - hour).astimezone(LONDON)),
            _entry("q-none", None),
            _entry(
                "q-expired",
                now - 1.5 * hour,
                state=QueueState.CLAIMED,
                claimed_by="w0",
                lease_until=now,
            ),
            _entry(
                "q-live",
                now - 3 * hour,
                state=QueueState.CLAIMED,
                claimed_by="w0",
                lease_until=now + timedelta(seconds=1),
            ),
            _entry("q-ok", now - 4 * hour, state=QueueState.SUCCEEDED),
            _entry("q-gone", now - 4 * hour, state=QueueState.GAVE_UP),
        ]
        with store.session() as s:
            for e in entries:
                s.put_queue_entry(e)

        def claim(at: datetime, worker: str, limit: int) -> list[str]:
            with store.session() as s:
                got = s.claim_due(now=at, worker=worker, lease_seconds=300, limit=limit)
            for e in got:
                assert e.state is QueueState.CLAIMED
                assert e.claimed_by == worker
                assert e.lease_until == at + timedelta(seconds=300)
            return [e.id for e in got]

        assert claim(now, "w1", 0) == []
        assert claim(now, "w1", 3) == ["q-none", "q-a", "q-expired"]
        assert claim(now, "w2", 10) == ["q-b"]
        assert claim(now, "w3", 10) == []  # every lease is live
        assert claim(now + timedelta(seconds=1), "w3", 10) == ["q-live", "q-future"]
        lapse = now + timedelta(seconds=300)  # w1's and w2's leases end here
        assert claim(lapse, "w4", 2) == ["q-none", "q-a"]
        assert claim(lapse, "w4", 10) == ["q-expired", "q-b"]
        with store.session() as s:
            stored = s.get_queue_entry("q-a")
            assert stored is not None and stored.claimed_by == "w4"
            assert stored.lease_until == lapse + timedelta(seconds=300)
            assert stored.fence == 2  # claimed by w1, then taken over by w4: a new fence each
            assert_same(
                attrs.evolve(
                    stored, state=QueueState.QUEUED, claimed_by=None, lease_until=None, fence=0
                ),
                entries[1],
            )
            finished = s.list_queue(states=[QueueState.SUCCEEDED, QueueState.GAVE_UP])
            assert [e.id for e in finished] == ["q-ok", "q-gone"]
        later = lapse + timedelta(hours=1)  # every lease has run out

        def claim_then_fail() -> None:
            with store.session() as s:
                got = s.claim_due(now=later, worker="w5", lease_seconds=60, limit=1)
                assert [e.id for e in got] == ["q-none"]
                raise Boom

        with pytest.raises(Boom):  # a claim rolled back is no claim
            claim_then_fail()
        with store.session() as s:
            kept = s.get_queue_entry("q-none")
            assert kept is not None and (kept.claimed_by, kept.fence) == ("w4", 2)

    def test_concurrent_claims_never_share_an_entry(self, store: Store) -> None:
        now = datetime(2026, 5, 1, tzinfo=UTC)
        with store.session() as s:
            for i in range(30):
                s.put_queue_entry(_entry(f"q-{i:02}", now - timedelta(minutes=i)))
        claims: dict[str, list[str]] = {}

        def worker(name: str) -> None:
            mine = claims.setdefault(name, [])
            while True:
                with store.session() as s:
                    got = s.claim_due(now=now, worker=name, lease_seconds=3600, limit=2)
                if not got:
                    return
                mine.extend(e.id for e in got)

        started = [_in_thread(functools.partial(worker, f"w{i}")) for i in range(4)]
        for thread, errors in started:
            thread.join(60)
            assert not errors, errors
        every = [eid for ids in claims.values() for eid in ids]
        assert len(every) == len(set(every)) == 30

    # -- audit log ------------------------------------------------------------------------------
    def test_audit_log_is_ordered_and_append_only(self, store: Store) -> None:
        entries = [
            AuditEntry(
                at=T0,
                actor="agent:ann",
                action="refund",
                subject_id="t-1",
                detail={"amount": "10.00", "nested": {"k": [1, 2]}},
            ),
            AuditEntry(
                at=datetime(2026, 3, 29, 2, 30, tzinfo=LONDON),
                actor="system",
                action="void",
                subject_id="t-2",
            ),
            AuditEntry(
                at=T0 - timedelta(days=1), actor="agent:bob", action="note", subject_id="t-1"
            ),
        ]
        with store.session() as s:
            for e in entries[:2]:
                s.append_audit(e)
        with store.session() as s:
            s.append_audit(entries[2])
            with pytest.raises(InvalidValueError):
                s.append_audit(attrs.evolve(entries[0], id="42"))
        with store.session() as s:
            log = s.audit_log()
            assert [attrs.evolve(e, id=None) for e in log] == entries  # append order, not `at`
            for got, want in zip(log, entries, strict=True):
                assert_same(attrs.evolve(got, id=None), want)
            ids = [e.id for e in log]
            assert all(isinstance(i, str) and i for i in ids)
            assert len(set(ids)) == 3
            assert [e.id for e in s.audit_log(subject_id="t-1")] == [ids[0], ids[2]]
            assert s.audit_log(subject_id="t-9") == []
            changers = {n for n in dir(s) if "audit" in n and not n.startswith("_")}
            assert changers == {"append_audit", "audit_log"}

    # -- units of work ---------------------------------------------------------------------------
    @staticmethod
    def _write_one_of_everything(s: StoreSession, tag: str) -> None:
        s.put_customer(Customer(id=f"c-{tag}", company="Acme"))
        s.put_subscription(
            Subscription(
                id=f"s-{tag}",
                customer_id=f"c-{tag}",
                term=Period.parse("P1M"),
                start=date(2026, 1, 1),
            )
        )
        s.put_certificate(Certificate(id=f"cert-{tag}", domain=f"{tag}.example"))
        s.insert_transaction(_transaction(f"t-{tag}"))
        s.put_queue_entry(_entry(f"q-{tag}", None))
        s.add_usage_events([UsageEvent(id=f"e-{tag}", quantity=1, at=T0, subscription_id="s")])
        s.add_invoice_lines(f"s-{tag}", [InvoiceLine(description="x", amount=_usd("1.00"))])
        s.insert_idempotency(
            IdempotencyRecord(key=f"k-{tag}", operation="o", fingerprint="f", created_at=T0)
        )
        s.append_audit(AuditEntry(at=T0, actor="a", action="x", subject_id=f"t-{tag}"))

    @staticmethod
    def _found(s: StoreSession, tag: str) -> list[bool]:
        return [
            s.get_customer(f"c-{tag}") is not None,
            s.get_subscription(f"s-{tag}") is not None,
            s.get_certificate(f"cert-{tag}") is not None,
            s.get_transaction(f"t-{tag}") is not None,
            s.get_queue_entry(f"q-{tag}") is not None,
            any(
                e.id == f"e-{tag}"
                for e in s.usage_events(
                    subscription_id="s", start=T0, end=T0 + timedelta(seconds=1)
                )
            ),
            bool(s.invoice_lines(f"s-{tag}")),
            s.get_idempotency(f"k-{tag}") is not None,
            bool(s.audit_log(subject_id=f"t-{tag}")),
        ]

    def test_exception_rolls_back_every_write(self, store: Store) -> None:
        boom = Boom("rolled back")

        def write_then_fail() -> None:
            with store.session() as s:
                self._write_one_of_everything(s, "x")
                assert all(self._found(s, "x"))
                raise boom

        with pytest.raises(Boom) as info:
            write_then_fail()
        assert info.value is boom  # the caller's exception, unchanged
        with store.session() as s:
            assert self._found(s, "x") == [False] * 9
            self._write_one_of_everything(s, "y")
        with store.session() as s:
            assert all(self._found(s, "y"))

    def test_nested_session_is_a_savepoint(self, store: Store) -> None:
        def nested(tag: str, *, fail_inner: bool, fail_outer: bool = False) -> None:
            with store.session() as outer:
                with store.session() as inner:
                    self._write_one_of_everything(inner, tag)
                    if fail_inner:
                        raise Boom
                assert all(self._found(outer, tag))
                if fail_outer:
                    raise Boom

        with store.session() as outer:
            self._write_one_of_everything(outer, "a")
            with pytest.raises(Boom):
                nested("b", fail_inner=True)
            with store.session() as inner:
                assert all(self._found(inner, "a"))
                self._write_one_of_everything(inner, "c")
            assert all(self._found(outer, "c"))
        with store.session() as s:
            assert all(self._found(s, "a")) and all(self._found(s, "c"))
            assert not any(self._found(s, "b"))
        with pytest.raises(Boom):
            nested("d", fail_inner=False, fail_outer=True)
        with store.session() as s:
            assert not any(self._found(s, "d"))

    def test_a_session_is_unusable_after_its_block(self, store: Store) -> None:
        with store.session() as s:
            pass
        with pytest.raises(Exception):  # noqa: B017 - any error will do, not a silent read
            s.get_customer("c-1")

    def test_bad_input_raises_naming_the_field(self, store: Store) -> None:
        with store.session() as s:
            with pytest.raises(InvalidTypeError):
                s.put_customer("c-1")  # type: ignore[arg-type]
            with pytest.raises(NaiveDatetimeError):
                s.claim_due(now=datetime(2026, 1, 1), worker="w", lease_seconds=1, limit=1)  # noqa: DTZ001
            with pytest.raises(InvalidValueError) as info:
                s.usage_events(subscription_id="s", start=T0, end=T0 - timedelta(seconds=1))
            assert info.value.field == "$.end"
            with pytest.raises(InvalidValueError):
                s.list_subscriptions(states=["bogus"])  # type: ignore[list-item]

    # -- locking and concurrency ------------------------------------------------------------------
    def test_locked_read_waits_for_the_holder_and_sees_its_write(self, store: Store) -> None:
        with store.session() as s:
            s.insert_transaction(_transaction("t-1"))
        held = threading.Event()

        def holder() -> None:
            with store.session() as s:
                t = s.get_transaction("t-1", lock=True)
                assert t is not None
                held.set()
                time.sleep(0.3)
                s.update_transaction(attrs.evolve(t, reserved=_usd("7.00")))

        thread, errors = _in_thread(holder)
        assert held.wait(10)
        with store.session() as s:
            t = s.get_transaction("t-1", lock=True)
            assert t is not None and t.reserved == _usd("7.00")
        thread.join(10)
        assert not errors, errors

    def test_uncommitted_and_rolled_back_writes_are_never_seen(self, store: Store) -> None:
        with store.session() as s:
            s.insert_transaction(_transaction("t-1"))
        written = threading.Event()

        def writer() -> None:
            with store.session() as s:
                t = s.get_transaction("t-1", lock=True)
                assert t is not None
                s.update_transaction(attrs.evolve(t, reserved=_usd("5.00")))
                written.set()
                time.sleep(0.3)
                raise Boom

        thread, errors = _in_thread(writer)
        assert written.wait(10)
        with store.session() as s:
            t = s.get_transaction("t-1")
            assert t is not None and t.reserved == _usd("0.00")
        thread.join(10)
        assert len(errors) == 1 and isinstance(errors[0], Boom)

    def test_concurrent_locked_increments_lose_no_update(self, store: Store) -> None:
        step = _usd("0.01")
        with store.session() as s:
            s.insert_transaction(_transaction("t-1", "1000.00"))

        def increment() -> None:
            for _ in range(self.increments_per_thread):
                with store.session() as s:
                    t = s.get_transaction("t-1", lock=True)
                    assert t is not None
                    s.update_transaction(attrs.evolve(t, reserved=t.reserved + step))

        started = [_in_thread(increment) for _ in range(self.threads)]
        for thread, errors in started:
            thread.join(60)
            assert not errors, errors
        with store.session() as s:
            t = s.get_transaction("t-1")
            assert t is not None
            assert t.reserved == step * (self.threads * self.increments_per_thread)
