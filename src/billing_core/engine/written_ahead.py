"""Which engine call owns an idempotency key, and the transactions it wrote ahead.

``run_idempotent`` runs a call's body inside ``owning(key, token)``: the call's random token is
also stored on the key's ``IdempotencyRecord``. Every flow that writes a transaction ahead of a
gateway call calls ``note_write_ahead`` in the same store session as the insert. It locks the
key's record and

* adds the transaction's id to ``record.written_ahead`` (so a stuck key can later be judged by
  what its call wrote ahead: see ``idempotency``), and
* is the fence of the key's lease: when the record's token is no longer this call's (another
  worker took the key over after this call's lease ran out), it raises
  ``OperationInProgressError``, the session rolls back, and nothing is sent to the gateway.

Outside ``owning`` (renewals, whose keys are derived and have no record; flows called directly)
it does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import attrs

from ..errors import OperationInProgressError
from ..plugins.protocols import StoreSession

__all__ = ["note_write_ahead", "owning"]

_OWNER: ContextVar[tuple[str, str] | None] = ContextVar("billing_core_key_owner", default=None)


@contextmanager
def owning(key: str, token: str) -> Iterator[None]:
    """Run the block as the call ``token`` that owns ``key``."""
    reset = _OWNER.set((key, token))
    try:
        yield
    finally:
        _OWNER.reset(reset)


def note_write_ahead(s: StoreSession, key: str, transaction_id: str) -> None:
    """Record that the call owning ``key`` wrote ``transaction_id`` ahead (see the module
    docstring); raises ``OperationInProgressError`` when that call lost the key."""
    owner = _OWNER.get()
    if owner is None or owner[0] != key:
        return
    record = s.get_idempotency(key, lock=True)
    if record is None:
        return
    if record.token != owner[1]:  # taken over (and perhaps completed) by another call
        raise OperationInProgressError(
            f"the lease of this call on idempotency key {key!r} ran out and another worker "
            f"({record.owner}) took the key over; nothing was sent. Ask again with the same key "
            "for its result",
            field="idempotency_key",
            value=key,
        )
    s.put_idempotency(attrs.evolve(record, written_ahead=(*record.written_ahead, transaction_id)))
