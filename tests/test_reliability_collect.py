"""Many collectors at once charge each due invoice exactly once (issue 14).

1,000 open invoices, due today, of 100 customers. 50 worker processes on PostgreSQL (8 on a
SQLite file), each with its own ``BillingEngine`` on a pool of one connection and a
``SharedGateway`` whose ledger lives in the same database, run ``collect_due`` at the same
moment (a barrier), every one of them over every invoice, as a cron job started on 50 hosts
would. Afterwards:

* the gateway's ledger holds exactly one sale per invoice, of its amount, under the key
  ``collect:<invoice id>:1:sale``: nothing charged twice, nothing left uncharged;
* every invoice is ``paid``, its ``amount_paid`` its amount, no payment in flight;
* every invoice was collected by exactly one worker; no worker failed.

The figures (time, invoices per second, how many each worker collected) are printed with
``figure`` and quoted in docs/reliability.md.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from billing_core import Customer, Invoice, InvoiceStatus, InvoiceTotals, Money
from billing_core.plugins.sql_store import SqlStore
from billing_core.testing.clock import ManualClock
from billing_core.testing.shared_gateway import SharedGateway
from billing_core.testing.workers import ProcessWorkers, collect_task

CUSTOMERS = 100
PER_CUSTOMER = 10
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
Figure = Callable[[str], None]


@pytest.fixture(params=[("sqlite", 8), ("postgres", 50)], ids=["sqlite", "postgres"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, int]]:
    kind, workers = request.param
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'billing.sqlite3'}", workers
    else:
        yield request.getfixturevalue("postgres_schema_url"), workers


def _amount(n: int) -> Money:
    return Money(f"{n % 89 + 10}.{n % 100:02d}", "USD")


def _seed(store: SqlStore) -> dict[str, Money]:
    amounts: dict[str, Money] = {}
    with store.session() as s:
        for c in range(CUSTOMERS):
            cid = f"c{c:03d}"
            s.put_customer(Customer(id=cid, company=f"Customer {c}"))
            for k in range(PER_CUSTOMER):
                n = c * PER_CUSTOMER + k
                amount = _amount(n)
                zero = Money.zero("USD")
                totals = InvoiceTotals(
                    subtotal=amount,
                    discount=zero,
                    tax=zero,
                    total=amount,
                    credit_applied=zero,
                    amount_due=amount,
                )
                invoice = Invoice(
                    id=f"inv-{n:04d}",
                    customer_id=cid,
                    currency="USD",
                    status=InvoiceStatus.OPEN,
                    number=f"INV-{n + 1:06d}",
                    issued_on=date(2026, 10, 22),
                    due_on=date(2026, 11, 21),
                    totals=totals,
                    created_at=NOW,
                )
                s.insert_invoice(invoice)
                amounts[invoice.id] = amount
    return amounts


def test_concurrent_collectors_charge_each_invoice_once(
    setup: tuple[str, int], figure: Figure
) -> None:
    url, n_workers = setup
    store = SqlStore(url)
    gateway = SharedGateway(store.engine, clock=ManualClock(NOW))
    try:
        amounts = _seed(store)
        started = time.perf_counter()
        with ProcessWorkers(n_workers, timeout=1800) as workers:
            answers = workers.run(collect_task, {"store": url, "now": NOW, "pool_size": 1})
        elapsed = time.perf_counter() - started
        errors = [a for a in answers if a.get("outcome") != "done"]
        assert errors == [], errors[:3]
        by_worker = [a["collected"] for a in answers]
        collected = Counter(i for ids in by_worker for i in ids)
        assert set(collected) == set(amounts) and set(collected.values()) == {1}
        other = Counter(outcome for a in answers for _, outcome in a["others"])
        assert set(other) <= {"denied"}, other  # nothing declined, failed or unknown

        sales = [e for e in gateway.ledger() if e.operation == "sale"]
        assert len(sales) == len(amounts)  # exactly one sale per invoice
        charged = {e.idempotency_key: e.amount for e in sales}
        assert charged == {f"collect:{i}:1:sale": a for i, a in amounts.items()}

        with store.session() as s:
            stored = {i.id: i for i in s.list_invoices()}
        assert all(i.status is InvoiceStatus.PAID for i in stored.values())
        assert all(i.amount_paid == amounts[i.id] for i in stored.values())
        assert not any(i.payments_in_flight for i in stored.values())

        per_worker = sorted(len(ids) for ids in by_worker)
        slowest = max(a["seconds"] for a in answers)
        figure(
            f"{store.dialect}: {n_workers} processes ran collect_due over {len(amounts)} due "
            f"invoices at once in {elapsed:.1f} s (slowest run {slowest:.1f} s, "
            f"{len(amounts) / elapsed:.0f} invoices/s): {len(sales)} sales, one per invoice, "
            f"none twice; invoices collected per worker min {per_worker[0]}, "
            f"max {per_worker[-1]}"
        )
    finally:
        gateway.close()
        store.close()
