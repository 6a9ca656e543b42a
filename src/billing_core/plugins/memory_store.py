"""``MemoryStore``: the in-memory store, for tests, examples and single-process embedding.

* **One session at a time.** ``session()`` holds one re-entrant lock for the whole session, so
  sessions serialize across threads and a ``lock=True`` read needs nothing more.
* **Atomic, copy-on-write.** A session reads the committed tables and copies a table the first
  time it writes to it; its changes replace the committed tables only when the ``with`` block
  exits normally. An exception discards them all.
* **Nested sessions** (a ``store.session()`` opened inside another one on the same thread) act as
  a savepoint: the inner block's writes join the outer session when it exits normally, and are
  discarded alone when it raises. The SQL store does the same with ``SAVEPOINT``.
* Values are immutable attrs objects, so they are stored as they are, not copied.

Nothing is persisted: the data lives as long as the object.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import attrs

from ..blocklists import BlocklistEntry
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
from ..wallets import Wallet
from ._outbox_common import (
    check_outbox_claim,
    check_outbox_event,
    check_outbox_mark,
    outbox_claimed,
    outbox_delivered,
    outbox_failed,
    outbox_is_due,
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
    is_due,
    metered_close_conflict,
    metered_close_key,
    state_set,
)
from .memory_invoices import INVOICE_TABLES, MemoryInvoiceTables
from .records import (
    AuditEntry,
    IdempotencyRecord,
    IdempotencyState,
    MeteredClose,
    OutboxEvent,
    QueueEntry,
    QueueState,
)

__all__ = ["MemoryStore"]

_TABLES = (
    "customers",
    "subscriptions",
    "certificates",
    "transactions",
    "queue",
    "usage",
    "idempotency",
    "audit",
    "metered_closes",
    "wallets",
    "blocklist",
    *INVOICE_TABLES,
    "outbox",
)


class _State:
    """The committed tables: a dict per record type (insertion-ordered), the audit log as a list."""

    def __init__(self) -> None:
        self.tables: dict[str, Any] = {name: ({} if name != "audit" else []) for name in _TABLES}
        self.audit_seq = 0


class _MemorySession(MemoryInvoiceTables):
    """One unit of work on a ``MemoryStore``. See the module docstring (invoice tables:
    ``memory_invoices``)."""

    def __init__(self, base: dict[str, Any], audit_seq: int) -> None:
        self._base = base
        self._own: dict[str, Any] = {}
        self._audit_seq = audit_seq
        self._open = True

    # -- copy-on-write plumbing ---------------------------------------------------------------
    def _read(self, name: str) -> Any:
        if not self._open:
            raise RuntimeError("this store session has ended; open a new one with store.session()")
        return self._own.get(name, self._base[name])

    def _write(self, name: str) -> Any:
        table = self._read(name)
        if name not in self._own:
            table = self._own[name] = table.copy()
        return table

    def _view(self) -> dict[str, Any]:
        return {name: self._own.get(name, self._base[name]) for name in _TABLES}

    # -- customers ----------------------------------------------------------------------------
    def get_customer(self, customer_id: str) -> Customer | None:
        result: Customer | None = self._read("customers").get(customer_id)
        return result

    def put_customer(self, customer: Customer) -> None:
        check_instance(customer, Customer, "customer")
        self._write("customers")[customer.id] = customer

    def insert_customer(self, customer: Customer) -> None:
        check_instance(customer, Customer, "customer")
        if customer.id in self._read("customers"):
            raise ConflictError(
                f"a customer with id {customer.id!r} already exists",
                field="customer.id",
                value=customer.id,
            )
        self._write("customers")[customer.id] = customer

    def list_customers(self) -> list[Customer]:
        return list(self._read("customers").values())

    # -- payment instruments and blocklists ------------------------------------------------------
    def get_wallet(self, customer_id: str, *, lock: bool = False) -> Wallet | None:
        found: Wallet | None = self._read("wallets").get(customer_id)
        return found

    def put_wallet(self, wallet: Wallet) -> None:
        check_instance(wallet, Wallet, "wallet")
        self._write("wallets")[wallet.customer_id] = wallet

    def get_blocklist_entry(self, entry_id: str) -> BlocklistEntry | None:
        found: BlocklistEntry | None = self._read("blocklist").get(entry_id)
        return found

    def put_blocklist_entry(self, entry: BlocklistEntry) -> None:
        check_instance(entry, BlocklistEntry, "entry")
        self._write("blocklist")[entry.id] = entry

    def list_blocklist(self) -> list[BlocklistEntry]:
        return list(self._read("blocklist").values())

    # -- subscriptions ------------------------------------------------------------------------
    def get_subscription(self, subscription_id: str, *, lock: bool = False) -> Subscription | None:
        result: Subscription | None = self._read("subscriptions").get(subscription_id)
        return result

    def put_subscription(self, subscription: Subscription) -> None:
        check_instance(subscription, Subscription, "subscription")
        self._write("subscriptions")[subscription.id] = subscription

    def list_subscriptions(
        self,
        *,
        customer_id: str | None = None,
        states: Iterable[SubscriptionState] | None = None,
    ) -> list[Subscription]:
        wanted = state_set(states, SubscriptionState, "states")
        return [
            s
            for s in self._read("subscriptions").values()
            if (customer_id is None or s.customer_id == customer_id)
            and (wanted is None or s.state in wanted)
        ]

    # -- certificates -------------------------------------------------------------------------
    def get_certificate(self, certificate_id: str) -> Certificate | None:
        result: Certificate | None = self._read("certificates").get(certificate_id)
        return result

    def put_certificate(self, certificate: Certificate) -> None:
        check_instance(certificate, Certificate, "certificate")
        self._write("certificates")[certificate.id] = certificate

    def certificates_for_domain(self, domain: str) -> list[Certificate]:
        return [c for c in self._read("certificates").values() if c.domain == domain]

    # -- transactions -------------------------------------------------------------------------
    def get_transaction(self, transaction_id: str, *, lock: bool = False) -> Transaction | None:
        result: Transaction | None = self._read("transactions").get(transaction_id)
        return result

    def insert_transaction(self, transaction: Transaction) -> None:
        check_transaction(transaction)
        if transaction.id in self._read("transactions"):
            raise ConflictError(
                f"a transaction with id {transaction.id!r} already exists",
                field="transaction.id",
                value=transaction.id,
            )
        self._write("transactions")[transaction.id] = transaction

    def update_transaction(self, transaction: Transaction) -> None:
        check_transaction(transaction)
        if transaction.id not in self._read("transactions"):
            raise NotFoundError(
                f"no transaction with id {transaction.id!r}",
                field="transaction.id",
                value=transaction.id,
            )
        self._write("transactions")[transaction.id] = transaction

    def list_transactions(
        self,
        *,
        customer_id: str | None = None,
        parent_id: str | None = None,
        statuses: Iterable[TransactionStatus] | None = None,
    ) -> list[Transaction]:
        wanted = state_set(statuses, TransactionStatus, "statuses")
        return [
            t
            for t in self._read("transactions").values()
            if (customer_id is None or t.customer_id == customer_id)
            and (parent_id is None or t.parent_id == parent_id)
            and (wanted is None or t.status in wanted)
        ]

    # -- refund retry queue -------------------------------------------------------------------
    def put_queue_entry(self, entry: QueueEntry) -> None:
        check_instance(entry, QueueEntry, "entry")
        self._write("queue")[entry.id] = entry

    def get_queue_entry(self, entry_id: str, *, lock: bool = False) -> QueueEntry | None:
        result: QueueEntry | None = self._read("queue").get(entry_id)
        return result

    def list_queue(self, *, states: Iterable[QueueState] | None = None) -> list[QueueEntry]:
        wanted = state_set(states, QueueState, "states")
        return [e for e in self._read("queue").values() if wanted is None or e.state in wanted]

    def claim_due(
        self, *, now: datetime, worker: str, lease_seconds: int, limit: int
    ) -> list[QueueEntry]:
        check_claim(now, worker, lease_seconds, limit)
        due = sorted(
            (due_order_key(e, i), e)
            for i, e in enumerate(self._read("queue").values())
            if is_due(e, now)
        )
        result = [
            claimed(e, now=now, worker=worker, lease_seconds=lease_seconds) for _, e in due[:limit]
        ]
        if result:
            table = self._write("queue")
            for entry in result:
                table[entry.id] = entry
        return result

    # -- usage --------------------------------------------------------------------------------
    def add_usage_events(self, events: Sequence[UsageEvent]) -> int:
        check_sequence(events, UsageEvent, "events")
        stored = self._read("usage")
        new = [e for e in events if e.id not in stored]
        if not new:
            return 0
        table = self._write("usage")
        count = 0
        for event in new:
            if event.id not in table:
                table[event.id] = event
                count += 1
        return count

    def usage_events(
        self, *, subscription_id: str, start: datetime, end: datetime, metric: str | None = None
    ) -> Iterator[UsageEvent]:
        check_usage_range(start, end)
        found = [
            e
            for e in self._read("usage").values()
            if e.subscription_id == subscription_id
            and start <= e.at < end
            and (metric is None or e.metric == metric)
        ]
        found.sort(key=lambda e: e.at)  # stable: equal instants keep insertion order
        return iter(found)

    # -- metered periods closed ---------------------------------------------------------------
    def insert_metered_close(self, record: MeteredClose) -> None:
        key = metered_close_key(record)
        if key in self._read("metered_closes"):
            raise metered_close_conflict(record)
        self._write("metered_closes")[key] = record

    def get_metered_close(
        self, *, subscription_id: str, metric: str | None, start: datetime, end: datetime
    ) -> MeteredClose | None:
        key = check_metered_close_key(subscription_id, metric, start, end)
        result: MeteredClose | None = self._read("metered_closes").get(key)
        return result

    # -- idempotency --------------------------------------------------------------------------
    def get_idempotency(self, key: str, *, lock: bool = False) -> IdempotencyRecord | None:
        result: IdempotencyRecord | None = self._read("idempotency").get(key)
        return result

    def put_idempotency(self, record: IdempotencyRecord) -> None:
        check_instance(record, IdempotencyRecord, "record")
        self._write("idempotency")[record.key] = record

    def insert_idempotency(self, record: IdempotencyRecord) -> None:
        check_instance(record, IdempotencyRecord, "record")
        if record.key in self._read("idempotency"):
            raise ConflictError(
                f"an idempotency record with key {record.key!r} already exists",
                field="record.key",
                value=record.key,
            )
        self._write("idempotency")[record.key] = record

    def unresolved_idempotency(self, operation: str) -> list[IdempotencyRecord]:
        return [
            r
            for r in self._read("idempotency").values()
            if r.operation == operation and r.state is IdempotencyState.IN_PROGRESS
        ]

    def delete_idempotency(self, key: str) -> None:
        if key in self._read("idempotency"):
            del self._write("idempotency")[key]

    # -- audit log ----------------------------------------------------------------------------
    def append_audit(self, entry: AuditEntry) -> None:
        check_audit_entry(entry)
        log = self._write("audit")
        self._audit_seq += 1
        log.append(attrs.evolve(entry, id=str(self._audit_seq)))

    def audit_log(self, *, subject_id: str | None = None) -> list[AuditEntry]:
        return [e for e in self._read("audit") if subject_id is None or e.subject_id == subject_id]

    # -- event outbox -------------------------------------------------------------------------
    def add_outbox_event(self, event: OutboxEvent) -> OutboxEvent:
        check_outbox_event(event)
        table = self._read("outbox")
        if event.id in table:
            raise ConflictError(
                f"an outbox event with id {event.id!r} already exists",
                field="event.id",
                value=event.id,
            )
        last = next(reversed(table.values()), None)
        stored = attrs.evolve(event, sequence=1 if last is None else last.sequence + 1)
        self._write("outbox")[event.id] = stored
        return stored

    def claim_outbox(
        self,
        *,
        now: datetime,
        worker: str,
        lease_seconds: int,
        limit: int,
        ids: Iterable[str] | None = None,
    ) -> list[OutboxEvent]:
        wanted = check_outbox_claim(now, worker, lease_seconds, limit, ids)
        due = [
            e
            for e in self._read("outbox").values()
            if outbox_is_due(e, now) and (wanted is None or e.id in wanted)
        ][:limit]
        result = [
            outbox_claimed(e, now=now, worker=worker, lease_seconds=lease_seconds) for e in due
        ]
        if result:
            table = self._write("outbox")
            for event in result:
                table[event.id] = event
        return result

    def _mark_outbox(self, event_id: str, changed: OutboxEvent | None) -> bool:
        if changed is None:
            return False
        self._write("outbox")[event_id] = changed
        return True

    def mark_outbox_delivered(self, event_id: str, *, worker: str, at: datetime) -> bool:
        check_outbox_mark(event_id, worker, at)
        event = self._read("outbox").get(event_id)
        changed = None if event is None else outbox_delivered(event, worker=worker, at=at)
        return self._mark_outbox(event_id, changed)

    def mark_outbox_failed(
        self, event_id: str, *, worker: str, error: str, retry_at: datetime
    ) -> bool:
        check_outbox_mark(event_id, worker, retry_at)
        event = self._read("outbox").get(event_id)
        changed = (
            None
            if event is None
            else outbox_failed(event, worker=worker, error=error, retry_at=retry_at)
        )
        return self._mark_outbox(event_id, changed)

    def list_outbox(
        self, *, pending: bool | None = None, limit: int | None = None
    ) -> list[OutboxEvent]:
        events = [
            e for e in self._read("outbox").values() if pending is None or e.pending == pending
        ]
        return events if limit is None else events[:limit]


class MemoryStore:
    """The in-memory store: ``MemoryStore()``. Satisfies ``billing_core.plugins.protocols.Store``."""

    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._state = _State()
        self._local = threading.local()

    @contextmanager
    def session(self) -> Iterator[_MemorySession]:
        """An atomic unit of work; see the module docstring."""
        with self._lock:
            stack: list[_MemorySession] = self._local.__dict__.setdefault("stack", [])
            if stack:
                outer = stack[-1]
                sess = _MemorySession(outer._view(), outer._audit_seq)
            else:
                sess = _MemorySession(self._state.tables, self._state.audit_seq)
            stack.append(sess)
            try:
                yield sess
            finally:
                stack.pop()
                sess._open = False
            # Reached only when the block exited normally: publish the session's tables.
            if stack:
                stack[-1]._own.update(sess._own)
                stack[-1]._audit_seq = sess._audit_seq
            else:
                state = _State()
                state.tables = sess._view()
                state.audit_seq = sess._audit_seq
                self._state = state

    def close(self) -> None:
        """Nothing to release."""
