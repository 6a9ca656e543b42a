"""Checks and queue logic shared by the built-in stores (``MemoryStore`` and ``SqlStore``).

Pure Python: the memory store uses it without SQLAlchemy installed. Both stores call the same
checks so they refuse the same input with the same error, field and message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import attrs

from ..errors import (
    ConflictError,
    CurrencyMismatchError,
    InvalidAmountError,
    InvalidTypeError,
    InvalidValueError,
)
from ..model import Transaction
from ..timeutil import require_aware
from .records import AuditEntry, MeteredClose, QueueEntry, QueueState

__all__ = [
    "check_audit_entry",
    "check_claim",
    "check_instance",
    "check_metered_close_key",
    "check_sequence",
    "check_transaction",
    "check_usage_range",
    "claimed",
    "due_order_key",
    "is_due",
    "metered_close_conflict",
    "metered_close_key",
    "state_set",
]

T = TypeVar("T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check_instance(value: object, cls: type[T], field: str) -> T:
    """``value`` if it is a ``cls``; ``InvalidTypeError`` naming ``field`` otherwise."""
    if not isinstance(value, cls):
        raise InvalidTypeError(
            f"must be a {cls.__name__}, not {type(value).__name__}", field=field, value=value
        )
    return value


def check_sequence(values: object, cls: type[T], field: str) -> Sequence[T]:
    """``values`` if it is a sequence of ``cls``; ``InvalidTypeError`` naming the bad item."""
    if isinstance(values, cls | str) or not isinstance(values, Sequence):
        raise InvalidTypeError(
            f"must be a sequence of {cls.__name__}, not {type(values).__name__}",
            field=field,
            value=values,
        )
    for i, value in enumerate(values):
        check_instance(value, cls, f"{field}[{i}]")
    return values


def check_transaction(txn: object, field: str = "transaction") -> Transaction:
    """Refuse a transaction that breaks the money invariant, whatever its constructor checked.

    A ``Transaction`` validates itself on construction, but a store is the last line of defence
    (a value built with ``object.__setattr__``, a bug in a plugin): refunded plus reserved must
    not exceed the amount, all three in one currency and none negative.
    """
    t = check_instance(txn, Transaction, field)
    currency = t.amount.currency
    for name in ("refunded", "reserved"):
        m = getattr(t, name)
        if m.currency != currency:
            raise CurrencyMismatchError(
                f"must be in {currency}, not {m.currency}", field=f"{field}.{name}", value=m
            )
    for name in ("amount", "refunded", "reserved"):
        m = getattr(t, name)
        if m.amount < 0:
            raise InvalidAmountError("must not be negative", field=f"{field}.{name}", value=m)
    if t.refunded.amount + t.reserved.amount > t.amount.amount:
        raise InvalidAmountError(
            f"refunded {t.refunded.amount} plus reserved {t.reserved.amount} {currency} must not "
            f"exceed the amount {t.amount.amount} {currency} of transaction {t.id!r}",
            field=f"{field}.reserved",
            value=t.reserved,
        )
    return t


def check_usage_range(start: datetime, end: datetime) -> None:
    require_aware(start, "start")
    require_aware(end, "end")
    if end < start:
        raise InvalidValueError(
            f"must not be before start {start.isoformat()}", field="end", value=end
        )


def check_metered_close_key(
    subscription_id: object, metric: object, start: datetime, end: datetime
) -> tuple[str, str, datetime, datetime]:
    """The unique key of a ``MeteredClose``: ``(subscription_id, metric or "", start, end)``,
    the instants in UTC. ``metric=""`` is refused (it would stand for every metric)."""
    if not isinstance(subscription_id, str) or not subscription_id:
        raise InvalidValueError(
            "must be a non-empty str", field="subscription_id", value=subscription_id
        )
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise InvalidValueError("must be a metric name or None", field="metric", value=metric)
    check_usage_range(start, end)
    return subscription_id, metric or "", start.astimezone(UTC), end.astimezone(UTC)


def metered_close_conflict(record: MeteredClose) -> ConflictError:
    """The error of a second ``insert_metered_close`` of one period."""
    return ConflictError(
        f"the period {record.start.isoformat()} to {record.end.isoformat()} of "
        f"{record.subscription_id} ({record.metric or 'every metric'}) was already closed",
        field="record",
        value=record.idempotency_key,
    )


def metered_close_key(record: object) -> tuple[str, str, datetime, datetime]:
    """``check_metered_close_key`` of a ``MeteredClose`` (checked to be one first)."""
    close = check_instance(record, MeteredClose, "record")
    require_aware(close.closed_at, "closed_at")
    return check_metered_close_key(close.subscription_id, close.metric, close.start, close.end)


def check_claim(now: datetime, worker: str, lease_seconds: int, limit: int) -> None:
    require_aware(now, "now")
    if not isinstance(worker, str) or not worker:
        raise InvalidValueError("must be a non-empty str", field="worker", value=worker)
    for name, value, low in (("lease_seconds", lease_seconds, 1), ("limit", limit, 0)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidTypeError(
                f"must be an int, not {type(value).__name__}", field=name, value=value
            )
        if value < low:
            raise InvalidValueError(f"must be at least {low}", field=name, value=value)


def check_audit_entry(entry: object) -> AuditEntry:
    e = check_instance(entry, AuditEntry, "entry")
    if e.id is not None:
        raise InvalidValueError(
            "must be None: the store assigns audit ids in append order",
            field="entry.id",
            value=e.id,
        )
    return e


def is_due(entry: QueueEntry, now: datetime) -> bool:
    """Queued and due (``next_attempt_at`` unset or not after ``now``), or claimed with a lease
    that has run out (``lease_until`` not after ``now``)."""
    if entry.state == QueueState.QUEUED:
        return entry.next_attempt_at is None or entry.next_attempt_at <= now
    if entry.state == QueueState.CLAIMED:
        return entry.lease_until is None or entry.lease_until <= now
    return False


def due_order_key(entry: QueueEntry, position: int) -> tuple[Any, ...]:
    """Claim order: entries without ``next_attempt_at`` first, then the earliest, then the oldest."""
    at = entry.next_attempt_at
    return (at is not None, at - _EPOCH if at is not None else timedelta(0), position)


def claimed(entry: QueueEntry, *, now: datetime, worker: str, lease_seconds: int) -> QueueEntry:
    """``entry`` claimed by ``worker`` until ``now + lease_seconds``, with the next fencing
    number. The stores call it on the stored entry, under its row lock, so two claims of one
    entry never get the same fence."""
    return attrs.evolve(
        entry,
        state=QueueState.CLAIMED,
        claimed_by=worker,
        lease_until=now + timedelta(seconds=lease_seconds),
        fence=entry.fence + 1,
    )


def state_set(values: Iterable[T] | None, kind: type[T], field: str) -> frozenset[T] | None:
    """The filter set of a ``states=``/``statuses=`` argument, each member checked and converted."""
    if values is None:
        return None
    if isinstance(values, str):
        raise InvalidTypeError(
            "must be an iterable of states, not one str", field=field, value=values
        )
    result = set()
    for i, v in enumerate(values):
        try:
            result.add(kind(v))  # type: ignore[call-arg]
        except ValueError:
            raise InvalidValueError(
                f"must be a {kind.__name__}, not {v!r}", field=f"{field}[{i}]", value=v
            ) from None
    return frozenset(result)
