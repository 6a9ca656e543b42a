"""The SQL store's event outbox: the ``StoreSession`` outbox methods on the ``outbox`` table.

``claim_outbox`` picks the due events in ``sequence`` order and moves their ``next_attempt_at`` to
the end of the lease in the same statement: on PostgreSQL the picks are locked with
``FOR UPDATE SKIP LOCKED`` (two deliverers split the events, neither waits), on SQLite the session
already holds the write lock, so one conditional ``UPDATE`` is atomic. Marking an event delivered
or failed is a conditional ``UPDATE`` too: it writes only while the worker still holds the claim.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult

from ..errors import ConflictError
from ._outbox_common import check_outbox_claim, check_outbox_event, check_outbox_mark
from .records import OutboxEvent
from .sql_schema import outbox

__all__ = ["SqlOutbox"]

_COLUMNS = (
    outbox.c.sequence,
    outbox.c.id,
    outbox.c.name,
    outbox.c.payload,
    outbox.c.created_at,
    outbox.c.delivered_at,
    outbox.c.attempts,
    outbox.c.last_error,
    outbox.c.next_attempt_at,
    outbox.c.claimed_by,
)


def _event(row: Sequence[Any]) -> OutboxEvent:
    seq, id_, name, payload, created, delivered, attempts, error, next_at, claimed_by = row
    return OutboxEvent(
        id=id_,
        name=name,
        payload=json.loads(payload),
        created_at=created,
        next_attempt_at=next_at,
        sequence=int(seq),
        delivered_at=delivered,
        attempts=int(attempts),
        last_error=error,
        claimed_by=claimed_by,
    )


class SqlOutbox:
    """Mixed into the SQL store's session; uses its ``_exec``, ``_insert`` and ``_pg``."""

    _pg: bool

    def _exec(self, stmt: sa.Executable, params: Any = None) -> CursorResult[*tuple[Any, ...]]:
        raise NotImplementedError  # provided by the session

    def _insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        raise NotImplementedError  # provided by the session

    def add_outbox_event(self, event: OutboxEvent) -> OutboxEvent:
        check_outbox_event(event)
        text = json.dumps(event.payload, ensure_ascii=False, separators=(",", ":"))
        values = {
            "id": event.id,
            "name": event.name,
            "payload": text,
            "created_at": event.created_at,
            "delivered_at": None,
            "attempts": event.attempts,
            "last_error": event.last_error,
            "next_attempt_at": event.next_attempt_at,
            "claimed_by": None,
        }
        stmt = (
            self._insert(outbox)
            .values(values)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(outbox.c.sequence)
        )
        seq = self._exec(stmt).scalar_one_or_none()
        if seq is None:
            raise ConflictError(
                f"an outbox event with id {event.id!r} already exists",
                field="event.id",
                value=event.id,
            )
        return OutboxEvent(
            id=event.id,
            name=event.name,
            payload=json.loads(text),
            created_at=event.created_at,
            next_attempt_at=event.next_attempt_at,
            sequence=int(seq),
            attempts=event.attempts,
            last_error=event.last_error,
        )

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
        if limit == 0 or wanted == frozenset():
            return []
        o = outbox
        due = sa.and_(o.c.delivered_at.is_(None), o.c.next_attempt_at <= now)
        if wanted is not None:
            due = sa.and_(due, o.c.id.in_(sorted(wanted)))
        pick = sa.select(o.c.sequence).where(due).order_by(o.c.sequence).limit(limit)
        if self._pg:
            seqs = list(self._exec(pick.with_for_update(skip_locked=True)).scalars())
            if not seqs:
                return []
            chosen = o.c.sequence.in_(seqs)
        else:
            chosen = o.c.sequence.in_(pick)
        claim = (
            sa.update(o)
            .where(chosen, due)
            .values(claimed_by=worker, next_attempt_at=now + timedelta(seconds=lease_seconds))
            .returning(*_COLUMNS)
        )
        events = [_event(row) for row in self._exec(claim).all()]
        return sorted(events, key=lambda e: e.sequence or 0)

    def _mark(self, event_id: str, worker: str, **values: Any) -> bool:
        o = outbox
        stmt = (
            sa.update(o)
            .where(o.c.id == event_id, o.c.claimed_by == worker, o.c.delivered_at.is_(None))
            .values(attempts=o.c.attempts + 1, claimed_by=None, **values)
        )
        return bool(self._exec(stmt).rowcount)

    def mark_outbox_delivered(self, event_id: str, *, worker: str, at: datetime) -> bool:
        check_outbox_mark(event_id, worker, at)
        return self._mark(event_id, worker, delivered_at=at)

    def mark_outbox_failed(
        self, event_id: str, *, worker: str, error: str, retry_at: datetime
    ) -> bool:
        check_outbox_mark(event_id, worker, retry_at)
        return self._mark(event_id, worker, last_error=str(error), next_attempt_at=retry_at)

    def list_outbox(
        self, *, pending: bool | None = None, limit: int | None = None
    ) -> list[OutboxEvent]:
        stmt = sa.select(*_COLUMNS).order_by(outbox.c.sequence)
        if pending is not None:
            column = outbox.c.delivered_at
            stmt = stmt.where(column.is_(None) if pending else column.is_not(None))
        if limit is not None:
            stmt = stmt.limit(limit)
        return [_event(row) for row in self._exec(stmt).all()]
