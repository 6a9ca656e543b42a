"""Benchmark: the cost of a charge on a customer's instruments, and of a fallback.

    .venv/bin/python benchmarks/collection.py             # 200 charges of each kind
    .venv/bin/python benchmarks/collection.py --n 50      # a quick run

Each charge is a whole engine call with store writes (milliseconds on SQLite), so ``--n`` is
capped at 300 (CI passes ``--n 20000`` to every benchmark: 20,000 SQLite charges would take half
an hour). The baseline, measured in the same run on the same store: a plain charge on a customer
with no instruments and no blocklist entries; the ratios say what the wallet, the blocklist
reads and a fallback cost on top of it.

On the memory store and a SQLite file, with 20 blocklist entries in force (every charge reads the
customer, its wallet and the blocklist before the gateway is called): the time of a charge paid
by the primary card (one attempt) and of one whose primary is declined and whose backup pays
(two attempts, two sales written ahead).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from billing_core import BillingEngine, Customer, Money, PaymentInstrument
from billing_core.plugins.manager import Plugins
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock

ADMIN = Actor(id="ada", role="admin")
AGENT = Actor(id="sam", role="support_agent")


CAP = 300


def baseline(url: str, n: int) -> float:
    """Seconds per plain charge: no instruments, no blocklist entries."""
    clock = ManualClock(datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
    gateway = SandboxGateway(clock=clock, settle_after=timedelta(days=1))
    plugins = Plugins(clock=clock, entry_points=False)
    engine = BillingEngine(store=url, clock=clock, gateway=gateway, plugins=plugins)
    try:
        engine.add_customer(Customer(id="c0", company="Plain"), actor=ADMIN)
        one = Money("1.00", "USD")
        start = time.perf_counter()
        for i in range(n):
            engine.charge("c0", one, idempotency_key=f"p{i}", actor=AGENT)
        return (time.perf_counter() - start) / n
    finally:
        engine.store.close()


def run(url: str, n: int) -> tuple[float, float]:
    clock = ManualClock(datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
    gateway = SandboxGateway(clock=clock, settle_after=timedelta(days=1))
    plugins = Plugins(clock=clock, entry_points=False)
    engine = BillingEngine(store=url, clock=clock, gateway=gateway, plugins=plugins)
    try:
        engine.add_customer(Customer(id="c1", company="Acme", email="ap@acme.example"), actor=ADMIN)
        engine.add_instrument("c1", PaymentInstrument(id="pi-1"), primary=True, actor=AGENT)
        engine.add_instrument("c1", PaymentInstrument(id="pi-2"), backup=True, actor=AGENT)
        for i in range(20):
            engine.add_blocklist_entry("ip", f"198.51.100.{i}", actor=ADMIN)
        one = Money("1.00", "USD")
        start = time.perf_counter()
        for i in range(n):
            engine.charge("c1", one, idempotency_key=f"a{i}", actor=AGENT, ip="203.0.113.9")
        primary = (time.perf_counter() - start) / n
        gateway.script("sale", ["decline", None] * n)
        start = time.perf_counter()
        for i in range(n):
            result = engine.charge("c1", one, idempotency_key=f"b{i}", actor=AGENT)
            assert result.attempts == 2 and result.instrument_id == "pi-2"
        fallback = (time.perf_counter() - start) / n
        return primary, fallback
    finally:
        engine.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    n = min(parser.parse_args().n, CAP)
    with tempfile.TemporaryDirectory() as tmp:
        for name, url, plain_url in (
            ("memory", "memory://", "memory://"),
            ("sqlite", f"sqlite:///{Path(tmp) / 'b.db'}", f"sqlite:///{Path(tmp) / 'p.db'}"),
        ):
            plain = baseline(plain_url, n)
            primary, fallback = run(url, n)
            print(
                f"{name}: plain charge {plain * 1000:.1f} ms (baseline); paid by the primary "
                f"{primary * 1000:.1f} ms ({primary / plain:.2f}x); primary declined, backup paid "
                f"{fallback * 1000:.1f} ms ({fallback / plain:.2f}x) (n={n}, 20 blocklist entries)"
            )


if __name__ == "__main__":
    main()
