"""The engine's event outbox: events are recorded with the change that caused them and delivered to
the listeners (the pluggy event hooks) after that change has committed, at least once.

* **Recording.** ``Outbox.record(event)`` (the engine's ``ctx.emit``) writes the event, as its
  JSON form, into the store session that is open for this engine call on this thread, so it
  commits or rolls back with the change. The engine's flows open their sessions through
  ``Outbox.store`` (a ``TrackedStore``), which keeps the stack of open sessions per thread. An
  event recorded while no session is open gets a session of its own.
* **Delivery.** Once the outermost tracked session has committed and the public engine call has
  ended (``Outbox.scope()``, which ``_guarded`` opens around every guarded call), the events it
  committed are claimed (a lease, so no other deliverer takes them meanwhile), handed to the
  listeners, and marked delivered. A rolled-back session delivers nothing. No store session is
  open while a listener runs, so a slow listener holds no lock and sees the committed state.
* **Retries.** A listener that raises is logged, kept in ``engine.event_errors``, and its event
  is due again after a backoff (``retry_base`` seconds, doubling per attempt, at most
  ``retry_cap``); ``engine.deliver_events()`` (a worker step) delivers what is due, including
  events whose deliverer died (its lease ran out). The outbox row keeps ``attempts``,
  ``last_error`` and ``delivered_at``: the delivery record.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import Any

import attrs

from ..errors import ConfigurationError
from ..plugins import events as _events
from ..plugins.events import Event
from ..plugins.manager import Plugins
from ..plugins.protocols import Store, StoreSession
from ..plugins.records import OutboxEvent
from ..serialization import structure, unstructure

__all__ = ["EVENT_TYPES", "Outbox", "TrackedStore", "decode_event", "encode_event"]

_log = logging.getLogger("billing_core.engine")

EVENT_TYPES: Mapping[str, type[Event]] = {
    name: cls
    for name in _events.__all__
    if isinstance(cls := getattr(_events, name), type)
    and issubclass(cls, Event)
    and cls is not Event
}
"""The events the outbox knows, by the ``name`` it stores them under (the class name)."""


def encode_event(event: Event) -> tuple[str, Mapping[str, Any]]:
    """The outbox ``name`` and ``payload`` of ``event``."""
    name = type(event).__name__
    if EVENT_TYPES.get(name) is not type(event):
        raise ConfigurationError(
            f"must be an event from billing_core.plugins.events, not {name}", field="event"
        )
    payload: Mapping[str, Any] = unstructure(event)
    return name, payload


def decode_event(record: OutboxEvent) -> Event:
    """The event an outbox record holds."""
    cls = EVENT_TYPES.get(record.name)
    if cls is None:
        raise ConfigurationError(
            f"the outbox holds an event named {record.name!r}, which this billing_core does not "
            "know (written by a newer version?)",
            field="event.name",
            value=record.name,
        )
    return structure(dict(record.payload), cls)


@attrs.define
class _Frame:
    session: StoreSession
    events: list[tuple[str, Event]] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class Delivery:
    """What one delivery pass did: events claimed, delivered, and failed (retried later)."""

    claimed: int = 0
    delivered: int = 0
    failed: tuple[tuple[str, str], ...] = ()


class TrackedStore:
    """``store``, whose sessions the outbox tracks (see the module docstring). Everything but
    ``session`` is the wrapped store's."""

    def __init__(self, store: Store, outbox: Outbox) -> None:
        self.inner = store
        self.name = store.name
        self._outbox = outbox

    def session(self) -> AbstractContextManager[StoreSession]:
        return self._outbox.session()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Outbox:
    """One engine's outbox (see the module docstring)."""

    retry_base = 10
    """Seconds before the first retry of an event whose listener raised; doubled per attempt."""
    retry_cap = 3600
    """The longest wait between two deliveries of one event, in seconds."""

    def __init__(
        self,
        *,
        store: Store,
        plugins: Plugins,
        now: Callable[[], datetime],
        worker_id: str,
        ids: Callable[[str], str],
        lease_seconds: int,
        keep_events: int,
    ) -> None:
        if isinstance(keep_events, bool) or not isinstance(keep_events, int) or keep_events < 0:
            raise ConfigurationError(
                "must be an int of at least 0", field="keep_events", value=keep_events
            )
        self.raw = store
        self.store = TrackedStore(store, self)
        self.plugins = plugins
        self.now = now
        self.worker_id = worker_id
        self.ids = ids
        self.lease_seconds = lease_seconds
        self.events: deque[Event] = deque(maxlen=keep_events)
        self.errors: deque[tuple[Event, Exception]] = deque(maxlen=keep_events)
        self._local = threading.local()

    # -- per-thread state ----------------------------------------------------------------------
    def _frames(self) -> list[_Frame]:
        frames: list[_Frame] = self._local.__dict__.setdefault("frames", [])
        return frames

    def _pending(self) -> list[tuple[str, Event]]:
        pending: list[tuple[str, Event]] = self._local.__dict__.setdefault("pending", [])
        return pending

    def _scopes(self) -> int:
        return int(self._local.__dict__.get("scopes", 0))

    # -- recording -----------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[StoreSession]:
        """A session of the store, tracked: the events recorded in it commit with it."""
        frames = self._frames()
        with self.raw.session() as s:
            frame = _Frame(s)
            frames.append(frame)
            try:
                yield s
            finally:
                frames.pop()
        # reached only when the block exited normally and the store committed (or released the
        # savepoint into the outer session)
        if frames:
            frames[-1].events.extend(frame.events)
        elif frame.events:
            self._committed(frame.events)

    def record(self, event: Event) -> None:
        """Write ``event`` into the open tracked session (or a session of its own)."""
        frames = self._frames()
        if not frames:
            try:
                with self.session():
                    self.record(event)
            except Exception:  # the store failed: the change is recorded, the caller must
                # get its result; the event cannot be kept, so it is handed over once, unrecorded
                _log.exception("could not record %s in the outbox", type(event).__name__)
                self.events.append(event)
                self._pending().append(("", event))
                if self._scopes() == 0:
                    self._flush()
            return
        name, payload = encode_event(event)
        at = event.at
        stored = frames[-1].session.add_outbox_event(
            OutboxEvent(
                id=self.ids("ev"),
                name=name,
                payload=payload,
                created_at=at,
                next_attempt_at=min(at, self.now()),
            )
        )
        frames[-1].events.append((stored.id, event))

    def _committed(self, items: list[tuple[str, Event]]) -> None:
        self.events.extend(event for _, event in items)
        self._pending().extend(items)
        if self._scopes() == 0:
            self._flush()

    @contextmanager
    def scope(self) -> Iterator[None]:
        """One public engine call: its committed events are delivered when it ends (also when it
        raises an ``Exception``; a ``BaseException`` such as ``KeyboardInterrupt`` leaves them to
        ``deliver_events``)."""
        self._local.scopes = self._scopes() + 1
        try:
            yield
        except Exception:
            self._end_scope(deliver=True)
            raise
        except BaseException:
            self._end_scope(deliver=False)
            raise
        self._end_scope(deliver=True)

    def _end_scope(self, *, deliver: bool) -> None:
        self._local.scopes = self._scopes() - 1
        if self._scopes() == 0 and not self._frames():
            if deliver:
                self._flush()
            else:
                self._pending().clear()

    def _flush(self) -> None:
        pending = self._pending()
        if not pending:
            return
        items = list(pending)
        pending.clear()
        for _, event in [item for item in items if not item[0]]:  # not recorded: once
            self._hand_over(event)
        known = {event_id: event for event_id, event in items if event_id}
        if not known:
            return
        try:
            self.deliver(limit=len(known), ids=list(known), known=known)
        except Exception:  # the store failed: the events wait in the outbox for deliver_events
            _log.exception("could not deliver %d events now; deliver_events will", len(known))

    def _hand_over(self, event: Event) -> None:
        try:
            self.plugins.emit(event)
        except Exception as exc:
            self.errors.append((event, exc))
            _log.exception("a billing_core listener failed on %s", type(event).__name__)

    # -- delivery ------------------------------------------------------------------------------
    def retry_at(self, at: datetime, attempts: int) -> datetime:
        """When an event whose ``attempts``-th delivery failed at ``at`` is due again."""
        wait = min(self.retry_base * 2 ** max(attempts - 1, 0), self.retry_cap)
        return at + timedelta(seconds=wait)

    def deliver(
        self,
        *,
        limit: int,
        ids: Iterable[str] | None = None,
        known: Mapping[str, Event] | None = None,
    ) -> Delivery:
        """Claim up to ``limit`` due events (only ``ids`` when given), hand each to its
        listeners in sequence order, and record how each went."""
        worker = f"{self.worker_id}:{uuid.uuid4().hex[:12]}"  # one claim token per pass
        with self.raw.session() as s:
            claimed = s.claim_outbox(
                now=self.now(),
                worker=worker,
                lease_seconds=self.lease_seconds,
                limit=limit,
                ids=ids,
            )
        delivered: list[OutboxEvent] = []
        failed: list[tuple[OutboxEvent, str]] = []
        try:
            for record in claimed:
                event = (known or {}).get(record.id)
                try:
                    if event is None:
                        event = decode_event(record)
                    self.plugins.emit(event)
                except Exception as exc:
                    failed.append((record, f"{type(exc).__name__}: {exc}"))
                    if event is not None:
                        self.errors.append((event, exc))
                    _log.exception("a billing_core listener failed on %s", record.name)
                else:
                    delivered.append(record)
        finally:
            if delivered or failed:
                at = self.now()
                with self.raw.session() as s:
                    for record in delivered:
                        s.mark_outbox_delivered(record.id, worker=worker, at=at)
                    for record, error in failed:
                        retry = self.retry_at(at, record.attempts + 1)
                        s.mark_outbox_failed(record.id, worker=worker, error=error, retry_at=retry)
        return Delivery(
            claimed=len(claimed),
            delivered=len(delivered),
            failed=tuple((record.id, error) for record, error in failed),
        )
