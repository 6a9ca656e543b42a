"""The store contract, part 3: metered periods closed once (``insert_metered_close``).

Private: use ``billing_core.testing.store_contract.StoreContract``.
"""

from __future__ import annotations

import functools
import threading
from datetime import UTC, timedelta
from typing import Any

import pytest

from ..errors import ConflictError, InvalidValueError, NaiveDatetimeError
from ..plugins.protocols import Store
from ..plugins.records import MeteredClose
from ._store_record_contract import KOLKATA, LONDON, T0, Boom, _in_thread, assert_same

END = T0 + timedelta(days=31)


def _close(sub: str = "s-1", metric: str | None = "api", **kw: Any) -> MeteredClose:
    values: dict[str, Any] = {
        "subscription_id": sub,
        "metric": metric,
        "start": T0,
        "end": END,
        "closed_at": END + timedelta(hours=1),
        "idempotency_key": "close-1",
        "result": {"lines": [{"amount": "1.80"}], "explanation": "1,200 units"},
    }
    values.update(kw)
    return MeteredClose(**values)


class MeteredCloseContract:
    """One record per (subscription, metric, start, end), compared as instants; race safe."""

    threads = 8

    def test_metered_close_round_trip_and_key(self, store: Store) -> None:
        first = _close()
        with store.session() as s:
            assert (
                s.get_metered_close(subscription_id="s-1", metric="api", start=T0, end=END) is None
            )
            s.insert_metered_close(first)
        with store.session() as s:
            got = s.get_metered_close(subscription_id="s-1", metric="api", start=T0, end=END)
            assert_same(got, first)
            # the same instants in other zones name the same period
            same = s.get_metered_close(
                subscription_id="s-1",
                metric="api",
                start=T0.astimezone(KOLKATA),
                end=END.astimezone(UTC),
            )
            assert_same(same, first)
            for other in (
                {"subscription_id": "s-2", "metric": "api", "start": T0, "end": END},
                {"subscription_id": "s-1", "metric": None, "start": T0, "end": END},
                {"subscription_id": "s-1", "metric": "sms", "start": T0, "end": END},
                {"subscription_id": "s-1", "metric": "api", "start": T0, "end": END + DAY},
                {"subscription_id": "s-1", "metric": "api", "start": T0 + DAY, "end": END},
            ):
                assert s.get_metered_close(**other) is None, other

    def test_second_close_of_a_period_conflicts_and_the_session_goes_on(self, store: Store) -> None:
        first = _close()
        with store.session() as s:
            s.insert_metered_close(first)
        with store.session() as s:
            for again in (
                _close(idempotency_key="close-2", result={}),
                _close(start=T0.astimezone(KOLKATA), end=END.astimezone(LONDON)),
            ):
                with pytest.raises(ConflictError):
                    s.insert_metered_close(again)
            # every metric (None) and another metric are other periods
            s.insert_metered_close(_close(metric=None))
            s.insert_metered_close(_close(metric="sms"))
        with store.session() as s:
            got = s.get_metered_close(subscription_id="s-1", metric="api", start=T0, end=END)
            assert_same(got, first)
            assert s.get_metered_close(subscription_id="s-1", metric=None, start=T0, end=END)

    def test_metered_close_is_rolled_back_with_its_session(self, store: Store) -> None:
        def close_then_fail() -> None:
            with store.session() as s:
                s.insert_metered_close(_close())
                raise Boom

        with pytest.raises(Boom):
            close_then_fail()
        with store.session() as s:
            assert (
                s.get_metered_close(subscription_id="s-1", metric="api", start=T0, end=END) is None
            )
            s.insert_metered_close(_close())

    def test_metered_close_bad_input_names_the_field(self, store: Store) -> None:
        with store.session() as s:
            with pytest.raises(InvalidValueError) as info:
                s.insert_metered_close(_close(metric=""))
            assert info.value.field == "$.metric"
            with pytest.raises(InvalidValueError) as info:
                s.insert_metered_close(_close(end=T0 - DAY))
            assert info.value.field == "$.end"
            with pytest.raises(NaiveDatetimeError):
                s.get_metered_close(
                    subscription_id="s-1", metric=None, start=T0.replace(tzinfo=None), end=END
                )

    def test_concurrent_closes_of_one_period_insert_once(self, store: Store) -> None:
        barrier = threading.Barrier(self.threads)
        won: list[str] = []

        def close(i: int) -> None:
            barrier.wait(10)
            with store.session() as s:
                s.insert_metered_close(_close(idempotency_key=f"k-{i}"))
            won.append(f"k-{i}")

        started = [_in_thread(functools.partial(close, i)) for i in range(self.threads)]
        lost = 0
        for thread, errors in started:
            thread.join(60)
            assert all(isinstance(e, ConflictError) for e in errors), errors
            lost += len(errors)
        assert (len(won), lost) == (1, self.threads - 1)
        with store.session() as s:
            got = s.get_metered_close(subscription_id="s-1", metric="api", start=T0, end=END)
            assert got is not None and got.idempotency_key == won[0]


DAY = timedelta(days=1)
