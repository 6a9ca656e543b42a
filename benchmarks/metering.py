"""Benchmark: stream N usage events of one subscription through ``metering.aggregate``.

    .venv/bin/python benchmarks/metering.py            # 5,000,000 events (a few minutes)
    .venv/bin/python benchmarks/metering.py --n 200000 # a quick run

The events are generated lazily (a generator, never a list), ordered by id and spread over one
month. In the same run it measures, over the same stream:

* ``generate only``: consuming the stream and doing nothing (the floor: building a
  ``UsageEvent`` costs more than aggregating it);
* ``bare loop``: a hand-written Python loop computing the sum (and the max) of the events in
  the period, without duplicate detection, and one that also keeps a set of seen ids;
* ``aggregate`` for every strategy, with ``dedup="by_id"`` (the default, a set of the ids seen)
  and ``dedup="sorted_by_id"`` (constant memory, for a stream ordered by id).

It prints events per second, the ratio to the bare loop (target: sum within 2x) and that ratio
net of generation. Then, with tracemalloc, the peak memory of streamed runs at N/5 and N events
side by side: constant for ``sorted_by_id``; growing with the distinct ids for ``by_id``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal

from billing_core import UsageEvent
from billing_core.rules import metering

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)
_QUANTITIES = tuple(Decimal(q) for q in ("1", "2.5", "0", "17", "3.25", "8", "1", "40"))


def events(n: int) -> Iterator[UsageEvent]:
    """``n`` events for subscription ``sub_1``, ids ascending, every one inside [START, END)."""
    step = (END - START) / n
    for i in range(n):
        yield UsageEvent(
            id=f"ev-{i:010d}",
            quantity=_QUANTITIES[i & 7],
            at=START + step * i,
            properties={"user": i % 1000},
            subscription_id="sub_1",
        )


def generate_only(stream: Iterator[UsageEvent]) -> object:
    for _ in stream:
        pass
    return None


def bare_sum(stream: Iterator[UsageEvent]) -> object:
    start, end, total = START, END, Decimal(0)
    for e in stream:
        if start <= e.at < end:
            total += e.quantity
    return total


def bare_max(stream: Iterator[UsageEvent]) -> object:
    start, end, best = START, END, Decimal(0)
    for e in stream:
        if start <= e.at < end and e.quantity > best:
            best = e.quantity
    return best


def bare_sum_with_ids(stream: Iterator[UsageEvent]) -> object:
    start, end, total, seen = START, END, Decimal(0), set()
    for e in stream:
        if start <= e.at < end and e.id not in seen:
            seen.add(e.id)
            total += e.quantity
    return total


def streamed(strategy: str, dedup: str) -> Callable[[Iterator[UsageEvent]], object]:
    unique_by = "user" if strategy == "unique_count" else None

    def run(stream: Iterator[UsageEvent]) -> object:
        return metering.aggregate(
            stream, strategy=strategy, start=START, end=END, unique_by=unique_by, dedup=dedup
        ).value

    return run


def timed(fn: Callable[[Iterator[UsageEvent]], object], n: int) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn(events(n))
    return time.perf_counter() - t0, result


def _best(fn: Callable[[Iterator[UsageEvent]], object], pool: list[UsageEvent]) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        fn(iter(pool))
        best = min(best, time.perf_counter() - t0)
    return best


def _check(name: str, value: object, total: object, best: object) -> None:
    """The aggregate runs must agree with the bare loops (every event is distinct)."""
    if name.startswith("aggregate sum") and value != total:
        raise SystemExit(f"{name}: {value} != bare sum {total}")
    if name.startswith("aggregate max") and value != best:
        raise SystemExit(f"{name}: {value} != bare max {best}")


def peak(fn: Callable[[Iterator[UsageEvent]], object], n: int) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn(events(n))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=5_000_000, help="events per run (5,000,000)")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    args = parser.parse_args()
    n: int = args.n
    print(f"metering benchmark: {n:,} lazily generated usage events, one subscription")
    print(f"Python {platform.python_version()} on {platform.machine()} ({sys.platform})\n")

    gen_time, _ = timed(generate_only, n)
    bare_time, bare_total = timed(bare_sum, n)
    bare_max_time, bare_best = timed(bare_max, n)
    rows: list[tuple[str, float, object]] = [
        ("generate only (the floor)", gen_time, None),
        ("bare loop: sum", bare_time, bare_total),
        ("bare loop: max", bare_max_time, bare_best),
        ("bare loop: sum + set of seen ids", *timed(bare_sum_with_ids, n)),
    ]
    for dedup in ("by_id", "sorted_by_id"):
        for strategy in ("sum", "last", "max", "count", "unique_count"):
            rows.append(
                (f"aggregate {strategy}, dedup={dedup}", *timed(streamed(strategy, dedup), n))
            )

    width = max(len(r[0]) for r in rows)
    print(f"{'run':<{width}}  {'events/s':>12}  {'vs bare':>8}  value")
    for name, seconds, value in rows:
        base = bare_max_time if " max" in name else bare_time
        shown = "" if value is None else str(value)
        print(f"{name:<{width}}  {n / seconds:>12,.0f}  {seconds / base:>7.2f}x  {shown}")
        _check(name, value, bare_total, bare_best)
    print(
        "\n'vs bare' = time / time of the bare loop over the same stream (sum; max for the max "
        "rows).\nBuilding each UsageEvent costs more than aggregating it, so these ratios are "
        "mostly generation;\nthe next table isolates the aggregation work."
    )

    m = min(n, 1_000_000)
    pool = list(events(m))  # built once; only for this table, the streamed runs never list
    print(f"\naggregation work alone: the same loops over a pre-built list of {m:,} events")
    print("(best of 3 runs each)")
    bare_list = _best(bare_sum, pool)
    bare_list_max = _best(bare_max, pool)
    list_rows: list[tuple[str, float]] = [
        ("bare loop: sum", bare_list),
        ("bare loop: max", bare_list_max),
        ("bare loop: sum + set of seen ids", _best(bare_sum_with_ids, pool)),
    ]
    for dedup in ("by_id", "sorted_by_id"):
        for strategy in ("sum", "last", "max", "count", "unique_count"):
            list_rows.append(
                (f"aggregate {strategy}, dedup={dedup}", _best(streamed(strategy, dedup), pool))
            )
    print(f"{'run':<{width}}  {'events/s':>12}  {'vs bare':>8}")
    for name, seconds in list_rows:
        base = bare_list_max if " max" in name else bare_list
        print(f"{name:<{width}}  {m / seconds:>12,.0f}  {seconds / base:>7.2f}x")
    del pool

    if args.no_memory:
        return
    small = max(n // 5, 1)
    print(f"\npeak traced memory (tracemalloc) of one streamed run, {small:,} vs {n:,} events:")
    memory_runs: list[tuple[str, Callable[[Iterator[UsageEvent]], object]]] = [
        ("bare loop: sum", bare_sum),
        ("aggregate sum, dedup=sorted_by_id", streamed("sum", "sorted_by_id")),
        ("aggregate last, dedup=sorted_by_id", streamed("last", "sorted_by_id")),
        ("aggregate max, dedup=sorted_by_id", streamed("max", "sorted_by_id")),
        ("aggregate count, dedup=sorted_by_id", streamed("count", "sorted_by_id")),
        ("aggregate sum, dedup=by_id (default)", streamed("sum", "by_id")),
    ]
    width = max(len(r[0]) for r in memory_runs)
    print(f"{'run':<{width}}  {f'{small:,} events':>16}  {f'{n:,} events':>16}")
    for name, fn in memory_runs:
        a, b = peak(fn, small), peak(fn, n)
        print(f"{name:<{width}}  {a / 1024:>13,.1f} KiB  {b / 1024:>13,.1f} KiB")
    print(
        "\nby_id keeps every distinct event id of the period (memory grows with them); "
        "sorted_by_id keeps only the previous id and checks the order."
    )


if __name__ == "__main__":
    main()
