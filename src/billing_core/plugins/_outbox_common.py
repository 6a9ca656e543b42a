"""Checks and transitions of the event outbox shared by the built-in stores.

Pure Python (the memory store uses it without SQLAlchemy). An outbox event is *due* when it is
pending (``delivered_at`` is None) and its ``next_attempt_at`` is not after ``now``: a new event
at once, a failed one after its backoff, a claimed one when its lease has run out. Claiming moves
``next_attempt_at`` to the end of the lease, so a live claim is simply not due.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import attrs

from ..errors import InvalidTypeError, InvalidValueError
from ..timeutil import require_aware
from ._store_common import check_claim, check_instance
from .records import OutboxEvent

__all__ = [
    "check_outbox_claim",
    "check_outbox_event",
    "check_outbox_mark",
    "outbox_claimed",
    "outbox_delivered",
    "outbox_failed",
    "outbox_ids",
    "outbox_is_due",
]


def check_outbox_event(event: object) -> OutboxEvent:
    """A new event: an ``OutboxEvent`` with aware instants, pending, unclaimed, no sequence."""
    e = check_instance(event, OutboxEvent, "event")
    for name in ("id", "name"):
        value = getattr(e, name)
        if not isinstance(value, str) or not value:
            raise InvalidValueError("must be a non-empty str", field=f"event.{name}", value=value)
    require_aware(e.created_at, "event.created_at")
    require_aware(e.next_attempt_at, "event.next_attempt_at")
    if e.sequence is not None:
        raise InvalidValueError(
            "must be None: the store assigns the sequence", field="event.sequence", value=e.sequence
        )
    if e.delivered_at is not None or e.claimed_by is not None:
        raise InvalidValueError(
            "a new outbox event must be pending and unclaimed", field="event.delivered_at"
        )
    return e


def outbox_ids(ids: Iterable[str] | None) -> frozenset[str] | None:
    if ids is None:
        return None
    if isinstance(ids, str):
        raise InvalidTypeError("must be an iterable of ids, not one str", field="ids", value=ids)
    return frozenset(ids)


def check_outbox_claim(
    now: datetime, worker: str, lease_seconds: int, limit: int, ids: Iterable[str] | None
) -> frozenset[str] | None:
    check_claim(now, worker, lease_seconds, limit)
    return outbox_ids(ids)


def check_outbox_mark(event_id: str, worker: str, at: datetime) -> None:
    if not isinstance(event_id, str) or not event_id:
        raise InvalidValueError("must be a non-empty str", field="event_id", value=event_id)
    if not isinstance(worker, str) or not worker:
        raise InvalidValueError("must be a non-empty str", field="worker", value=worker)
    require_aware(at, "at")


def outbox_is_due(event: OutboxEvent, now: datetime) -> bool:
    return event.delivered_at is None and event.next_attempt_at <= now


def outbox_claimed(
    event: OutboxEvent, *, now: datetime, worker: str, lease_seconds: int
) -> OutboxEvent:
    return attrs.evolve(
        event, claimed_by=worker, next_attempt_at=now + timedelta(seconds=lease_seconds)
    )


def outbox_delivered(event: OutboxEvent, *, worker: str, at: datetime) -> OutboxEvent | None:
    """``event`` delivered by ``worker`` at ``at``; None when ``worker`` does not hold it (its
    lease was taken over, or it was delivered already)."""
    if event.delivered_at is not None or event.claimed_by != worker:
        return None
    return attrs.evolve(event, delivered_at=at, attempts=event.attempts + 1, claimed_by=None)


def outbox_failed(
    event: OutboxEvent, *, worker: str, error: str, retry_at: datetime
) -> OutboxEvent | None:
    """``event`` after a failed delivery by ``worker``, due again at ``retry_at``; None when
    ``worker`` does not hold it."""
    if event.delivered_at is not None or event.claimed_by != worker:
        return None
    return attrs.evolve(
        event,
        attempts=event.attempts + 1,
        last_error=str(error),
        next_attempt_at=retry_at,
        claimed_by=None,
    )
