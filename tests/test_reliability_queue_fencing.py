"""Queue leases with fencing: a worker whose lease was taken over writes nothing twice.

Each claim of a queue entry raises its fencing number (``QueueEntry.fence``); every write a worker
makes for a claimed entry checks, under the entry's row lock, that the stored entry is still
claimed by it with that number. The deterministic reproductions below use two engines (worker A
and worker B) on one store and one sandbox gateway. Worker A's gateway is a ``HookedGateway``:
before A's refund call goes out it moves the shared ``ManualClock`` past A's lease and lets
worker B claim (and usually process) the entry, then lets A's call go on. Before fencing, A's success raised
``InvalidValueError ... must be in flight`` out of ``process_refund_queue``; now each cell ends
in its documented state (docs/reliability.md, "Queue leases with fencing"), with the gateway
refunding once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_core import BillingEngine, Customer, Money, TransactionStatus
from billing_core.engine import RefundOutcome
from billing_core.plugins.manager import Plugins
from billing_core.plugins.memory_store import MemoryStore
from billing_core.plugins.records import QueueEntry, QueueState
from billing_core.plugins.sandbox_gateway import Fault, SandboxGateway
from billing_core.rules.permissions import Actor
from billing_core.rules.retry import RetryPolicy
from billing_core.testing.clock import ManualClock
from billing_core.testing.hooked_gateway import HookedGateway

ADMIN = Actor(id="ada", role="admin")
START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
LEASE = 300
USD = "USD"


@attrs.define
class Rig:
    a: BillingEngine
    b: BillingEngine
    gateway: SandboxGateway
    hooked: HookedGateway
    clock: ManualClock

    def queued_refund(self, key: str = "r1") -> tuple[str, str]:
        """A settled 100.00 payment whose refund of 40.00 was declined once and is queued."""
        sale = self.b.charge("c1", Money("100.00", USD), idempotency_key=f"p-{key}", actor=ADMIN)
        assert sale.transaction_id is not None
        self.clock.advance(days=2)
        self.gateway.script("refund", [Fault.DECLINE])
        first = self.b.refund_transaction(
            sale.transaction_id, amount=Money("40.00", USD), idempotency_key=key, actor=ADMIN
        )
        assert first.outcome is RefundOutcome.QUEUED, first.explanation
        assert first.refund_transaction_id is not None
        return sale.transaction_id, first.refund_transaction_id

    def take_over(self, *, process: bool = True) -> Callable[[], None]:
        """What happens during A's call: A's lease runs out, and B claims (and processes)."""

        def during() -> None:
            self.clock.advance(seconds=LEASE + 1)
            if process:
                self.b.process_refund_queue()
            else:
                with self.b.store.session() as s:
                    s.claim_due(now=self.clock(), worker="worker-b", lease_seconds=LEASE, limit=10)

        return during

    def refunds_at_gateway(self, refund_id: str) -> int:
        record = self.a.transaction(refund_id)
        return sum(
            1
            for e in self.gateway.ledger()
            if e.operation == "refund" and e.idempotency_key == record.idempotency_key
        )

    def lease_lost(self) -> list[dict[str, Any]]:
        return [dict(e.detail) for e in self.a.audit_log() if e.action == "queue.lease_lost"]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


def _rig(store_url: str, retry_policy: RetryPolicy | None = None) -> Rig:
    clock = ManualClock(START)
    gateway = SandboxGateway(clock=clock, settle_after=timedelta(days=1))
    hooked = HookedGateway(gateway)
    plugins = Plugins(clock=clock, entry_points=False)
    common: dict[str, Any] = {
        "clock": clock,
        "plugins": plugins,
        "lease_seconds": LEASE,
        "notify_emails": ["billing@example.com"],
        "retry_policy": retry_policy,
    }
    a = BillingEngine(store=store_url, gateway=hooked, worker_id="worker-a", **common)
    b = BillingEngine(store=a.store, gateway=gateway, worker_id="worker-b", **common)
    a.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
    return Rig(a=a, b=b, gateway=gateway, hooked=hooked, clock=clock)


@pytest.fixture
def rig(store_url: str) -> Iterator[Rig]:
    made = _rig(store_url)
    yield made
    made.a.store.close()


def _books(rig: Rig, payment: str) -> tuple[Money, Money]:
    original = rig.a.transaction(payment)
    return original.refunded, original.reserved


# -- the reproduction: a gateway call that outlives its lease ----------------------------------
def test_a_success_after_the_takeover_completed_is_a_no_op(rig: Rig) -> None:
    payment, refund_id = rig.queued_refund()
    rig.clock.advance(days=1, minutes=1)
    rig.hooked.before["refund"] = rig.take_over()

    run = rig.a.process_refund_queue()  # raised InvalidValueError ... must be in flight, before

    assert (run.claimed, run.succeeded, run.lease_lost) == (1, 0, 1)
    assert rig.refunds_at_gateway(refund_id) == 1
    assert _books(rig, payment) == (Money("40.00", USD), Money("0.00", USD))
    assert rig.a.transaction(refund_id).status is TransactionStatus.COMPLETED
    (entry,) = rig.a.refund_queue()
    assert (entry.state, entry.fence, entry.claimed_by) == (QueueState.SUCCEEDED, 2, None)
    assert [a.outcome for a in entry.attempts] == ["declined", "succeeded"]
    (lost,) = rig.lease_lost()
    assert lost["fence"] == 1 and lost["current_fence"] == 2
    assert lost["current_state"] == "succeeded" and lost["recorded"] is False
    assert lost["outcome"] == "succeeded"
    succeeded = [e for e in rig.a.audit_log(subject_id=refund_id) if e.action == "refund.succeeded"]
    assert [e.actor for e in succeeded] == ["worker-b"]


def test_a_success_before_the_new_owner_records_is_recorded_once(rig: Rig) -> None:
    """B took over and was declined (its attempt is counted, the entry waits a day); then A's
    call, made with the same gateway key, went through: the money moved, so A records it."""
    payment, refund_id = rig.queued_refund()
    rig.clock.advance(days=1, minutes=1)

    def b_declined() -> None:
        rig.gateway.script("refund", [Fault.DECLINE])
        rig.take_over()()

    rig.hooked.before["refund"] = b_declined
    run = rig.a.process_refund_queue()

    assert (run.claimed, run.succeeded, run.lease_lost) == (1, 1, 0)
    assert rig.refunds_at_gateway(refund_id) == 1
    assert _books(rig, payment) == (Money("40.00", USD), Money("0.00", USD))
    (entry,) = rig.a.refund_queue()
    assert entry.state is QueueState.SUCCEEDED
    assert [a.outcome for a in entry.attempts] == ["declined", "declined", "succeeded"]
    (done,) = [e for e in rig.a.audit_log(subject_id=refund_id) if e.action == "refund.succeeded"]
    assert done.actor == "worker-a"
    assert done.detail["recorded"] is True and done.detail["current_owner"] is None
    rig.clock.advance(days=1, minutes=1)
    assert rig.b.process_refund_queue().claimed == 0  # nothing left to retry
    assert rig.refunds_at_gateway(refund_id) == 1


def test_a_decline_after_the_takeover_is_not_counted(rig: Rig) -> None:
    """A's call is declined while B holds the claim: A writes no attempt, no schedule."""
    payment, refund_id = rig.queued_refund()
    rig.clock.advance(days=1, minutes=1)
    rig.gateway.script("refund", [Fault.DECLINE])
    rig.hooked.before["refund"] = rig.take_over(process=False)

    run = rig.a.process_refund_queue()

    assert (run.claimed, run.retry_later, run.lease_lost) == (1, 0, 1)
    (entry,) = rig.a.refund_queue()
    assert (entry.state, entry.claimed_by, entry.fence) == (QueueState.CLAIMED, "worker-b", 2)
    assert entry.failures == 1  # A's decline is not B's attempt
    (lost,) = rig.lease_lost()
    assert lost["outcome"] == "declined" and lost["current_owner"] == "worker-b"
    rig.clock.advance(seconds=LEASE + 1)  # B died: its lease runs out, B (restarted) claims
    assert rig.b.process_refund_queue().succeeded == 1
    assert rig.refunds_at_gateway(refund_id) == 1
    assert _books(rig, payment) == (Money("40.00", USD), Money("0.00", USD))


def test_a_doubtful_answer_after_the_takeover_changes_nothing(rig: Rig) -> None:
    payment, refund_id = rig.queued_refund()
    rig.clock.advance(days=1, minutes=1)
    rig.gateway.script("refund", [Fault.TIMEOUT_BEFORE_SEND])  # A's call: answer lost
    rig.hooked.before["refund"] = rig.take_over(process=False)

    run = rig.a.process_refund_queue()

    assert (run.unknown, run.lease_lost) == (0, 1)
    assert rig.a.transaction(refund_id).status is TransactionStatus.FAILED  # not unknown
    (entry,) = rig.a.refund_queue()
    assert (entry.state, entry.claimed_by) == (QueueState.CLAIMED, "worker-b")
    assert rig.lease_lost()[0]["outcome"] == "unknown"
    rig.clock.advance(seconds=LEASE + 1)
    assert rig.b.process_refund_queue().succeeded == 1
    assert _books(rig, payment) == (Money("40.00", USD), Money("0.00", USD))


def test_a_stale_claim_makes_no_gateway_call(rig: Rig) -> None:
    """A claimed two entries; during its first call B took over both. A never sends the second."""
    _, first = rig.queued_refund("r1")
    _, second = rig.queued_refund("r2")
    rig.clock.advance(days=1, minutes=1)
    rig.hooked.before["refund"] = rig.take_over()
    received = rig.gateway.received["refund"]

    run = rig.a.process_refund_queue()

    assert (run.claimed, run.succeeded, run.lease_lost) == (2, 0, 2)
    assert rig.gateway.received["refund"] - received == 3  # B twice, A once: not the second
    assert rig.refunds_at_gateway(first) == rig.refunds_at_gateway(second) == 1
    stages = sorted(d["stage"] for d in rig.lease_lost())
    assert stages == ["after the gateway call", "before the gateway call"]


def test_a_success_after_the_new_owner_gave_up_is_recorded(store_url: str) -> None:
    """The last retry: B took over, was declined and gave up (the reservation released, the
    merchant told); then A's call went through. The money moved: the refund is completed and
    counted once, the reservation taken again and consumed."""
    rig = _rig(store_url, RetryPolicy(retries=1))
    try:
        payment, refund_id = rig.queued_refund()
        rig.clock.advance(days=1, minutes=1)

        def b_gives_up() -> None:
            rig.gateway.script("refund", [Fault.DECLINE])
            rig.take_over()()
            (entry,) = rig.b.refund_queue()
            assert entry.state is QueueState.GAVE_UP
            assert _books(rig, payment) == (Money("0.00", USD), Money("0.00", USD))

        rig.hooked.before["refund"] = b_gives_up
        run = rig.a.process_refund_queue()

        assert run.succeeded == 1
        assert rig.refunds_at_gateway(refund_id) == 1
        assert _books(rig, payment) == (Money("40.00", USD), Money("0.00", USD))
        assert rig.a.transaction(refund_id).status is TransactionStatus.COMPLETED
        (entry,) = rig.a.refund_queue()
        assert entry.state is QueueState.SUCCEEDED
    finally:
        rig.a.store.close()


# -- the fence itself ----------------------------------------------------------------------------
def _entry() -> QueueEntry:
    return QueueEntry(
        id="q-1",
        refund_transaction_id="r-1",
        original_transaction_id="t-1",
        amount=Money("1.00", USD),
        idempotency_key="k:refund",
        created_at=START,
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["w1", "w2", "w3"]), st.integers(min_value=0, max_value=900)),
        min_size=1,
        max_size=12,
    )
)
def test_only_the_latest_claim_holds_the_lease(claims: list[tuple[str, int]]) -> None:
    """Whoever claims and whenever: each successful claim gets the next fencing number, and only
    the latest claim holds the entry (an equal worker name with an older fence does not)."""
    store = MemoryStore()
    with store.session() as s:
        s.put_queue_entry(_entry())
    now = START
    got: list[QueueEntry] = []
    for worker, seconds in claims:
        now += timedelta(seconds=seconds)
        with store.session() as s:
            got.extend(s.claim_due(now=now, worker=worker, lease_seconds=LEASE, limit=1))
    assert [c.fence for c in got] == list(range(1, len(got) + 1))
    with store.session() as s:
        stored = s.get_queue_entry("q-1")
    assert stored is not None
    holders = [c for c in got if stored.held_by(c)]
    assert holders == got[-1:]
