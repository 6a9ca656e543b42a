"""The SQL store's tables, as SQLAlchemy Core ``Table`` objects (the shape the migrations create:
0001 the records, 0002 ``metered_closes``, 0003 an index on the idempotency keys, 0004
``wallets`` and ``blocklist`` (``sql_collection``), 0005 ``invoices``, ``invoice_counters``,
``credit_memos``, ``coupon_redemptions``, ``tax_profiles`` and the pending state of
``invoice_lines``, 0006 ``outbox``).

Every record is kept whole as its exact JSON form (``billing_core.serialization``) in a ``data``
text column: decimals keep their digits and trailing zeros, datetimes their offset and IANA zone.
Beside it sit the columns the store queries, orders or constrains on:

* ``seq``: an integer key in insertion order (an upsert keeps it), the order of every list;
* ids and foreign ids, states, domains, subscription ids (indexed where queried);
* ``*_utc`` instants in UTC (``UtcDateTime``) for range queries and claim order;
* on ``transactions``, the amount, refunded and reserved totals as exact integers at a per-row
  scale (``units_scale`` decimal places), so the database itself can CHECK
  ``refunded_units + reserved_units <= amount_units``.

``audit_log`` is append-only: a trigger rejects UPDATE and DELETE (on PostgreSQL also TRUNCATE).
``metered_closes`` has a unique key ``(subscription_id, metric_key, start_utc, end_utc)``
(``metric_key`` is ``""`` for every metric), so a period is closed once.
``outbox`` holds the engine's events until their listeners have them: ``sequence`` is its
integer key in insertion order, ``payload`` the event's JSON form (see ``sql_outbox``).

Also here, the database side of the store: ``make_engine`` (SQLite with ``BEGIN IMMEDIATE``, WAL
and a busy timeout; PostgreSQL through psycopg 3), ``upgrade`` (the Alembic migrations in
``migrations/``), the mapping of database errors to ``billing_core.errors``, and the JSON codec.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.pool import StaticPool

from ..errors import (
    BillingError,
    ConfigurationError,
    ConflictError,
    InvalidAmountError,
    InvalidTypeError,
    InvalidValueError,
    SchemaVersionError,
    StoreError,
    StoreUnavailableError,
)
from ..model import Transaction
from ..serialization import structure, unstructure

__all__ = [
    "AUDIT_TRIGGER_MESSAGE",
    "CHECK_REFUND_WITHIN_AMOUNT",
    "MAX_UNITS",
    "MIGRATIONS",
    "UtcDateTime",
    "audit_log",
    "certificates",
    "coupon_redemptions",
    "credit_memos",
    "customers",
    "decode",
    "encode",
    "idempotency",
    "invoice_counters",
    "invoice_lines",
    "invoices",
    "is_memory_sqlite",
    "make_engine",
    "metadata",
    "metered_closes",
    "outbox",
    "refund_queue",
    "subscriptions",
    "tax_profiles",
    "transaction_units",
    "transactions",
    "translate_errors",
    "upgrade",
    "usage_events",
]

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}
CHECK_REFUND_WITHIN_AMOUNT = "ck_transactions_refund_within_amount"
AUDIT_TRIGGER_MESSAGE = "audit_log is append-only"
MAX_UNITS = 2**63 - 1


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware datetime stored as UTC: ``timestamptz`` on PostgreSQL, naive-UTC text on SQLite
    (fixed-width, so text order is time order). Reads back as an aware UTC datetime."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _seq() -> sa.Column[int]:
    # INTEGER PRIMARY KEY on SQLite (the rowid), BIGSERIAL on PostgreSQL.
    return sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)


metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

customers = sa.Table(
    "customers",
    metadata,
    _seq(),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("reseller_id", sa.String, nullable=True),
    sa.Column("data", sa.Text, nullable=False),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    _seq(),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("customer_id", sa.String, nullable=False, index=True),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
)

certificates = sa.Table(
    "certificates",
    metadata,
    _seq(),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("domain", sa.String, nullable=False, index=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("customer_id", sa.String, nullable=True),
    sa.Column("data", sa.Text, nullable=False),
)

transactions = sa.Table(
    "transactions",
    metadata,
    _seq(),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("customer_id", sa.String, nullable=True, index=True),
    sa.Column("parent_id", sa.String, nullable=True, index=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("units_scale", sa.Integer, nullable=False),
    sa.Column("amount_units", sa.BigInteger, nullable=False),
    sa.Column("refunded_units", sa.BigInteger, nullable=False),
    sa.Column("reserved_units", sa.BigInteger, nullable=False),
    sa.Column("created_utc", UtcDateTime, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.CheckConstraint(
        "amount_units >= 0 AND refunded_units >= 0 AND reserved_units >= 0 AND units_scale >= 0",
        name="non_negative",
    ),
    sa.CheckConstraint(
        "refunded_units + reserved_units <= amount_units", name="refund_within_amount"
    ),
)

refund_queue = sa.Table(
    "refund_queue",
    metadata,
    _seq(),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("refund_transaction_id", sa.String, nullable=False),
    sa.Column("original_transaction_id", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("next_attempt_utc", UtcDateTime, nullable=True),
    sa.Column("claimed_by", sa.String, nullable=True),
    sa.Column("lease_until_utc", UtcDateTime, nullable=True),
    sa.Column("data", sa.Text, nullable=False),
    sa.Index("ix_refund_queue_state_next_attempt_utc", "state", "next_attempt_utc"),
)

usage_events = sa.Table(
    "usage_events",
    metadata,
    _seq(),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("subscription_id", sa.String, nullable=True),
    sa.Column("metric", sa.String, nullable=True),
    sa.Column("at_utc", UtcDateTime, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Index("ix_usage_events_subscription_id_at_utc", "subscription_id", "at_utc"),
)

invoice_lines = sa.Table(
    "invoice_lines",
    metadata,
    _seq(),
    sa.Column("subscription_id", sa.String, nullable=False, index=True),
    sa.Column("data", sa.Text, nullable=False),
    # migration 0005: pending until an invoice takes the line (invoice_id set once)
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("billed_on", sa.Date, nullable=True),
    sa.Column("invoice_id", sa.String, nullable=True, index=True),
)

invoices = sa.Table(
    "invoices",
    metadata,
    _seq(),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("customer_id", sa.String, nullable=False, index=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("number", sa.String, nullable=True, unique=True),
    sa.Column("data", sa.Text, nullable=False),
)

credit_memos = sa.Table(
    "credit_memos",
    metadata,
    _seq(),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("customer_id", sa.String, nullable=False, index=True),
    sa.Column("data", sa.Text, nullable=False),
)

coupon_redemptions = sa.Table(
    "coupon_redemptions",
    metadata,
    _seq(),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("customer_id", sa.String, nullable=False, index=True),
    sa.Column("coupon_id", sa.String, nullable=False, index=True),
    sa.Column("data", sa.Text, nullable=False),
)

tax_profiles = sa.Table(
    "tax_profiles",
    metadata,
    _seq(),
    sa.Column("customer_id", sa.String, nullable=False, unique=True),
    sa.Column("data", sa.Text, nullable=False),
)

invoice_counters = sa.Table(
    "invoice_counters",
    metadata,
    sa.Column("prefix", sa.String, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)

idempotency = sa.Table(
    "idempotency",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("operation", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("created_utc", UtcDateTime, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    # the keys still in progress, by operation (migration 0003): every new key looks them up
    sa.Index("ix_idempotency_state_operation", "state", "operation"),
)

metered_closes = sa.Table(
    "metered_closes",
    metadata,
    _seq(),
    sa.Column("subscription_id", sa.String, nullable=False),
    sa.Column("metric_key", sa.String, nullable=False),
    sa.Column("start_utc", UtcDateTime, nullable=False),
    sa.Column("end_utc", UtcDateTime, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.UniqueConstraint("subscription_id", "metric_key", "start_utc", "end_utc"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("at_utc", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("subject_id", sa.String, nullable=False, index=True),
    sa.Column("data", sa.Text, nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("sequence", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("delivered_at", UtcDateTime, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("claimed_by", sa.String, nullable=True),
    # the pending events, by when they are due (migration 0006)
    sa.Index("ix_outbox_delivered_at_next_attempt_at", "delivered_at", "next_attempt_at"),
)


def _units(value: Decimal, scale: int) -> int:
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: Money refuses NaN and infinities
    magnitude = int("".join(map(str, digits)) or "0") * int(10 ** (exponent + scale))
    return -magnitude if sign else magnitude


def transaction_units(txn: Transaction) -> dict[str, Any]:
    """The exact integer columns of a transaction: its three totals scaled by a common power of ten.

    ``19.99`` and ``0.005`` at scale 3 are ``19990`` and ``5``. The scale is the most decimal
    places any of the three carries, never less than 0.
    """
    amounts = (txn.amount.amount, txn.refunded.amount, txn.reserved.amount)
    scale = 0
    for a in amounts:
        exponent = a.as_tuple().exponent
        assert isinstance(exponent, int)
        scale = max(scale, -exponent)
    units = [_units(a, scale) for a in amounts]
    for name, u in zip(("amount", "refunded", "reserved"), units, strict=True):
        if abs(u) > MAX_UNITS:
            raise InvalidAmountError(
                f"has too many digits for the SQL store ({u} units at scale {scale} exceed 2**63)",
                field=f"transaction.{name}",
                value=getattr(txn, name),
            )
    return {
        "currency": txn.amount.currency,
        "units_scale": scale,
        "amount_units": units[0],
        "refunded_units": units[1],
        "reserved_units": units[2],
    }


MIGRATIONS = Path(__file__).with_name("migrations")
"""The Alembic script directory of the SQL store's schema."""

_MIGRATION_LOCK = 0x62696C6C696E67  # pg_advisory_xact_lock key: one migrator at a time
_BUSY_TIMEOUT_MS = 30_000
_RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}  # serialization, deadlock, lock not available


# -- engines and migrations ------------------------------------------------------------------
def is_memory_sqlite(url: sa.URL) -> bool:
    return url.get_backend_name() == "sqlite" and (url.database or ":memory:") == ":memory:"


def make_engine(url: str | sa.URL, *, pool_size: int | None = None) -> Engine:
    """An engine set up for the store: SQLite with ``BEGIN IMMEDIATE`` transactions, WAL and a
    busy timeout; PostgreSQL through psycopg 3 (a bare ``postgresql://`` URL means psycopg).
    ``pool_size`` caps a PostgreSQL pool at that many connections (no overflow)."""
    u = sa.make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    backend = u.get_backend_name()
    if backend == "postgresql":
        if pool_size is not None:
            return sa.create_engine(
                u, pool_pre_ping=True, pool_size=pool_size, max_overflow=0, pool_timeout=120
            )
        return sa.create_engine(u, pool_pre_ping=True)
    if backend != "sqlite":
        raise ConfigurationError(
            f"the SQL store supports sqlite and postgresql URLs, not {backend!r}",
            field="url",
            value=u.render_as_string(hide_password=True),
        )
    memory = is_memory_sqlite(u)
    engine = sa.create_engine(
        u,
        connect_args={"check_same_thread": False, "timeout": _BUSY_TIMEOUT_MS / 1000},
        **({"poolclass": StaticPool} if memory else {}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        if not memory:
            _set_wal(cursor)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _set_wal(cursor: Any) -> None:
    """Switch the file to WAL. Switching needs the database to itself, and SQLite answers
    "database is locked" at once (without its busy handler) while another connection works on a
    new file, so retry within the busy timeout; once the file is in WAL this is a no-op."""
    import sqlite3
    import time

    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    pause = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.25)


def upgrade(url: str | sa.URL | Engine, revision: str = "head") -> None:
    """Bring the store's schema in the database at ``url`` to ``revision`` (idempotent).

    Runs in one transaction; concurrent callers wait for each other (an advisory lock on
    PostgreSQL, the write lock on SQLite), so many processes may start at once.
    """
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        with translate_errors(), engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, revision)
            except CommandError as exc:
                if "Can't locate revision" not in str(exc):
                    raise
                raise SchemaVersionError(
                    f"the database's schema is at a revision this billing_core does not know "
                    f"({exc}); it was migrated by a newer billing_core: run that version, or "
                    "point the store at another database",
                    field="url",
                ) from exc
    finally:
        if engine is not url:
            engine.dispose()


# -- errors ----------------------------------------------------------------------------------
def _translate(exc: sa.exc.DBAPIError) -> BillingError:
    message = str(exc.orig)
    if CHECK_REFUND_WITHIN_AMOUNT in message:
        return InvalidAmountError(
            "refunded plus reserved must not exceed the amount (refused by the database)",
            field="transaction.reserved",
        )
    if isinstance(exc, sa.exc.IntegrityError):
        return ConflictError(f"the database refused a conflicting write: {message.strip()}")
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES or "database is locked" in message:
        return ConflictError(
            f"the database could not serialize this session ({message.strip()}); retry it"
        )
    if isinstance(exc, sa.exc.DataError):
        return InvalidValueError(
            f"the database refused a value ({message.strip()}): ids must be printable text, "
            "with no NUL byte"
        )
    lowered = message.lower()
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) or any(
        hint in lowered for hint in _UNAVAILABLE_HINTS
    ):
        return StoreUnavailableError(
            f"the database cannot be used ({message.strip()}): check that it is running and "
            "reachable, and that its file exists and is writable, then ask again with the same "
            "idempotency keys"
        )
    return StoreError(
        f"the database failed ({type(exc.orig).__name__}: {message.strip()}); nothing of this "
        "session was written: ask again with the same idempotency keys, and report it if it "
        "persists"
    )


_UNAVAILABLE_HINTS = ("readonly database", "unable to open", "no such table", "disk i/o error")


@contextmanager
def translate_errors() -> Iterator[None]:
    try:
        yield
    except sa.exc.DBAPIError as exc:
        raise _translate(exc) from exc


def encode(value: object, field: str) -> str:
    try:
        return json.dumps(unstructure(value), ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(
            f"holds a value with no JSON form ({exc})", field=field, value=value
        ) from None


def decode(text: str, cls: type[T]) -> T:
    return structure(json.loads(text), cls)
