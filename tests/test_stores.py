"""The built-in stores: the store contract on each, then what only the SQL store promises.

* ``StoreContract`` runs against ``MemoryStore``, ``SqlStore`` on a SQLite file, on an in-memory
  SQLite database, and on PostgreSQL (``BILLING_CORE_TEST_POSTGRES_URL``; skipped with a reason
  when unset). Each PostgreSQL test gets its own fresh schema (``search_path``), dropped after.
* SQL only: migrations on an empty database, idempotent and race-free; the migrated schema
  equals ``sql_schema.metadata``; the audit-log triggers and the refund CHECK reject raw SQL;
  the exact columns; two processes claiming from one database never claim the same entry.
"""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from billing_core import ConfigurationError, InvalidAmountError, Money, Transaction
from billing_core.plugins import sql_store
from billing_core.plugins.memory_store import MemoryStore
from billing_core.plugins.protocols import Store
from billing_core.plugins.records import AuditEntry, QueueEntry, QueueState
from billing_core.plugins.sql_schema import metadata
from billing_core.plugins.sql_store import SqlStore, upgrade
from billing_core.testing.store_contract import StoreContract

TABLES = {
    "customers",
    "subscriptions",
    "certificates",
    "transactions",
    "refund_queue",
    "usage_events",
    "invoice_lines",
    "idempotency",
    "wallets",
    "blocklist",
    "audit_log",
    "metered_closes",
    "invoices",
    "invoice_counters",
    "credit_memos",
    "coupon_redemptions",
    "tax_profiles",
    "outbox",
}
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def _typed(store: MemoryStore | SqlStore) -> Store:
    return store  # mypy checks both built-ins against the Store protocol here


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose ``search_path`` is a new, empty schema; the schema is dropped afterwards."""
    schema = f"bc_test_{uuid.uuid4().hex[:12]}"
    admin = sql_store.make_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.make_url(sql_store.make_engine(postgres_url).url).update_query_dict(
        {"options": f"-csearch_path={schema}"}
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


# -- the contract on every built-in store ----------------------------------------------------
class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Store:
        return _typed(MemoryStore())


class TestSqliteFileStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        with SqlStore(f"sqlite:///{tmp_path / 'billing.sqlite3'}") as store:
            yield _typed(store)


class TestSqliteMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        with SqlStore("sqlite://") as store:
            yield store


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, pg_schema_url: str) -> Iterator[Store]:
        with SqlStore(pg_schema_url) as store:
            yield store


# -- migrations -----------------------------------------------------------------------------
def _head() -> str:
    """The newest migration (not hardcoded: the lead renumbers migrations when merging)."""
    scripts = ScriptDirectory(str(sql_store.MIGRATIONS))
    head = scripts.get_current_head()
    assert head is not None
    return head


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_migrations_create_the_schema_and_are_idempotent(sql_url: str) -> None:
    engine = sql_store.make_engine(sql_url)
    try:
        assert _tables(engine) == set()
        upgrade(sql_url)
        assert _tables(engine) == TABLES | {"billing_core_alembic_version"}
        upgrade(sql_url)  # again: nothing to do
        with SqlStore(sql_url) as store, store.session() as s:  # create=True: nothing to do either
            s.append_audit(AuditEntry(at=T0, actor="a", action="migrated", subject_id="db"))
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SELECT version_num FROM billing_core_alembic_version")
            assert version.scalars().all() == [_head()]
            assert (
                MigrationContext.configure(conn).get_current_revision() is None
            )  # not alembic_version
    finally:
        engine.dispose()


def test_a_0001_database_upgrades_to_the_latest_and_back(sql_url: str) -> None:
    """Migration 0002 adds ``metered_closes`` to a database made by 0001, keeping its rows;
    its downgrade drops the table again."""
    upgrade(sql_url, "0001")
    with SqlStore(sql_url, create=False) as store:
        assert "metered_closes" not in _tables(store.engine)
        with store.session() as s:
            s.insert_transaction(Transaction(id="t-1", amount=Money("5.00", "USD"), created_at=T0))
    with SqlStore(sql_url) as store:  # create=True: 0001 -> ... -> head
        assert _tables(store.engine) == TABLES | {"billing_core_alembic_version"}
        indexes = sa.inspect(store.engine).get_indexes("idempotency")
        assert ["state", "operation"] in [i["column_names"] for i in indexes]  # 0003
        with store.session() as s:
            assert s.get_transaction("t-1") is not None
    from alembic import command
    from alembic.config import Config

    engine = sql_store.make_engine(sql_url)
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(sql_store.MIGRATIONS))
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
        assert "metered_closes" not in _tables(engine)
    finally:
        engine.dispose()


def test_create_false_leaves_the_database_alone(sql_url: str) -> None:
    with SqlStore(sql_url, create=False) as store:
        assert _tables(store.engine) == set()


def test_concurrent_first_upgrades_do_not_collide(sql_url: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade(sql_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with SqlStore(sql_url, create=False) as store:
        assert _tables(store.engine) >= TABLES


def test_migrated_schema_matches_the_metadata(sql_url: str) -> None:
    with SqlStore(sql_url) as store, store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = [d for d in compare_metadata(context, metadata) if "alembic_version" not in str(d)]
        assert diff == []


def test_unsupported_database_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        SqlStore("mysql://user:secret@db/billing")
    assert "secret" not in str(info.value)


# -- constraints inside the database ------------------------------------------------------------
def test_audit_log_rejects_update_and_delete(sql_url: str) -> None:
    with SqlStore(sql_url) as store:
        with store.session() as s:
            s.append_audit(AuditEntry(at=T0, actor="agent", action="refund", subject_id="t-1"))
        statements = ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"]
        if store.dialect == "postgresql":
            statements.append("TRUNCATE audit_log")
        for statement in statements:
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as c:
                c.exec_driver_sql(statement)
        with store.session() as s:
            assert [e.actor for e in s.audit_log()] == ["agent"]


def _txn(tid: str, amount: str, **kw: Any) -> Transaction:
    kw.setdefault("created_at", T0)
    return Transaction(id=tid, amount=Money(amount, "USD"), **kw)


def test_check_constraint_rejects_an_over_refund_written_by_raw_sql(sql_url: str) -> None:
    with SqlStore(sql_url) as store:
        with store.session() as s:
            s.insert_transaction(_txn("t-1", "10.00", refunded=Money("6.00", "USD")))
        raw = "UPDATE transactions SET reserved_units = 401 WHERE id = 't-1'"
        refused = pytest.raises(sa.exc.IntegrityError, match="refund_within_amount")
        with refused, store.engine.begin() as conn:
            conn.exec_driver_sql(raw)
        with store.engine.begin() as conn:  # up to the amount is fine
            conn.exec_driver_sql(raw.replace("401", "400"))


def test_check_constraint_violation_maps_to_invalid_amount(
    sql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SqlStore(sql_url) as store:
        with store.session() as s:
            s.insert_transaction(_txn("t-1", "10.00"))
        monkeypatch.setattr(sql_store, "check_transaction", lambda txn, field="": txn)
        forged = _txn("t-1", "10.00")
        object.__setattr__(forged, "reserved", Money("10.01", "USD"))
        with pytest.raises(InvalidAmountError, match="reserved"), store.session() as s:
            s.update_transaction(forged)


def test_exact_columns(sql_url: str) -> None:
    txn = _txn(
        "t-1",
        "19.990",
        refunded=Money("1.5", "USD"),
        reserved=Money("0.005", "USD"),
        created_at=datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Berlin")),
    )
    with SqlStore(sql_url) as store:
        with store.session() as s:
            s.insert_transaction(txn)
        with store.engine.connect() as conn:
            row = conn.execute(sa.select(metadata.tables["transactions"])).one()._mapping
            created = conn.execute(
                sa.select(metadata.tables["transactions"].c.created_utc)
            ).scalar_one()
        assert (row["units_scale"], row["amount_units"]) == (3, 19990)
        assert (row["refunded_units"], row["reserved_units"]) == (1500, 5)
        assert row["currency"] == "USD"
        assert '"amount":{"amount":"19.990","currency":"USD"}' in row["data"]
        assert "+02:00[Europe/Berlin]" in row["data"]
        assert created == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


# -- several processes on one database --------------------------------------------------------
def _claim_in_process(url: str, worker: str, barrier: Any, results: Any) -> None:
    claimed: list[str] = []
    with SqlStore(url) as store:
        barrier.wait(60)
        empty_rounds = 0
        while empty_rounds < 3:
            with store.session() as s:
                got = s.claim_due(now=T0, worker=worker, lease_seconds=3600, limit=2)
            claimed.extend(e.id for e in got)
            empty_rounds = 0 if got else empty_rounds + 1
    results.put((worker, claimed))


def test_two_processes_never_claim_the_same_entry(sql_url: str) -> None:
    count = 40
    with SqlStore(sql_url) as store, store.session() as s:
        for i in range(count):
            s.put_queue_entry(
                QueueEntry(
                    id=f"q-{i:02}",
                    refund_transaction_id=f"r-{i}",
                    original_transaction_id="t-1",
                    amount=Money("1.00", "USD"),
                    idempotency_key=f"k-{i}",
                    created_at=T0,
                    next_attempt_at=T0 - timedelta(minutes=i),
                )
            )
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_claim_in_process, args=(sql_url, f"p{i}", barrier, results))
        for i in range(2)
    ]
    for p in workers:
        p.start()
    claims = dict(results.get(timeout=120) for _ in workers)
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    every = claims["p0"] + claims["p1"]
    assert len(every) == len(set(every)) == count
    with SqlStore(sql_url) as store, store.session() as s:
        owners = {e.id: e.claimed_by for e in s.list_queue()}
    for worker, ids in claims.items():
        assert all(owners[i] == worker for i in ids)


def test_claimed_entries_round_trip_exactly(sql_url: str) -> None:
    entry = QueueEntry(
        id="q-1",
        refund_transaction_id="r-1",
        original_transaction_id="t-1",
        amount=Money("1.000", "USD"),
        idempotency_key="k",
        created_at=T0,
    )
    with SqlStore(sql_url) as store:
        with store.session() as s:
            s.put_queue_entry(entry)
            (got,) = s.claim_due(now=T0, worker="w", lease_seconds=60, limit=5)
        with store.session() as s:
            stored = s.get_queue_entry("q-1")
        assert (
            stored
            == got
            == attrs.evolve(
                entry,
                state=QueueState.CLAIMED,
                claimed_by="w",
                lease_until=T0 + timedelta(seconds=60),
                fence=1,
            )
        )
