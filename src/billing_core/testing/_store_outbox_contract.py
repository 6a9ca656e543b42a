"""The store contract, part 4: the event outbox (``add_outbox_event``, ``claim_outbox``,
``mark_outbox_delivered``, ``mark_outbox_failed``, ``list_outbox``).

Private: use ``billing_core.testing.store_contract.StoreContract``.
"""

from __future__ import annotations

import functools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ..errors import ConflictError, InvalidValueError, NaiveDatetimeError
from ..plugins.protocols import Store
from ..plugins.records import OutboxEvent
from ._store_record_contract import LONDON, Boom, _in_thread

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
PAYLOAD: dict[str, Any] = {
    "at": "2026-05-01T10:00:00+01:00[Europe/London]",
    "refund": {"amount": {"amount": "19.990", "currency": "USD"}, "id": "tx-ü"},
    "notify_emails": ["billing@example.com"],
    "retried": False,
    "decline_code": None,
}


def _event(event_id: str, *, at: datetime = NOW, **kw: Any) -> OutboxEvent:
    values: dict[str, Any] = {
        "id": event_id,
        "name": "RefundIssued",
        "payload": PAYLOAD,
        "created_at": at,
        "next_attempt_at": at,
    }
    values.update(kw)
    return OutboxEvent(**values)


class OutboxContract:
    """Events recorded atomically with a session, claimed with leases, marked by their holder."""

    threads = 8

    def test_outbox_round_trip_and_sequence(self, store: Store) -> None:
        with store.session() as s:
            first = s.add_outbox_event(_event("ev-1", at=NOW.astimezone(LONDON)))
            second = s.add_outbox_event(_event("ev-2", name="RefundGaveUp", payload={"n": 1}))
        assert first.sequence is not None and second.sequence is not None
        assert second.sequence > first.sequence
        with store.session() as s:
            events = s.list_outbox()
        assert [e.id for e in events] == ["ev-1", "ev-2"]
        got = events[0]
        assert (got.name, got.payload, got.sequence) == ("RefundIssued", PAYLOAD, first.sequence)
        assert got.created_at == NOW and got.next_attempt_at == NOW  # the same instants
        assert (got.delivered_at, got.attempts, got.last_error, got.claimed_by) == (
            None,
            0,
            "",
            None,
        )
        assert events[1].payload == {"n": 1}

    def test_outbox_refuses_a_duplicate_id_and_the_session_goes_on(self, store: Store) -> None:
        with store.session() as s:
            s.add_outbox_event(_event("ev-1"))
            with pytest.raises(ConflictError):
                s.add_outbox_event(_event("ev-1", name="Other"))
            s.add_outbox_event(_event("ev-2"))
        with store.session() as s:
            assert [(e.id, e.name) for e in s.list_outbox()] == [
                ("ev-1", "RefundIssued"),
                ("ev-2", "RefundIssued"),
            ]

    def test_outbox_refuses_what_is_not_a_new_event(self, store: Store) -> None:
        with store.session() as s:
            with pytest.raises(InvalidValueError) as info:
                s.add_outbox_event(_event("ev-1", sequence=7))
            assert info.value.field == "$.event.sequence"
            with pytest.raises(InvalidValueError):
                s.add_outbox_event(_event("ev-2", delivered_at=NOW))
            with pytest.raises(NaiveDatetimeError):
                s.add_outbox_event(_event("ev-3", at=NOW.replace(tzinfo=None)))
            assert s.list_outbox() == []

    def test_outbox_rolls_back_with_its_session(self, store: Store) -> None:
        def add_then_fail(event_id: str) -> None:
            with store.session() as s:
                s.add_outbox_event(_event(event_id))
                raise Boom

        with pytest.raises(Boom):
            add_then_fail("ev-1")
        with store.session() as s:
            s.add_outbox_event(_event("ev-2"))
            with pytest.raises(Boom):
                add_then_fail("ev-3")  # a savepoint, undone alone
            with store.session() as inner:
                inner.add_outbox_event(_event("ev-4"))
        with store.session() as s:
            assert [e.id for e in s.list_outbox()] == ["ev-2", "ev-4"]

    def test_claim_outbox_semantics(self, store: Store) -> None:
        with store.session() as s:
            s.add_outbox_event(_event("ev-later", at=NOW + timedelta(seconds=1)))
            for i in range(4):
                s.add_outbox_event(_event(f"ev-{i}", at=NOW - timedelta(minutes=i)))
        with store.session() as s:  # due only, in sequence order (not by time), up to limit
            got = s.claim_outbox(now=NOW, worker="w1", lease_seconds=60, limit=2)
        assert [e.id for e in got] == ["ev-0", "ev-1"]
        assert {e.claimed_by for e in got} == {"w1"}
        assert {e.next_attempt_at for e in got} == {NOW + timedelta(seconds=60)}
        with store.session() as s:  # a live lease is not due; only the ids asked for
            got = s.claim_outbox(
                now=NOW, worker="w2", lease_seconds=60, limit=9, ids=["ev-0", "ev-3"]
            )
            assert [e.id for e in got] == ["ev-3"]
            assert s.claim_outbox(now=NOW, worker="w2", lease_seconds=60, limit=0) == []
            assert s.claim_outbox(now=NOW, worker="w2", lease_seconds=60, limit=9, ids=[]) == []
        later = NOW + timedelta(seconds=60)  # w1's lease ran out: taken over, the new one too
        with store.session() as s:
            got = s.claim_outbox(now=later, worker="w3", lease_seconds=60, limit=9)
        assert [e.id for e in got] == ["ev-later", "ev-0", "ev-1", "ev-2", "ev-3"]
        with store.session() as s:
            assert s.mark_outbox_delivered("ev-0", worker="w1", at=later) is False  # lost it
            assert s.list_outbox(pending=False) == []

    def test_mark_outbox_delivered_and_failed(self, store: Store) -> None:
        with store.session() as s:
            s.add_outbox_event(_event("ev-1"))
            s.add_outbox_event(_event("ev-2"))
            s.claim_outbox(now=NOW, worker="w1", lease_seconds=300, limit=2)
        retry = NOW + timedelta(seconds=10)
        with store.session() as s:
            assert s.mark_outbox_failed("ev-1", worker="w2", error="x", retry_at=retry) is False
            assert s.mark_outbox_failed("ev-1", worker="w1", error="Boom: down", retry_at=retry)
            assert s.mark_outbox_delivered("ev-2", worker="w1", at=NOW + timedelta(seconds=1))
            assert s.mark_outbox_delivered("ev-2", worker="w1", at=NOW) is False  # done already
            assert s.mark_outbox_delivered("ev-9", worker="w1", at=NOW) is False  # no such event
        with store.session() as s:
            [failed] = s.list_outbox(pending=True)
            [done] = s.list_outbox(pending=False)
            assert [e.id for e in s.list_outbox(limit=1)] == ["ev-1"]
        assert (failed.id, failed.attempts, failed.last_error) == ("ev-1", 1, "Boom: down")
        assert (failed.next_attempt_at, failed.claimed_by, failed.delivered_at) == (
            retry,
            None,
            None,
        )
        assert (done.id, done.attempts, done.claimed_by) == ("ev-2", 1, None)
        assert done.delivered_at == NOW + timedelta(seconds=1)
        with store.session() as s:  # not due before its retry; a delivered one never again
            assert (
                s.claim_outbox(
                    now=retry - timedelta(seconds=1), worker="w1", lease_seconds=5, limit=9
                )
                == []
            )
            [again] = s.claim_outbox(now=retry, worker="w4", lease_seconds=5, limit=9)
            assert (again.id, again.attempts) == ("ev-1", 1)
            assert s.mark_outbox_delivered("ev-1", worker="w4", at=retry)
        with store.session() as s:
            assert [(e.id, e.attempts) for e in s.list_outbox(pending=False)] == [
                ("ev-1", 2),
                ("ev-2", 1),
            ]
            assert s.list_outbox(pending=True) == []

    def test_concurrent_deliverers_never_claim_one_event_twice(self, store: Store) -> None:
        total = 4 * self.threads
        with store.session() as s:
            for i in range(total):
                s.add_outbox_event(_event(f"ev-{i:03}"))
        claims: list[list[str]] = [[] for _ in range(self.threads)]
        barrier = threading.Barrier(self.threads)

        def deliverer(n: int) -> None:
            barrier.wait(30)
            while True:
                with store.session() as s:
                    got = s.claim_outbox(now=NOW, worker=f"w{n}", lease_seconds=300, limit=2)
                if not got:
                    return
                claims[n].extend(e.id for e in got)

        runs = [_in_thread(functools.partial(deliverer, n)) for n in range(self.threads)]
        for thread, _ in runs:
            thread.join(120)
        assert [e for _, errors in runs for e in errors] == []
        every = [i for c in claims for i in c]
        assert sorted(every) == [f"ev-{i:03}" for i in range(total)]  # each exactly once
