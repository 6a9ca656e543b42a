"""``SqlStore``: the SQL store on SQLAlchemy Core, one code path for SQLite and PostgreSQL.

    store = SqlStore("sqlite:///billing.sqlite3")                      # the embedded default
    store = SqlStore("postgresql+psycopg://app@db.example/billing")    # a server, same code

* **Schema** (``sql_schema``, which also makes the engines and runs the migrations): each
  record whole, as its exact JSON form, plus the columns the store queries on. ``SqlStore(url)``
  brings the schema up to date with Alembic (``create=False`` leaves it alone); ``upgrade(url)``
  (re-exported here) does the same on its own.
* **Sessions.** ``with store.session() as s:`` is one database transaction: it commits when the
  block exits normally and rolls back when it raises. A session opened inside another one on
  the same thread is a ``SAVEPOINT``: its writes join the outer transaction, or are undone alone.
* **Locking.** On PostgreSQL (READ COMMITTED) a ``lock=True`` read is ``SELECT ... FOR UPDATE``
  and ``claim_due`` picks rows with ``FOR UPDATE SKIP LOCKED``. On SQLite every session is a
  ``BEGIN IMMEDIATE`` write transaction (WAL journal for files, 30 s busy timeout), so sessions
  serialize and ``claim_due`` is one conditional ``UPDATE``.
* **Constraints in the database**: a CHECK that refunded plus reserved never exceeds the amount
  (checked in Python first, with a message naming the field), unique ids and idempotency keys,
  insert-or-ignore for usage events, an append-only audit log (triggers reject UPDATE/DELETE).
* **Errors.** A duplicate id or key raises ``ConflictError``, the CHECK ``InvalidAmountError``;
  a deadlock, serialization failure or lock timeout ``ConflictError`` (retry the whole session).
* **Threads and processes.** One ``SqlStore`` may serve many threads (each session uses its own
  pooled connection). Each process makes its own ``SqlStore`` (never share one across ``fork``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import datetime, timedelta
from typing import Any, TypeVar

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, Engine

from ..errors import ConflictError, NotFoundError
from ..model import (
    Certificate,
    Customer,
    Subscription,
    SubscriptionState,
    Transaction,
    TransactionStatus,
    UsageEvent,
)
from ._store_common import (
    check_audit_entry,
    check_claim,
    check_instance,
    check_metered_close_key,
    check_sequence,
    check_transaction,
    check_usage_range,
    claimed,
    due_order_key,
    metered_close_conflict,
    metered_close_key,
    state_set,
)
from .records import (
    AuditEntry,
    IdempotencyRecord,
    IdempotencyState,
    MeteredClose,
    QueueEntry,
    QueueState,
)
from .sql_collection import CollectionSessionMixin
from .sql_invoices import SqlInvoiceTables
from .sql_outbox import SqlOutbox
from .sql_schema import (
    MIGRATIONS,
    audit_log,
    certificates,
    customers,
    decode,
    encode,
    idempotency,
    is_memory_sqlite,
    make_engine,
    metered_closes,
    refund_queue,
    subscriptions,
    transaction_units,
    transactions,
    translate_errors,
    upgrade,
    usage_events,
)

__all__ = ["MIGRATIONS", "SqlStore", "make_engine", "upgrade"]

T = TypeVar("T")

_CHUNK = 500  # rows per multi-row INSERT (SQLite allows 32766 bound parameters)
_CLOSE_KEY = ("subscription_id", "metric_key", "start_utc", "end_utc")  # metered_closes unique


# -- the session -----------------------------------------------------------------------------
class _SqlSession(CollectionSessionMixin, SqlInvoiceTables, SqlOutbox):
    """One unit of work on a ``SqlStore``: a transaction (or a savepoint) on one connection
    (wallets and blocklists: ``sql_collection``; invoice tables: ``sql_invoices``; the event
    outbox: ``sql_outbox``)."""

    def __init__(self, store: SqlStore, conn: Connection) -> None:
        self._conn = conn
        self._pg = store.dialect == "postgresql"
        self._open = True

    # -- plumbing -----------------------------------------------------------------------------
    def _exec(self, stmt: sa.Executable, params: Any = None) -> CursorResult[*tuple[Any, ...]]:
        if not self._open:
            raise RuntimeError("this store session has ended; open a new one with store.session()")
        with translate_errors():
            return self._conn.execute(stmt, params)

    def _insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        return postgresql.insert(table) if self._pg else sqlite.insert(table)

    def _get(self, table: sa.Table, key: str, value: str, cls: type[T], lock: bool) -> T | None:
        stmt = sa.select(table.c.data).where(table.c[key] == value)
        if lock:
            stmt = stmt.with_for_update()  # SQLite: the session already holds the write lock
        text = self._exec(stmt).scalar_one_or_none()
        return None if text is None else decode(text, cls)

    def _upsert(self, table: sa.Table, key: str, values: dict[str, Any]) -> None:
        ins = self._insert(table).values(values)
        update = {name: ins.excluded[name] for name in values if name != key}
        self._exec(ins.on_conflict_do_update(index_elements=[table.c[key]], set_=update))

    def _insert_new(self, table: sa.Table, key: str, values: dict[str, Any]) -> bool:
        stmt = (
            self._insert(table)
            .values(values)
            .on_conflict_do_nothing(index_elements=[key])
            .returning(table.c[key])
        )
        return self._exec(stmt).first() is not None

    def _list(self, table: sa.Table, cls: type[T], *where: Any) -> list[T]:
        rows = self._exec(sa.select(table.c.data).where(*where).order_by(table.c.seq)).scalars()
        return [decode(text, cls) for text in rows]

    # -- customers ----------------------------------------------------------------------------
    def get_customer(self, customer_id: str) -> Customer | None:
        return self._get(customers, "id", customer_id, Customer, False)

    def put_customer(self, customer: Customer) -> None:
        check_instance(customer, Customer, "customer")
        data = encode(customer, "customer")
        self._upsert(
            customers, "id", {"id": customer.id, "reseller_id": customer.reseller_id, "data": data}
        )

    def insert_customer(self, customer: Customer) -> None:
        check_instance(customer, Customer, "customer")
        values = {"id": customer.id, "reseller_id": customer.reseller_id}
        if not self._insert_new(customers, "id", {**values, "data": encode(customer, "customer")}):
            raise ConflictError(
                f"a customer with id {customer.id!r} already exists",
                field="customer.id",
                value=customer.id,
            )

    # -- subscriptions ------------------------------------------------------------------------
    def get_subscription(self, subscription_id: str, *, lock: bool = False) -> Subscription | None:
        return self._get(subscriptions, "id", subscription_id, Subscription, lock)

    def put_subscription(self, subscription: Subscription) -> None:
        check_instance(subscription, Subscription, "subscription")
        values = {
            "id": subscription.id,
            "customer_id": subscription.customer_id,
            "state": subscription.state.value,
            "data": encode(subscription, "subscription"),
        }
        self._upsert(subscriptions, "id", values)

    def list_subscriptions(
        self,
        *,
        customer_id: str | None = None,
        states: Iterable[SubscriptionState] | None = None,
    ) -> list[Subscription]:
        wanted = state_set(states, SubscriptionState, "states")
        where = []
        if customer_id is not None:
            where.append(subscriptions.c.customer_id == customer_id)
        if wanted is not None:
            where.append(subscriptions.c.state.in_([s.value for s in wanted]))
        return self._list(subscriptions, Subscription, *where)

    # -- certificates -------------------------------------------------------------------------
    def get_certificate(self, certificate_id: str) -> Certificate | None:
        return self._get(certificates, "id", certificate_id, Certificate, False)

    def put_certificate(self, certificate: Certificate) -> None:
        check_instance(certificate, Certificate, "certificate")
        values = {
            "id": certificate.id,
            "domain": certificate.domain,
            "status": certificate.status.value,
            "customer_id": certificate.customer_id,
            "data": encode(certificate, "certificate"),
        }
        self._upsert(certificates, "id", values)

    def certificates_for_domain(self, domain: str) -> list[Certificate]:
        return self._list(certificates, Certificate, certificates.c.domain == domain)

    # -- transactions -------------------------------------------------------------------------
    @staticmethod
    def _transaction_values(txn: Transaction) -> dict[str, Any]:
        check_transaction(txn)
        return {
            "id": txn.id,
            "customer_id": txn.customer_id,
            "parent_id": txn.parent_id,
            "status": txn.status.value,
            "created_utc": txn.created_at,
            **transaction_units(txn),
            "data": encode(txn, "transaction"),
        }

    def get_transaction(self, transaction_id: str, *, lock: bool = False) -> Transaction | None:
        return self._get(transactions, "id", transaction_id, Transaction, lock)

    def insert_transaction(self, transaction: Transaction) -> None:
        if not self._insert_new(transactions, "id", self._transaction_values(transaction)):
            raise ConflictError(
                f"a transaction with id {transaction.id!r} already exists",
                field="transaction.id",
                value=transaction.id,
            )

    def update_transaction(self, transaction: Transaction) -> None:
        values = self._transaction_values(transaction)
        stmt = sa.update(transactions).where(transactions.c.id == transaction.id).values(values)
        if self._exec(stmt).rowcount == 0:
            raise NotFoundError(
                f"no transaction with id {transaction.id!r}",
                field="transaction.id",
                value=transaction.id,
            )

    def list_transactions(
        self,
        *,
        customer_id: str | None = None,
        parent_id: str | None = None,
        statuses: Iterable[TransactionStatus] | None = None,
    ) -> list[Transaction]:
        wanted = state_set(statuses, TransactionStatus, "statuses")
        where = []
        if customer_id is not None:
            where.append(transactions.c.customer_id == customer_id)
        if parent_id is not None:
            where.append(transactions.c.parent_id == parent_id)
        if wanted is not None:
            where.append(transactions.c.status.in_([s.value for s in wanted]))
        return self._list(transactions, Transaction, *where)

    # -- refund retry queue -------------------------------------------------------------------
    def put_queue_entry(self, entry: QueueEntry) -> None:
        check_instance(entry, QueueEntry, "entry")
        values = {
            "id": entry.id,
            "refund_transaction_id": entry.refund_transaction_id,
            "original_transaction_id": entry.original_transaction_id,
            "state": entry.state.value,
            "next_attempt_utc": entry.next_attempt_at,
            "claimed_by": entry.claimed_by,
            "lease_until_utc": entry.lease_until,
            "data": encode(entry, "entry"),
        }
        self._upsert(refund_queue, "id", values)

    def get_queue_entry(self, entry_id: str, *, lock: bool = False) -> QueueEntry | None:
        return self._get(refund_queue, "id", entry_id, QueueEntry, lock)

    def list_queue(self, *, states: Iterable[QueueState] | None = None) -> list[QueueEntry]:
        wanted = state_set(states, QueueState, "states")
        where = [] if wanted is None else [refund_queue.c.state.in_([s.value for s in wanted])]
        return self._list(refund_queue, QueueEntry, *where)

    def claim_due(
        self, *, now: datetime, worker: str, lease_seconds: int, limit: int
    ) -> list[QueueEntry]:
        check_claim(now, worker, lease_seconds, limit)
        if limit == 0:
            return []
        q = refund_queue
        due = sa.or_(
            sa.and_(
                q.c.state == QueueState.QUEUED.value,
                sa.or_(q.c.next_attempt_utc.is_(None), q.c.next_attempt_utc <= now),
            ),
            sa.and_(
                q.c.state == QueueState.CLAIMED.value,
                sa.or_(q.c.lease_until_utc.is_(None), q.c.lease_until_utc <= now),
            ),
        )
        pick = (
            sa.select(q.c.seq)
            .where(due)
            .order_by(q.c.next_attempt_utc.asc().nulls_first(), q.c.seq)
            .limit(limit)
        )
        if self._pg:  # lock the picks, skipping rows another worker is claiming right now
            seqs = list(self._exec(pick.with_for_update(skip_locked=True)).scalars())
            if not seqs:
                return []
            chosen = q.c.seq.in_(seqs)
        else:  # the session holds SQLite's write lock: one conditional UPDATE is atomic
            chosen = q.c.seq.in_(pick)
        claim = (
            sa.update(q)
            .where(chosen, due)
            .values(
                state=QueueState.CLAIMED.value,
                claimed_by=worker,
                lease_until_utc=now + timedelta(seconds=lease_seconds),
            )
            .returning(q.c.seq, q.c.data)
        )
        rows = self._exec(claim).all()
        if not rows:
            return []
        result = [
            (
                seq,
                claimed(
                    decode(data, QueueEntry), now=now, worker=worker, lease_seconds=lease_seconds
                ),
            )
            for seq, data in rows
        ]
        self._exec(
            sa.update(q)
            .where(q.c.seq == sa.bindparam("b_seq"))
            .values(data=sa.bindparam("b_data")),
            [{"b_seq": seq, "b_data": encode(entry, "entry")} for seq, entry in result],
        )
        result.sort(key=lambda pair: due_order_key(pair[1], pair[0]))
        return [entry for _, entry in result]

    # -- usage --------------------------------------------------------------------------------
    def add_usage_events(self, events: Sequence[UsageEvent]) -> int:
        check_sequence(events, UsageEvent, "events")
        batch: dict[str, dict[str, Any]] = {}
        for i, event_ in enumerate(events):
            if event_.id not in batch:
                batch[event_.id] = {
                    "id": event_.id,
                    "subscription_id": event_.subscription_id,
                    "metric": event_.metric,
                    "at_utc": event_.at,
                    "data": encode(event_, f"events[{i}]"),
                }
        rows = list(batch.values())
        added = 0
        for start in range(0, len(rows), _CHUNK):
            stmt = (
                self._insert(usage_events)
                .values(rows[start : start + _CHUNK])
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(usage_events.c.id)
            )
            added += len(self._exec(stmt).all())
        return added

    def usage_events(
        self, *, subscription_id: str, start: datetime, end: datetime, metric: str | None = None
    ) -> Iterator[UsageEvent]:
        check_usage_range(start, end)
        u = usage_events
        stmt = sa.select(u.c.data).where(
            u.c.subscription_id == subscription_id, u.c.at_utc >= start, u.c.at_utc < end
        )
        if metric is not None:
            stmt = stmt.where(u.c.metric == metric)
        rows = self._exec(stmt.order_by(u.c.at_utc, u.c.seq)).scalars().all()
        return iter([decode(text, UsageEvent) for text in rows])

    # -- metered periods closed ---------------------------------------------------------------
    def insert_metered_close(self, record: MeteredClose) -> None:
        key = dict(zip(_CLOSE_KEY, metered_close_key(record), strict=True))
        stmt = (
            self._insert(metered_closes)
            .values({**key, "data": encode(record, "record")})
            .on_conflict_do_nothing(index_elements=list(_CLOSE_KEY))
            .returning(metered_closes.c.seq)
        )
        if self._exec(stmt).first() is None:  # another session's row won (no abort)
            raise metered_close_conflict(record)

    def get_metered_close(
        self, *, subscription_id: str, metric: str | None, start: datetime, end: datetime
    ) -> MeteredClose | None:
        key = check_metered_close_key(subscription_id, metric, start, end)
        match = (metered_closes.c[c] == v for c, v in zip(_CLOSE_KEY, key, strict=True))
        text = self._exec(sa.select(metered_closes.c.data).where(*match)).scalar_one_or_none()
        return None if text is None else decode(text, MeteredClose)

    # -- idempotency --------------------------------------------------------------------------
    @staticmethod
    def _idempotency_values(record: IdempotencyRecord) -> dict[str, Any]:
        check_instance(record, IdempotencyRecord, "record")
        return {
            "key": record.key,
            "operation": record.operation,
            "state": record.state.value,
            "created_utc": record.created_at,
            "data": encode(record, "record"),
        }

    def get_idempotency(self, key: str, *, lock: bool = False) -> IdempotencyRecord | None:
        return self._get(idempotency, "key", key, IdempotencyRecord, lock)

    def put_idempotency(self, record: IdempotencyRecord) -> None:
        self._upsert(idempotency, "key", self._idempotency_values(record))

    def insert_idempotency(self, record: IdempotencyRecord) -> None:
        if not self._insert_new(idempotency, "key", self._idempotency_values(record)):
            raise ConflictError(
                f"an idempotency record with key {record.key!r} already exists",
                field="record.key",
                value=record.key,
            )

    def unresolved_idempotency(self, operation: str) -> list[IdempotencyRecord]:
        i = idempotency
        where = (i.c.operation == operation, i.c.state == IdempotencyState.IN_PROGRESS.value)
        rows = self._exec(sa.select(i.c.data).where(*where).order_by(i.c.created_utc)).scalars()
        return [decode(text, IdempotencyRecord) for text in rows]

    def delete_idempotency(self, key: str) -> None:
        self._exec(sa.delete(idempotency).where(idempotency.c.key == key))

    # -- audit log ----------------------------------------------------------------------------
    def append_audit(self, entry: AuditEntry) -> None:
        check_audit_entry(entry)
        values = {
            "at_utc": entry.at,
            "actor": entry.actor,
            "action": entry.action,
            "subject_id": entry.subject_id,
            "data": encode(entry, "entry"),
        }
        self._exec(sa.insert(audit_log).values(values))

    def audit_log(self, *, subject_id: str | None = None) -> list[AuditEntry]:
        stmt = sa.select(audit_log.c.id, audit_log.c.data).order_by(audit_log.c.id)
        if subject_id is not None:
            stmt = stmt.where(audit_log.c.subject_id == subject_id)
        return [
            attrs.evolve(decode(data, AuditEntry), id=str(id_)) for id_, data in self._exec(stmt)
        ]


# -- the store -------------------------------------------------------------------------------
class SqlStore:
    """The SQL store: ``SqlStore(url, *, create=True)``. See the module docstring.

    ``url`` is a SQLAlchemy URL: ``sqlite:///path/billing.sqlite3`` (``sqlite://`` is a private
    in-memory database, for tests) or ``postgresql+psycopg://user@host/db``. ``create=True``
    runs the schema migrations up to the latest revision first.
    """

    name = "sql"

    def __init__(
        self, url: str | sa.URL, *, create: bool = True, pool_size: int | None = None
    ) -> None:
        self._engine = make_engine(url, pool_size=pool_size)
        self.url = self._engine.url
        self.dialect = self._engine.dialect.name
        memory = is_memory_sqlite(self.url)
        self._serial: AbstractContextManager[Any] = threading.RLock() if memory else nullcontext()
        self._local = threading.local()
        if create:
            try:
                upgrade(self._engine)
            except BaseException:
                self._engine.dispose()
                raise

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for inspection and raw SQL in tests)."""
        return self._engine

    def __repr__(self) -> str:
        return f"SqlStore({self.url.render_as_string(hide_password=True)!r})"

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[_SqlSession]:
        """An atomic unit of work: commits on normal exit, rolls back on an exception."""
        stack: list[_SqlSession] = self._local.__dict__.setdefault("stack", [])
        if stack:
            conn = stack[-1]._conn
            with translate_errors():
                savepoint = conn.begin_nested()
            with self._enter(stack, conn, savepoint.rollback) as nested:
                yield nested
            _run(savepoint.commit)
            return
        with self._serial, translate_errors(), self._engine.connect() as conn:
            transaction = conn.begin()
            with self._enter(stack, conn, transaction.rollback) as top:
                yield top
            _run(transaction.commit)

    @contextmanager
    def _enter(
        self, stack: list[_SqlSession], conn: Connection, rollback: Callable[[], None]
    ) -> Iterator[_SqlSession]:
        sess = _SqlSession(self, conn)
        stack.append(sess)
        try:
            yield sess
        except BaseException:
            with suppress(sa.exc.DBAPIError):  # the connection is gone: keep the caller's error
                rollback()
            raise
        finally:
            stack.pop()
            sess._open = False

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()


def _run(fn: Callable[[], None]) -> None:
    with translate_errors():
        fn()
