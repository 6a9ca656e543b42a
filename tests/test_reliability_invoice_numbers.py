"""Gapless unique invoice numbers, and no line on two invoices, with many issuers at once.

2,000 customers, each with a subscription holding 2 pending lines. 20 worker processes
(``forkserver``), each with its own ``BillingEngine`` on one database, run
``issue_due_invoices`` at the same moment (a barrier), every one of them over every customer, as
a cron job started on 20 hosts would. Afterwards:

* exactly 2,000 invoices exist, one per customer, numbered INV-000001 .. INV-002000: every
  number once, no gap (the counter row is updated in each issuing transaction);
* every one of the 4,000 lines is on exactly one invoice, with its own customer, and none is
  pending; in the database, each line row names the invoice that holds it;
* no worker failed.

On a SQLite file and on PostgreSQL. The figures (time, invoices per second, how many each worker
issued) are printed with ``figure`` and quoted in docs/reliability.md.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from billing_core import Customer, InvoiceLine, Money, Period, Subscription
from billing_core.plugins.sql_schema import invoice_lines
from billing_core.plugins.sql_store import SqlStore
from billing_core.testing.workers import ProcessWorkers, issue_invoices_task

WORKERS = 20
CUSTOMERS = 2000
LINES = 2
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
Figure = Callable[[str], None]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    else:
        yield request.getfixturevalue("postgres_schema_url")


def _seed(store: SqlStore) -> None:
    with store.session() as s:
        for c in range(CUSTOMERS):
            cid = f"c{c:04d}"
            s.put_customer(Customer(id=cid, company=f"Customer {c}"))
            sub = Subscription(
                id=f"s{c:04d}",
                customer_id=cid,
                term=Period.months(1),
                start=date(2026, 11, 1),
                inventory={"dv": 1},
            )
            s.put_subscription(sub)
            lines = [
                InvoiceLine(
                    description=f"{cid}-line-{k}",
                    amount=Money(f"{c % 97 + k}.25", "USD"),
                    subscription_id=sub.id,
                )
                for k in range(LINES)
            ]
            s.add_invoice_lines(sub.id, lines)


def test_concurrent_issuers_give_gapless_unique_numbers_and_take_each_line_once(
    url: str, figure: Figure
) -> None:
    store = SqlStore(url)
    try:
        _seed(store)
        started = time.perf_counter()
        with ProcessWorkers(WORKERS, timeout=1800) as workers:
            answers = workers.run(issue_invoices_task, {"store": url, "now": NOW})
        elapsed = time.perf_counter() - started
        errors = [a for a in answers if a.get("outcome") != "done"]
        assert errors == [], errors[:3]
        assert all(a["skipped"] == [] for a in answers)
        numbers = [n for a in answers for n in a["numbers"]]
        expected = [f"INV-{n:06d}" for n in range(1, CUSTOMERS + 1)]
        assert sorted(numbers) == expected  # each number once, none missing

        with store.session() as s:
            stored = s.list_invoices()
            pending = s.pending_line_groups(up_to=date(2100, 1, 1))
        assert pending == []
        assert sorted(i.number or "" for i in stored) == expected
        assert Counter(i.customer_id for i in stored) == {f"c{c:04d}": 1 for c in range(CUSTOMERS)}
        on_invoices = Counter(line.description for i in stored for line in i.lines)
        assert len(on_invoices) == CUSTOMERS * LINES and set(on_invoices.values()) == {1}
        assert all(line.description.startswith(i.customer_id) for i in stored for line in i.lines)
        holder = {line.description: i.id for i in stored for line in i.lines}
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(invoice_lines.c.invoice_id, invoice_lines.c.data))
            for invoice_id, data in rows:
                assert holder[json.loads(data)["description"]] == invoice_id

        per_worker = sorted(len(a["numbers"]) for a in answers)
        figure(
            f"{WORKERS} processes issued {len(numbers)} invoices for {CUSTOMERS} customers "
            f"({CUSTOMERS * LINES} lines) in {elapsed:.1f} s ({len(numbers) / elapsed:.0f} "
            f"invoices/s): numbers INV-000001..INV-{CUSTOMERS:06d} each once, no gap, every "
            f"line on exactly one invoice; invoices per worker min {per_worker[0]}, "
            f"max {per_worker[-1]}"
        )
    finally:
        store.close()
