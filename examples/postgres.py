"""The same engine on PostgreSQL: only the store URL changes.

    BILLING_CORE_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python examples/postgres.py

The first ``SqlStore`` on an empty database runs the schema migrations (Alembic, recorded in
``billing_core_alembic_version``); every later one finds them done. Several processes may share
the database: refunds lock the original transaction row (``SELECT ... FOR UPDATE``) and the
retry queue is claimed with ``FOR UPDATE SKIP LOCKED``. ``--schema NAME`` keeps this demo's
tables in a schema of their own (created if missing).
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta

from billing_core import BillingEngine, Customer, Money, Period
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock


def with_schema(url: str, schema: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    engine.dispose()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=os.environ.get("BILLING_CORE_POSTGRES_URL"))
    parser.add_argument("--schema", default=f"billing_demo_{uuid.uuid4().hex[:8]}")
    args = parser.parse_args()
    if not args.url:
        print("set BILLING_CORE_POSTGRES_URL or pass --url postgresql+psycopg://...")
        return 2
    clock = ManualClock(datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    engine = BillingEngine(
        store=with_schema(args.url, args.schema), clock=clock, gateway=SandboxGateway(clock=clock)
    )
    admin = Actor(id="ada", role="admin")
    engine.add_customer(Customer(id="c1", company="Acme Widgets"), actor=admin)
    sub = engine.add_subscription(
        "c1",
        term=Period.years(1),
        inventory={"dv": 1},
        unit_prices={"dv": Money("100.00", "USD")},
        idempotency_key="pg-1",
        actor=admin,
    )
    print(f"on {engine.store.name} ({args.schema}): {sub.explanation}")
    assert sub.charge is not None and sub.charge.transaction_id is not None
    clock.advance(timedelta(days=2))
    refund = engine.refund_transaction(
        sub.charge.transaction_id, amount=Money("25.00", "USD"), idempotency_key="pg-2", actor=admin
    )
    print(f"refund: {refund.explanation}")
    print(f"audit log: {len(engine.audit_log())} entries")
    engine.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
