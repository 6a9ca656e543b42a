"""Metered billing: aggregation over a period, duplicates, clamping, postpaid-only prices."""

from __future__ import annotations

import gc
import io
import itertools
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import (
    BillingError,
    ConfigurationError,
    InvalidTypeError,
    InvalidValueError,
    Money,
    NaiveDatetimeError,
    UsageEvent,
)
from billing_core.rules import metering
from billing_core.rules.metering import Aggregation, Dedup
from billing_core.serialization import dumps, loads

S = datetime(2026, 3, 1, tzinfo=UTC)
E = datetime(2026, 4, 1, tzinfo=UTC)


def ev(eid: str, qty: str | int | Decimal, at: datetime, user: str | None = None) -> UsageEvent:
    return UsageEvent(
        id=eid, quantity=qty, at=at, properties={} if user is None else {"user": user}
    )


# The worked example: 4 events count, 1 duplicate delivery and 2 events outside [S, E).
EVENTS = [
    ev("e1", 10, S, "alice"),  # exactly at start: counted
    ev("e2", 25, datetime(2026, 3, 10, 12, tzinfo=UTC), "bob"),
    ev("e3", "5.5", datetime(2026, 3, 20, tzinfo=UTC), "alice"),
    ev("e1", 999, datetime(2026, 3, 31, 23, tzinfo=UTC), "zed"),  # redelivery: the first wins
    ev("e4", 7, E, "dave"),  # exactly at end: not counted
    ev("e5", 3, datetime(2026, 3, 1, 0, 30, tzinfo=ZoneInfo("Europe/Paris")), "erin"),  # Feb 28
    ev("e6", 8, E - timedelta(microseconds=1), "carol"),  # the last instant of the period
]


def agg(events: object, strategy: str, **kw: object) -> metering.Usage:
    return metering.aggregate(events, strategy=strategy, start=S, end=E, **kw)  # type: ignore[arg-type]


class TestWorkedExample:
    def test_sum(self) -> None:
        r = agg(EVENTS, "sum")
        assert (r.value, r.count, r.duplicates, r.outside) == (Decimal("48.5"), 4, 1, 2)

    def test_max(self) -> None:
        r = agg(EVENTS, "max")
        assert (r.value, r.count) == (Decimal(25), 4)

    def test_last_is_latest_at_not_latest_in_input(self) -> None:
        r = agg(EVENTS, Aggregation.LAST)
        assert (r.value, r.count, r.last_at) == (Decimal(8), 4, E - timedelta(microseconds=1))

    def test_count(self) -> None:
        r = agg(EVENTS, "count")
        assert (r.value, r.count) == (Decimal(4), 4)

    def test_unique_count(self) -> None:
        r = agg(EVENTS, "unique_count", unique_by="user")
        assert (r.value, r.count) == (Decimal(3), 4)  # alice, bob, carol

    def test_explanation_has_the_figures(self) -> None:
        text = agg(EVENTS, "sum").explanation
        assert text == (
            "sum of 48.5 over 4 events from 2026-03-01T00:00:00+00:00 to "
            "2026-04-01T00:00:00+00:00 (end excluded); ignored 1 duplicate delivery and "
            "2 events outside the period"
        )

    def test_event_at_start_counts_and_at_end_does_not(self) -> None:
        assert agg([ev("a", 1, S)], "sum").count == 1
        assert agg([ev("a", 1, E)], "sum").count == 0
        assert agg([ev("a", 1, S - timedelta(microseconds=1))], "sum").count == 0

    @pytest.mark.parametrize("strategy", list(Aggregation))
    def test_empty_period_is_zero(self, strategy: Aggregation) -> None:
        kw = {"unique_by": "user"} if strategy is Aggregation.UNIQUE_COUNT else {}
        outside = [ev("x", 5, E, "u"), ev("y", 5, S - timedelta(days=1), "u")]
        for events in ([], outside):
            r = agg(events, strategy, **kw)
            assert (r.value, r.count) == (Decimal(0), 0)

    def test_last_tie_goes_to_the_later_event_in_the_input(self) -> None:
        t = datetime(2026, 3, 5, tzinfo=UTC)
        r = agg([ev("a", 1, t), ev("b", 2, t), ev("c", 3, t - timedelta(hours=1))], "last")
        assert r.value == Decimal(2)

    def test_a_duplicate_never_replaces_the_first_delivery_for_last(self) -> None:
        t = datetime(2026, 3, 5, tzinfo=UTC)
        r = agg([ev("a", 1, t), ev("a", 9, t + timedelta(days=1))], "last")
        assert (r.value, r.duplicates) == (Decimal(1), 1)

    def test_strategy_enum_equals_its_string(self) -> None:
        assert [m.value for m in Aggregation] == ["sum", "last", "max", "count", "unique_count"]
        assert str(Aggregation.UNIQUE_COUNT) == "unique_count"
        assert Aggregation("unique_count") is Aggregation.UNIQUE_COUNT
        assert agg(EVENTS, Aggregation.SUM) == agg(EVENTS, "sum")


class TestInputs:
    def test_a_generator_is_consumed_once(self) -> None:
        assert agg((e for e in EVENTS), "sum").value == Decimal("48.5")

    def test_a_file_reader(self) -> None:
        text = "\n".join(dumps(e) for e in EVENTS)
        events = (loads(line, UsageEvent) for line in io.StringIO(text))
        assert agg(events, "max").value == Decimal(25)

    @pytest.mark.parametrize("strategy", ["sum", "last", "max", "count"])
    def test_no_past_event_is_kept_alive(self, strategy: str) -> None:
        alive: list[weakref.ref[UsageEvent]] = []
        peak = 0

        def stream() -> Iterator[UsageEvent]:
            nonlocal peak
            for i in range(2000):
                if i % 500 == 0:
                    gc.collect()
                peak = max(peak, sum(r() is not None for r in alive[-50:]))
                e = ev(f"{i:06d}", i % 7, S + timedelta(seconds=i))
                alive.append(weakref.ref(e))
                yield e

        r = metering.aggregate(
            stream(), strategy=strategy, start=S, end=E, dedup=Dedup.SORTED_BY_ID
        )
        assert r.count == 2000
        assert peak <= 2  # the event being handled, at most one more; never a growing list

    def test_sorted_dedup_agrees_with_the_set(self) -> None:
        events = sorted(EVENTS, key=lambda e: e.id)  # stable: the first e1 stays first
        for strategy in ("sum", "last", "max", "count"):
            assert agg(events, strategy, dedup="sorted_by_id") == agg(events, strategy)

    def test_sorted_dedup_refuses_an_unsorted_stream(self) -> None:
        events = [ev("b", 1, S), ev("c", 1, S), ev("a", 1, S)]
        with pytest.raises(InvalidValueError) as err:
            agg(events, "sum", dedup="sorted_by_id")
        assert err.value.field == "$.events[2].id"

    def test_wrong_element_names_its_index(self) -> None:
        with pytest.raises(InvalidTypeError) as err:
            agg([EVENTS[0], EVENTS[1], {"id": "x"}], "sum")
        assert err.value.field == "$.events[2]"

    def test_not_iterable(self) -> None:
        for bad in (5, "events"):
            with pytest.raises(InvalidTypeError) as err:
                agg(bad, "sum")
            assert err.value.field == "$.events"

    def test_unknown_strategy(self) -> None:
        with pytest.raises(InvalidValueError) as err:
            agg(EVENTS, "median")
        assert err.value.field == "$.strategy"

    def test_unknown_dedup(self) -> None:
        with pytest.raises(InvalidValueError) as err:
            agg(EVENTS, "sum", dedup="none")
        assert err.value.field == "$.dedup"

    def test_unique_by_is_required_for_unique_count_only(self) -> None:
        with pytest.raises(InvalidValueError) as err:
            agg(EVENTS, "unique_count")
        assert err.value.field == "$.unique_by"
        with pytest.raises(InvalidValueError) as err:
            agg(EVENTS, "sum", unique_by="user")
        assert err.value.field == "$.unique_by"

    def test_unique_count_needs_the_property_on_counted_events(self) -> None:
        events = [ev("a", 1, S, "u"), ev("b", 1, E), ev("c", 1, S)]  # b is outside: fine
        with pytest.raises(InvalidValueError) as err:
            agg(events, "unique_count", unique_by="user")
        assert err.value.field == "$.events[2].properties.user"

    def test_unique_count_refuses_unhashable_values(self) -> None:
        events = [UsageEvent(id="a", quantity=1, at=S, properties={"user": ["x"]})]
        with pytest.raises(InvalidTypeError) as err:
            agg(events, "unique_count", unique_by="user")
        assert err.value.field == "$.events[0].properties.user"

    def test_naive_and_reversed_periods(self) -> None:
        with pytest.raises(NaiveDatetimeError) as err:
            metering.aggregate([], strategy="sum", start=datetime(2026, 3, 1), end=E)  # noqa: DTZ001
        assert err.value.field == "$.start"
        with pytest.raises(InvalidValueError) as err2:
            metering.aggregate([], strategy="sum", start=E, end=S)
        assert err2.value.field == "$.end"
        with pytest.raises(InvalidValueError):
            metering.aggregate([], strategy="sum", start=S, end=S)


class TestBillableQuantity:
    def test_raised_to_the_minimum(self) -> None:
        assert metering.billable_quantity(Decimal(3), minimum=10, maximum=100) == Decimal(10)

    def test_capped_at_the_maximum(self) -> None:
        assert metering.billable_quantity(Decimal(250), minimum=10, maximum=100) == Decimal(100)

    def test_within_bounds_and_unbounded(self) -> None:
        assert metering.billable_quantity(Decimal("42.5"), minimum=10, maximum=100) == Decimal(
            "42.5"
        )
        assert metering.billable_quantity("42.5") == Decimal("42.5")
        assert metering.billable_quantity(0, minimum="0.5") == Decimal("0.5")

    def test_minimum_above_maximum_is_a_configuration_error(self) -> None:
        with pytest.raises(ConfigurationError) as err:
            metering.billable_quantity(5, minimum=10, maximum=9)
        assert err.value.field == "$.minimum"

    def test_bad_values(self) -> None:
        with pytest.raises(InvalidTypeError) as err:
            metering.billable_quantity(1.5)  # type: ignore[arg-type]
        assert err.value.field == "$.value"
        with pytest.raises(InvalidValueError) as err2:
            metering.billable_quantity(-1)
        assert err2.value.field == "$.value"
        with pytest.raises(InvalidValueError) as err3:
            metering.billable_quantity(1, maximum=-1)
        assert err3.value.field == "$.maximum"

    @given(
        value=st.decimals(min_value=0, max_value=10**6, places=3),
        a=st.decimals(min_value=0, max_value=10**6, places=3),
        b=st.decimals(min_value=0, max_value=10**6, places=3),
    )
    def test_clamp_property(self, value: Decimal, a: Decimal, b: Decimal) -> None:
        low, high = min(a, b), max(a, b)
        q = metering.billable_quantity(value, minimum=low, maximum=high)
        assert low <= q <= high
        assert q == (value if low <= value <= high else (low if value < low else high))


# -- properties --------------------------------------------------------------------------------
_instants = st.integers(min_value=-5, max_value=40).map(lambda d: S + timedelta(hours=d * 18))
_base = st.lists(
    st.tuples(
        st.decimals(min_value=0, max_value=1000, places=2),
        _instants,
        st.sampled_from(["ann", "ben", "cy", "dee"]),
    ),
    max_size=30,
).map(lambda rows: [ev(f"id{i}", q, at, u) for i, (q, at, u) in enumerate(rows)])

ORDER_FREE = ["sum", "max", "count", "unique_count"]


def _reference(events: list[UsageEvent], strategy: str) -> tuple[Decimal, int]:
    first: dict[str, tuple[int, UsageEvent]] = {}
    for i, e in enumerate(events):
        if S <= e.at < E and e.id not in first:
            first[e.id] = (i, e)
    kept = sorted(first.values(), key=lambda p: p[0])
    qs = [e.quantity for _, e in kept]
    if strategy == "sum":
        value = sum(qs, Decimal(0))
    elif strategy == "max":
        value = max(qs, default=Decimal(0))
    elif strategy == "count":
        value = Decimal(len(qs))
    elif strategy == "last":
        value = max(kept, key=lambda p: (p[1].at, p[0]))[1].quantity if kept else Decimal(0)
    else:
        value = Decimal(len({e.properties["user"] for _, e in kept}))
    return value, len(kept)


def _chunks(events: list[UsageEvent], cuts: list[int]) -> Iterator[UsageEvent]:
    """The same events delivered in batches, each batch a separate generator."""
    bounds = sorted({min(c, len(events)) for c in cuts} | {0, len(events)})
    batches = (iter(events[a:b]) for a, b in itertools.pairwise(bounds))
    return itertools.chain.from_iterable(batches)


def _kw(strategy: str) -> dict[str, str]:
    return {"unique_by": "user"} if strategy == "unique_count" else {}


class TestProperties:
    @given(events=_base, data=st.data())
    def test_independent_of_order_batching_and_redelivery(
        self, events: list[UsageEvent], data: st.DataObject
    ) -> None:
        copies = data.draw(st.lists(st.sampled_from(events), max_size=10)) if events else []
        delivered = data.draw(st.permutations(events + copies))
        cuts = data.draw(st.lists(st.integers(0, len(delivered)), max_size=4))
        for strategy in ORDER_FREE:
            once = agg(events, strategy, **_kw(strategy))
            again = agg(_chunks(delivered, cuts), strategy, **_kw(strategy))
            assert (again.value, again.count) == (once.value, once.count)
            assert again.duplicates == sum(S <= c.at < E for c in copies)

    @given(
        events=_base,
        data=st.data(),
        strategy=st.sampled_from([*ORDER_FREE, "last"]),
    )
    def test_matches_a_reference_with_conflicting_redeliveries(
        self, events: list[UsageEvent], data: st.DataObject, strategy: str
    ) -> None:
        # Redeliveries that disagree with the original (another quantity, instant, user):
        # the first delivery in the input wins.
        n = len(events)
        extra = data.draw(
            st.lists(st.tuples(st.integers(0, max(n - 1, 0)), _instants, st.integers(0, 50)))
        )
        mixed = list(events)
        for idx, at, q in extra if n else []:
            pos = data.draw(st.integers(0, len(mixed)))
            mixed.insert(pos, ev(f"id{idx}", q, at, "zed"))
        r = agg(mixed, strategy, **_kw(strategy))
        assert (r.value, r.count) == _reference(mixed, strategy)
        in_period = sum(S <= e.at < E for e in mixed)
        assert r.count + r.duplicates == in_period
        assert r.outside == len(mixed) - in_period


class TestMeteredPrice:
    def test_postpaid_only(self) -> None:
        from billing_core.rules.pricing import PerUnit

        model = PerUnit(unit_price=Money("0.01", "USD"))
        assert metering.MeteredPrice(model=model).timing == "in_arrears"
        with pytest.raises(ConfigurationError) as err:
            metering.MeteredPrice(model=model, timing="in_advance")
        assert err.value.field == "$.timing"
        assert "postpaid" in err.value.reason

    def test_configuration_errors(self) -> None:
        from billing_core.rules.pricing import PerUnit

        model = PerUnit(unit_price=Money("0.01", "USD"))
        cases: list[tuple[dict[str, object], str]] = [
            ({"minimum": 10, "maximum": 5}, "$.minimum"),
            ({"minimum": -1}, "$.minimum"),
            ({"strategy": "unique_count"}, "$.unique_by"),
            ({"strategy": "sum", "unique_by": "user"}, "$.unique_by"),
            ({"strategy": "mean"}, "$.strategy"),
            ({"timing": "whenever"}, "$.timing"),
        ]
        for kwargs, field in cases:
            with pytest.raises(BillingError) as err:
                metering.MeteredPrice(model=model, **kwargs)  # type: ignore[arg-type]
            assert err.value.field == field, kwargs
        with pytest.raises(InvalidTypeError) as err2:
            metering.MeteredPrice(model=Money("1", "USD"))  # type: ignore[arg-type]
        assert err2.value.field == "$.model"
