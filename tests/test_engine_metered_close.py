"""Closing a metered period through the engine (issue 10, observation 7), on memory, SQLite and
PostgreSQL: a period closes only once it has ended by the engine's clock, and a period of one
subscription and metric is closed once, whatever idempotency key a second close carries."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import test_engine as base
from billing_core import BillingEngine, Customer, InvalidValueError, Money, UsageEvent
from billing_core.engine import CloseResult
from billing_core.rules import metering, pricing
from billing_core.testing.clock import ManualClock

ADMIN = base.ADMIN
store_url, clock, engine = base.store_url, base.clock, base.engine  # the engine tests' fixtures
START = base.START
END = START + timedelta(days=30)
PRICE = metering.MeteredPrice(model=pricing.PerUnit(unit_price=Money("0.0015", "USD")))


def _subscribed(engine: BillingEngine) -> str:
    """A subscription with 1,200 API calls and 100 SMS inside ``[START, END)``, 500 after."""
    sub = engine.transaction(base._subscribe(engine, "m")).subscription_id
    assert sub is not None
    events = [
        UsageEvent(id=f"a{i}", quantity=100, at=START + timedelta(hours=i), subscription_id=sub)
        for i in range(12)
    ]
    events.append(UsageEvent(id="s0", quantity=100, at=START, subscription_id=sub, metric="sms"))
    events.append(UsageEvent(id="late", quantity=500, at=END, subscription_id=sub))
    engine.record_usage(events)
    return sub


def _close(
    engine: BillingEngine,
    sub: str,
    key: str,
    *,
    metric: str | None = None,
    price: metering.MeteredPrice = PRICE,
    end: datetime = END,
) -> CloseResult:
    return engine.close_metered_period(
        sub, price=price, start=START, end=end, metric=metric, idempotency_key=key, actor=ADMIN
    )


class TestPeriodMustHaveEnded:
    def test_a_period_that_has_not_ended_is_refused_and_the_key_stays_free(
        self, engine: BillingEngine, clock: ManualClock
    ) -> None:
        sub = _subscribed(engine)
        clock.set(END - timedelta(seconds=1))
        with pytest.raises(InvalidValueError) as info:
            _close(engine, sub, "close-1")
        assert info.value.field == "$.end"
        assert "has not come yet: the engine's clock says 2026-12-21T11:59:59+00:00" in str(
            info.value
        )
        assert engine.invoice_lines(sub) == []
        clock.set(END)  # the period [START, END) has ended at END
        closed = _close(engine, sub, "close-1")
        # 1,300 units in the period (the 500 at END belong to the next one) × 0.0015 = 1.95
        assert [line.amount for line in closed.lines] == [Money("1.95", "USD")]
        assert not closed.already_closed


class TestClosedOnce:
    def test_a_second_close_under_another_key_returns_the_first_result(
        self, engine: BillingEngine, clock: ManualClock
    ) -> None:
        sub = _subscribed(engine)
        clock.set(END + timedelta(days=1))
        first = _close(engine, sub, "close-1")
        dearer = metering.MeteredPrice(model=pricing.PerUnit(unit_price=Money("1.00", "USD")))
        for key, price in (("close-2", PRICE), ("close-3", dearer)):
            again = _close(engine, sub, key, price=price)
            assert again.already_closed
            assert again.lines == first.lines
            assert again.explanation.startswith(
                "Usage of 2026-11-21T12:00:00+00:00 to 2026-12-21T12:00:00+00:00 was already "
                "closed at 2026-12-22T12:00:00+00:00 (idempotency key 'close-1'); nothing more "
                "was billed. "
            )
        assert _close(engine, sub, "close-1") == first  # the same key: the stored answer
        assert engine.invoice_lines(sub) == list(first.lines)

    def test_each_metric_is_its_own_period(self, engine: BillingEngine, clock: ManualClock) -> None:
        sub = _subscribed(engine)
        clock.set(END)
        every = _close(engine, sub, "all")
        sms = _close(engine, sub, "sms", metric="sms")
        assert not sms.already_closed
        assert [line.amount for line in sms.lines] == [Money("0.15", "USD")]  # 100 × 0.0015
        assert _close(engine, sub, "sms-2", metric="sms").already_closed
        assert engine.invoice_lines(sub) == [*every.lines, *sms.lines]

    def test_concurrent_closes_bill_once(self, store_url: str, clock: ManualClock) -> None:
        """Four workers (each its own engine and store on one database) close one period at
        once; on memory they share the one store object."""
        first = BillingEngine(store=store_url, clock=clock)
        shared = first.store if store_url == "memory://" else store_url
        engines = [first, *(BillingEngine(store=shared, clock=clock) for _ in range(3))]
        engines[0].add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
        sub = _subscribed(engines[0])
        clock.set(END)
        barrier = threading.Barrier(len(engines))
        results: list[CloseResult] = []
        errors: list[BaseException] = []

        def close(i: int) -> None:
            try:
                barrier.wait(10)
                results.append(_close(engines[i], sub, f"worker-{i}"))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=close, args=(i,)) for i in range(len(engines))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        try:
            assert errors == []
            assert sorted(r.already_closed for r in results) == [False, True, True, True]
            assert engines[0].invoice_lines(sub) == list(results[0].lines)
        finally:
            for e in engines:
                e.store.close()


@settings(max_examples=30, deadline=None)
@given(
    closes=st.lists(
        st.tuples(st.sampled_from([None, "sms"]), st.sampled_from(["k1", "k2", "k3"])),
        min_size=1,
        max_size=6,
    )
)
def test_every_period_is_billed_once_whatever_the_keys(
    closes: list[tuple[str | None, str]],
) -> None:
    clk = ManualClock(START)
    eng = BillingEngine(store="memory://", clock=clk)
    eng.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
    sub = _subscribed(eng)
    clk.set(END)
    used: dict[str, str | None] = {}
    for metric, key in closes:
        if used.setdefault(key, metric) != metric:  # a key reused for another metric: an error
            continue
        _close(eng, sub, key, metric=metric)
    billed = sum((line.amount for line in eng.invoice_lines(sub)), Money("0.00", "USD"))
    once = {None: Money("1.95", "USD"), "sms": Money("0.15", "USD")}
    assert billed == sum((once[m] for m in set(used.values())), Money("0.00", "USD"))
