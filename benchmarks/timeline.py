"""Billing-timeline throughput: the public API against a bare loop, measured in the same run.

    .venv/bin/python benchmarks/timeline.py            # 100,000 subscriptions, a year each
    .venv/bin/python benchmarks/timeline.py --n 20000  # a quick run (CI)

Each synthetic subscription is a monthly plan (a price, a quantity) ordered on a random day
and anchored on a random billing day (the 1st to the 31st), so nearly every one starts with a
prorated stub. The public API call is ``timeline.bills(plan, start=, until=, anchor=,
quantity=)`` for one year of service (12 or 13 bills) and reads each bill's ``billed_on`` and
``total``. The baseline is the floor of pure Python for the same arithmetic: the anchored month
boundaries from a days-in-month table, the stub as ``date.toordinal()`` differences with one
``Decimal`` multiply, divide and quantize, and one quantize for the whole periods. Both loops
see the same inputs; the script checks that they agree to the cent on every bill and prints
bills per second for both and their ratio.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import sys
import time
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from billing_core import Money, Period, Plan
from billing_core.rules import timeline

Order = tuple[
    Plan, Decimal, int, date, date, date
]  # plan, its price, quantity, start, until, anchor
Billed = list[tuple[date, Decimal]]


def synthetic_orders(n: int, seed: int = 2026) -> list[Order]:
    """``n`` monthly orders: (plan, price, quantity, start, until = a year later, anchor)."""
    rng = random.Random(seed)
    first = date(2024, 1, 1).toordinal()
    year = Period.years(1)
    out: list[Order] = []
    for _ in range(n):
        start = date.fromordinal(first + rng.randrange(1_100))
        day = rng.randrange(1, 32)
        anchor = date(2023, 1, day)  # a billing day: any month with that day anchors it
        price = Money(Decimal(rng.randrange(100, 500_000)).scaleb(-2), "USD")
        plan = Plan(price=price, period=Period.months(1))
        until = year.after(start) - timedelta(days=1)
        out.append((plan, price.amount, rng.randrange(1, 50), start, until, anchor))
    return out


def run_api(orders: Sequence[Order]) -> tuple[float, int, list[Billed]]:
    bills = timeline.bills
    out: list[Billed] = []
    append = out.append
    count = 0
    began = time.perf_counter()
    for plan, _dec, quantity, start, until, anchor in orders:
        result = bills(plan, start=start, until=until, anchor=anchor, quantity=quantity)
        count += len(result)
        append([(bill.billed_on, bill.total.amount) for bill in result])
    return time.perf_counter() - began, count, out


_DAYS = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


def _month_end(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS[month]


def run_bare(orders: Sequence[Order]) -> tuple[float, int, list[Billed]]:
    cent = Decimal("0.01")
    out: list[Billed] = []
    append = out.append
    count = 0
    began = time.perf_counter()
    for _plan, dec, quantity, start, until, anchor in orders:
        day = anchor.day
        # the billing day on or before the start (b0) and the one after it (b1), by month index
        index = start.year * 12 + start.month - 1
        y, m = divmod(index, 12)
        b0 = date(y, m + 1, min(day, _month_end(y, m + 1)))
        if b0 > start:
            index -= 1
            y, m = divmod(index, 12)
            b0 = date(y, m + 1, min(day, _month_end(y, m + 1)))
        index += 1
        y, m = divmod(index, 12)
        b1 = date(y, m + 1, min(day, _month_end(y, m + 1)))
        whole = (dec * quantity).quantize(cent, ROUND_HALF_UP)
        if b0 == start:
            billed = [(start, whole)]
        else:
            part = b1.toordinal() - start.toordinal()
            days = b1.toordinal() - b0.toordinal()
            billed = [(start, (dec * quantity * part / days).quantize(cent, ROUND_HALF_UP))]
        while b1 <= until:
            billed.append((b1, whole))
            index += 1
            y, m = divmod(index, 12)
            b1 = date(y, m + 1, min(day, _month_end(y, m + 1)))
        count += len(billed)
        append(billed)
    return time.perf_counter() - began, count, out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=100_000, help="subscriptions (100,000)")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs (3)")
    args = parser.parse_args(argv)
    orders = synthetic_orders(args.n)
    gc.disable()  # time the arithmetic, not the collector's visits to a million results
    try:
        api_time = bare_time = float("inf")
        api_out: list[Billed] = []
        bare_out: list[Billed] = []
        count = 0
        for _ in range(max(1, args.repeat)):
            t, _count, bare_out = run_bare(orders)
            bare_time = min(bare_time, t)
            t, count, api_out = run_api(orders)
            api_time = min(api_time, t)
    finally:
        gc.enable()
    mismatches = sum(a != b for a, b in zip(api_out, bare_out, strict=True))
    api_rate = count / api_time
    bare_rate = count / bare_time
    print(f"python {platform.python_version()} on {platform.machine()}, n={args.n:,}")
    print(f"bills:                 {count:>12,} ({count / args.n:.2f} per subscription)")
    print(f"public API  bills():   {api_rate:>12,.0f} bills/s")
    print(f"bare loop   (floor):   {bare_rate:>12,.0f} bills/s")
    print(f"ratio (bare / API):    {bare_rate / api_rate:>12.2f}x")
    print(f"subscriptions differing: {mismatches:>10,}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
