"""Proration throughput: the public API against a bare loop, measured in the same run.

    .venv/bin/python benchmarks/proration.py            # 1,000,000 inventory additions
    .venv/bin/python benchmarks/proration.py --n 10000  # a quick run (CI, tests)

Each synthetic inventory addition is a unit price, an added quantity, a term (a month or a
year, plain local dates) and the day the inventory is added. The public API call is
``proration.prorate(unit_price, quantity=q, period_start=, period_end=, start=)`` and reads the
rounded ``.amount``. The baseline is the floor of pure Python for the same arithmetic: a loop of
``date.toordinal()`` differences and one ``Decimal`` multiply, divide and quantize. Both loops
see the same inputs; the script checks that they agree to the cent (on every addition where the
baseline's 28-digit division cannot double-round) and prints decisions per second for both and
their ratio.
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

from billing_core import Money, Period
from billing_core.rules import proration

Addition = tuple[Money, Decimal, int, date, date, date]


def synthetic_additions(n: int, seed: int = 2026) -> list[Addition]:
    """``n`` inventory additions: (unit price, its Decimal, quantity, term start, term end, added)."""
    rng = random.Random(seed)
    first = date(2024, 1, 1).toordinal()
    terms = (Period.months(1), Period.years(1))
    out: list[Addition] = []
    for _ in range(n):
        term_start = date.fromordinal(first + rng.randrange(1_100))
        term_end = rng.choice(terms).after(term_start)
        added = term_start + timedelta(days=rng.randrange((term_end - term_start).days + 1))
        price = Money(Decimal(rng.randrange(100, 500_000)).scaleb(-2), "USD")
        out.append((price, price.amount, rng.randrange(1, 50), term_start, term_end, added))
    return out


def run_api(additions: Sequence[Addition]) -> tuple[float, list[Money]]:
    prorate = proration.prorate
    out: list[Money] = []
    append = out.append
    began = time.perf_counter()
    for price, _dec, quantity, term_start, term_end, added in additions:
        append(
            prorate(
                price, quantity=quantity, period_start=term_start, period_end=term_end, start=added
            ).amount
        )
    return time.perf_counter() - began, out


def run_bare(additions: Sequence[Addition]) -> tuple[float, list[Decimal]]:
    cent = Decimal("0.01")
    out: list[Decimal] = []
    append = out.append
    began = time.perf_counter()
    for _price, dec, quantity, term_start, term_end, added in additions:
        part = term_end.toordinal() - added.toordinal()
        whole = term_end.toordinal() - term_start.toordinal()
        append((dec * quantity * part / whole).quantize(cent, ROUND_HALF_UP))
    return time.perf_counter() - began, out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="additions (1,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs (3)")
    args = parser.parse_args(argv)
    additions = synthetic_additions(args.n)
    gc.disable()  # time the arithmetic, not the collector's visits to a million results
    try:
        api_time = bare_time = float("inf")
        api_out: list[Money] = []
        bare_out: list[Decimal] = []
        for _ in range(max(1, args.repeat)):
            t, bare_out = run_bare(additions)
            bare_time = min(bare_time, t)
            t, api_out = run_api(additions)
            api_time = min(api_time, t)
    finally:
        gc.enable()
    mismatches = sum(a.amount != b for a, b in zip(api_out, bare_out, strict=True))
    api_rate = args.n / api_time
    bare_rate = args.n / bare_time
    print(f"python {platform.python_version()} on {platform.machine()}, n={args.n:,}")
    print(f"public API  prorate(): {api_rate:>12,.0f} decisions/s")
    print(f"bare loop   (floor):   {bare_rate:>12,.0f} decisions/s")
    print(f"ratio (bare / API):    {bare_rate / api_rate:>12.2f}x")
    print(f"results differing:     {mismatches:>12,}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
