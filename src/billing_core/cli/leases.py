"""Step leases: one worker at a time runs a step that must not run twice at once.

Several ``billing-core worker`` processes may share one database. The refund queue needs no more
than it has (each entry is claimed with its own lease), but ``renew_due`` and ``reconcile`` each
read a list and act on all of it, so two workers running them at the same moment could both act
on one subscription or one transaction. Such steps run under a *step lease* (both under the one
named ``charges``, see ``steps``): a row
that names the worker holding it and until when, taken in one store transaction (the row lock on
PostgreSQL, the write lock on SQLite), renewed by a heartbeat thread while the step runs, and
released when it ends. A worker that finds the lease held skips the step for this pass; a worker
that dies leaves a lease that expires after ``seconds`` and is then taken over.

The lease is kept in the store's idempotency table (the ``Store`` protocol has no other
compare-and-set row every store offers): key ``billing_core.worker.lease:<name>``, operation
``worker.lease``, ``owner`` the worker's id, ``result["until"]`` the expiry. No engine call uses
keys of that form.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import attrs

from ..errors import ConflictError
from ..plugins.protocols import Store
from ..plugins.records import IdempotencyRecord

__all__ = ["LEASE_KEY_PREFIX", "Lease", "StepLeases"]

LEASE_KEY_PREFIX = "billing_core.worker.lease:"
_OPERATION = "worker.lease"
_log = logging.getLogger("billing_core.cli.worker")


@attrs.frozen(kw_only=True)
class Lease:
    """Who holds the lease of ``step`` and until when."""

    step: str
    owner: str
    until: datetime


def _lease(record: IdempotencyRecord, step: str) -> Lease:
    until = (record.result or {}).get("until")
    return Lease(
        step=step,
        owner=record.owner or "",
        until=datetime.fromisoformat(until) if isinstance(until, str) else record.created_at,
    )


class StepLeases:
    """Take, renew and release step leases for ``owner`` on ``store``, timed by ``clock``."""

    def __init__(
        self, store: Store, *, owner: str, seconds: float, clock: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.owner = owner
        self.seconds = seconds
        self.clock = clock

    def _record(self, step: str) -> IdempotencyRecord:
        now = self.clock()
        return IdempotencyRecord(
            key=LEASE_KEY_PREFIX + step,
            operation=_OPERATION,
            fingerprint=step,
            created_at=now,
            owner=self.owner,
            result={"until": (now + timedelta(seconds=self.seconds)).isoformat()},
        )

    def take(self, step: str, *, renew: bool = False) -> Lease | None:
        """Take (or with ``renew``, extend) the lease of ``step``: the held lease, or ``None``
        when another worker holds it (``holder(step)`` says who)."""
        record = self._record(step)
        try:
            with self.store.session() as s:
                current = s.get_idempotency(record.key, lock=True)
                if current is None:
                    if renew:
                        return None
                    s.insert_idempotency(record)
                else:
                    held = _lease(current, step)
                    mine = held.owner == self.owner
                    if (renew and not mine) or (not mine and held.until > record.created_at):
                        return None
                    s.put_idempotency(record)
        except ConflictError:  # another worker inserted it first
            return None
        return _lease(record, step)

    def holder(self, step: str) -> Lease | None:
        with self.store.session() as s:
            current = s.get_idempotency(LEASE_KEY_PREFIX + step)
        return None if current is None else _lease(current, step)

    def release(self, step: str) -> None:
        """Give the lease back, if this worker still holds it."""
        with self.store.session() as s:
            current = s.get_idempotency(LEASE_KEY_PREFIX + step, lock=True)
            if current is not None and current.owner == self.owner:
                s.delete_idempotency(current.key)

    @contextmanager
    def holding(self, step: str) -> Iterator[Lease | None]:
        """``with leases.holding("renewals") as lease:`` run the step when ``lease`` is not
        ``None``; a heartbeat renews it every third of its time until the block ends."""
        lease = self.take(step)
        if lease is None:
            yield None
            return
        done = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(step, done), name=f"lease:{step}", daemon=True
        )
        beat.start()
        try:
            yield lease
        finally:
            done.set()
            beat.join()
            self.release(step)

    def _heartbeat(self, step: str, done: threading.Event) -> None:
        while not done.wait(self.seconds / 3):
            try:
                renewed = self.take(step, renew=True)
            except Exception:  # a database blip: the next beat tries again
                _log.exception("could not renew the %s lease", step)
                continue
            if renewed is None:
                _log.warning("lost the %s lease to another worker while running it", step)
                return
