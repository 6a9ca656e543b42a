"""Step leases (``billing_core.cli.leases``): one worker at a time per lease name, taken over
only once a lease has expired. The worker's use of them is tested end to end in test_cli.py."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from billing_core.cli.leases import StepLeases
from billing_core.plugins.memory_store import MemoryStore
from billing_core.testing.clock import ManualClock


def test_a_step_lease_is_held_renewed_released_and_taken_over_after_expiry() -> None:
    store = MemoryStore()
    clock = ManualClock(datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    a = StepLeases(store, owner="a", seconds=60, clock=clock)
    b = StepLeases(store, owner="b", seconds=60, clock=clock)
    held = a.take("renewals")
    assert held is not None and held.until == datetime(2026, 11, 21, 9, 1, tzinfo=UTC)
    assert b.take("renewals") is None
    assert b.take("reconcile") is not None, "each step has its own lease"
    clock.advance(seconds=50)
    assert b.take("renewals", renew=True) is None, "only the holder renews"
    renewed = a.take("renewals", renew=True)
    assert renewed is not None and renewed.until == datetime(2026, 11, 21, 9, 1, 50, tzinfo=UTC)
    clock.advance(seconds=60)
    taken = b.take("renewals")
    assert taken is not None and taken.owner == "b", "an expired lease is taken over"
    a.release("renewals")
    assert b.holder("renewals") == taken, "releasing someone else's lease does nothing"
    b.release("renewals")
    assert b.holder("renewals") is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from("abc"),
            st.sampled_from(["take", "renew", "release"]),
            st.integers(0, 90),
        ),
        max_size=30,
    )
)
def test_at_most_one_worker_holds_a_step_until_its_lease_expires(
    moves: list[tuple[str, str, int]],
) -> None:
    store = MemoryStore()
    clock = ManualClock(datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    leases = {w: StepLeases(store, owner=w, seconds=60, clock=clock) for w in "abc"}
    holder: str | None = None
    until = clock()
    for worker, move, wait in moves:
        clock.advance(seconds=wait)
        now = clock()
        if move == "release":
            leases[worker].release("step")
            if holder == worker:
                holder = None
            continue
        got = leases[worker].take("step", renew=move == "renew")
        free = holder is None or until <= now
        expected = holder == worker if move == "renew" else holder == worker or free
        assert (got is not None) == expected, (worker, move, holder, until, now)
        if got is not None:
            holder, until = worker, got.until
