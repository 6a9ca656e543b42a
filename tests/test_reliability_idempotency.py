"""Promise 3: one idempotency key submitted by 20 workers at the same moment runs once.

Every round, 20 workers (threads on SQLite; processes on SQLite and PostgreSQL) charge with the
same key at once (a barrier). Exactly one execution happens: one sale written, one gateway call;
every caller gets the stored result (the same one) or ``OperationInProgressError`` ("in
progress": ask again later), and a replay after the round returns the stored result.
50 rounds per backend in CI, 500 with ``BILLING_CORE_SOAK=1``.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billing_core import BillingEngine, Customer, Money
from billing_core.engine import ChargeOutcome
from billing_core.plugins.manager import Plugins
from billing_core.plugins.sql_store import SqlStore
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock
from billing_core.testing.shared_gateway import SharedGateway
from billing_core.testing.workers import AGENT, ProcessWorkers, ThreadWorkers, charge_task

SOAK = os.environ.get("BILLING_CORE_SOAK") == "1"
ROUNDS = 500 if SOAK else 50
WORKERS = 20
START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ADMIN = Actor(id="ada", role="admin")
Figure = Callable[[str], None]


@pytest.fixture(scope="module")
def processes() -> Iterator[ProcessWorkers]:
    with ProcessWorkers(WORKERS) as workers:
        yield workers


@pytest.fixture(params=["sqlite-threads", "sqlite-processes", "postgres-processes"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[str, str, ProcessWorkers | ThreadWorkers]:
    db, kind = str(request.param).split("-")
    if db == "sqlite":
        url = f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_schema_url")
    workers: ProcessWorkers | ThreadWorkers = (
        request.getfixturevalue("processes") if kind == "processes" else ThreadWorkers(WORKERS)
    )
    return str(request.param), url, workers


def test_one_key_many_workers_one_execution(
    backend: tuple[str, str, ProcessWorkers | ThreadWorkers], figure: Figure
) -> None:
    name, url, workers = backend
    clock = ManualClock(START)
    store = SqlStore(url)
    gateway = SharedGateway(store.engine, clock=clock, settle_after=timedelta(0))
    engine = BillingEngine(
        store=store, gateway=gateway, clock=clock, plugins=Plugins(clock=clock, entry_points=False)
    )
    engine.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
    tally: Counter[str] = Counter()
    started = time.perf_counter()
    try:
        for r in range(ROUNDS):
            key = f"same-key-{r}"
            sales_before = gateway.calls["sale"]
            answers = workers.run(
                charge_task,
                {
                    "store": url,
                    "customer_id": "c1",
                    "amount": "12.34",
                    "currency": "USD",
                    "key": key,
                    "now": START + timedelta(minutes=r),
                },
            )
            results = [a for a in answers if a["outcome"] != "error"]
            busy = [a for a in answers if a["outcome"] == "error"]
            for a in busy:
                assert a["error"] == "OperationInProgressError", a
                assert "in progress" in a["message"]
            assert results, f"round {r}: nobody got the result"
            distinct = {(a["outcome"], a["transaction_id"], a["explanation"]) for a in results}
            assert len(distinct) == 1, distinct
            [(outcome, transaction_id, _)] = distinct
            assert outcome == ChargeOutcome.CHARGED.value
            # one execution: one sale written, one gateway call
            sales = [
                t
                for t in engine.transactions(customer_id="c1")
                if t.idempotency_key == f"{key}:sale"
            ]
            assert [t.id for t in sales] == [transaction_id]
            assert gateway.calls["sale"] - sales_before == 1
            replay = engine.charge("c1", Money("12.34", "USD"), idempotency_key=key, actor=AGENT)
            assert replay.transaction_id == transaction_id
            assert gateway.calls["sale"] - sales_before == 1
            tally["result"] += len(results)
            tally["in_progress"] += len(busy)
    finally:
        gateway.close()
        store.close()
    elapsed = time.perf_counter() - started
    figure(
        f"{name}: {ROUNDS} rounds x {WORKERS} workers, one key each round: 1 execution and 1 "
        f"gateway sale per round; {tally['result']} callers got the stored result, "
        f"{tally['in_progress']} got OperationInProgressError; {elapsed:.1f} s"
    )
