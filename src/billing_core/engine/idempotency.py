"""Idempotency keys: a replay returns the stored result, and nothing runs twice.

Every money-moving engine call takes an idempotency key. The first call records
``(operation, fingerprint of the parameters)`` as *in progress* in the store, inside its own
committed session, before anything else happens; a second worker that arrives with the same key
finds the record (the store's unique key makes the insert race safe) and gets either the stored
result (finished), an ``OperationInProgressError`` (still running: ask again later) or, when its
parameters differ, an ``IdempotencyError``. When the call finishes, its result's JSON form is
stored with the record, and every replay structures it back: same answer, no gateway call.

A call that raised before writing anything ahead drops its record when the error is bad input
(a ``BillingError``, ``NotFoundError`` included, or a ``TypeError``), so the key can be used again
with corrected parameters. Any other ending keeps the key ``in_progress``, bound to what the call
wrote ahead, and ends its lease, so the stuck-key rule below decides at once; ``reconcile()``
completes the keys of charges and refunds whose records it resolved (``recover_keys``). A new key
for the same request (operation and fingerprint) is refused while such an ended key is
unresolved. The whole life is the table in docs/engine.md, "Idempotency keys: a key's life".

**Stuck keys.** An in-progress record belongs to one call (``owner``, a random ``token``) and has
a lease: ``lease_until = created_at + lease_seconds``. A call that died leaves its key in
progress; once the lease has run out, the next caller with the same key (and parameters) decides,
under the record's row lock, from the transactions the call wrote ahead (``written_ahead``):

* none: nothing moved, so it takes the key over (its own token, a new lease) and runs the call;
* any still ``unknown``/``pending``: ``OperationInProgressError``, asking to run ``reconcile()``;
* all resolved: it answers what the call would have answered, built from the reconciled records
  (``stuck_keys.recovered``: charges and refunds), and completes the key with it. No gateway is
  called again. Other calls (subscriptions, inventory, metered closes) stay in progress for an
  operator, because they write more than transactions.

The lease is fenced: a call that outlives its lease and was taken over fails at its next
write-ahead (``written_ahead.note_write_ahead``: ``OperationInProgressError``, nothing sent), and
never overwrites or drops the record of the call that took over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import attrs

from ..errors import (
    BillingError,
    ConflictError,
    IdempotencyError,
    OperationInProgressError,
    StoreError,
)
from ..model import TransactionStatus
from ..plugins.protocols import Store, StoreSession
from ..plugins.records import AuditEntry, IdempotencyRecord, IdempotencyState
from ..rules import limits
from ..serialization import structure, unstructure
from .results import ChargeResult, RefundResult
from .stuck_keys import recovered
from .written_ahead import owning

__all__ = ["fingerprint", "recover_keys", "run_idempotent"]

_log = logging.getLogger(__name__)
R = TypeVar("R")
_IN_DOUBT = (TransactionStatus.UNKNOWN, TransactionStatus.PENDING)


def fingerprint(operation: str, params: Mapping[str, Any]) -> str:
    """A stable hash of an operation and its parameters' JSON form."""
    text = json.dumps([operation, unstructure(dict(params))], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check_key(key: object) -> str:
    """An idempotency key: an id (``rules.limits.identifier``), checked before any write."""
    return limits.identifier(key, "idempotency_key")


DEFAULT_LEASE_SECONDS = 300
"""How long an in-progress key belongs to its call before another caller may take it over."""


@attrs.frozen
class _Existing:
    """What a caller that found the key taken does: replay ``result``, or run as ``record``."""

    result: object = None
    record: IdempotencyRecord | None = None


def run_idempotent(
    store: Store,
    *,
    key: str,
    operation: str,
    params: Mapping[str, Any],
    result_type: type[R],
    now: datetime,
    owner: str,
    body: Callable[[], R],
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
) -> R:
    """Run ``body`` once per key; replays get the stored result (see the module docstring)."""
    check_key(key)
    print_ = fingerprint(operation, params)
    record = IdempotencyRecord(
        key=key,
        operation=operation,
        fingerprint=print_,
        created_at=now,
        owner=owner,
        token=uuid.uuid4().hex,
        lease_until=now + timedelta(seconds=lease_seconds),
    )
    try:
        with store.session() as session:
            session.insert_idempotency(record)
            _refuse_unresolved_twin(session, record, lease_seconds)
    except ConflictError:
        found = _existing(store, record, result_type, lease_seconds)
        if found is None:  # finished with bad input and dropped meanwhile: try once more
            return run_idempotent(
                store,
                key=key,
                operation=operation,
                params=params,
                result_type=result_type,
                now=now,
                owner=owner,
                body=body,
                lease_seconds=lease_seconds,
            )
        if found.record is None:
            return cast(R, found.result)
        record = found.record
    try:
        with owning(key, record.token or ""):
            result = body()
    except Exception as exc:
        bad_input = isinstance(exc, BillingError | TypeError) and not isinstance(exc, StoreError)
        _ended(store, record, forget=bad_input)
        raise
    done = attrs.evolve(
        record, state=IdempotencyState.COMPLETED, result={"value": unstructure(result)}
    )
    with store.session() as session:
        current = session.get_idempotency(key, lock=True)
        if current is None or current.token == record.token:  # (else taken over: theirs wins)
            session.put_idempotency(attrs.evolve(done, written_ahead=_ids(current)))
    return result


_RECOVERABLE: Mapping[str, type[object]] = {
    "charge": ChargeResult,
    "refund_transaction": RefundResult,
    "refund_order": RefundResult,
}


def recover_keys(store: Store, *, now: datetime, owner: str, lease_seconds: int) -> list[str]:
    """Complete the keys of charges and refunds whose call ended without answering (lease run
    out or ended) once every transaction they wrote ahead is resolved (``reconcile()`` runs it
    after asking the gateways): the answer is built from the records, as a replay would, so the
    key converges without its caller. Returns the keys completed."""
    completed: list[str] = []
    for operation, result_type in _RECOVERABLE.items():
        with store.session() as s:
            stuck = [
                r
                for r in s.unresolved_idempotency(operation)
                if r.written_ahead and _expiry(r, lease_seconds) <= now
            ]
        for record in stuck:
            mine = attrs.evolve(record, created_at=now, owner=owner, token=uuid.uuid4().hex)
            try:
                with store.session() as s:
                    current = s.get_idempotency(record.key, lock=True)
                    if current is None or current.token != record.token:
                        continue  # finished or taken over meanwhile
                    if current.state is IdempotencyState.IN_PROGRESS:
                        _take_over(s, current, mine, result_type, lease_seconds)
                        completed.append(record.key)
            except OperationInProgressError:  # a record still in doubt: the next run
                continue
    return completed


def _ids(record: IdempotencyRecord | None) -> tuple[str, ...]:
    return record.written_ahead if record is not None else ()


def _existing(
    store: Store, mine: IdempotencyRecord, result_type: type[R], lease_seconds: int
) -> _Existing | None:
    """The key is taken: replay, raise, or take a stuck key over (see the module docstring)."""
    with store.session() as s:  # a plain read first: a lock would slow the running call down
        existing = s.get_idempotency(mine.key)
        found = _live(existing, mine, result_type, lease_seconds)
    if found is not None or existing is None:
        return found
    with store.session() as s:  # the lease ran out: decide under the record's row lock
        existing = s.get_idempotency(mine.key, lock=True)
        found = _live(existing, mine, result_type, lease_seconds)
        if found is not None or existing is None:
            return found
        return _take_over(s, existing, mine, result_type, lease_seconds)


def _live(
    existing: IdempotencyRecord | None,
    mine: IdempotencyRecord,
    result_type: type[R],
    lease_seconds: int,
) -> _Existing | None:
    """The replay of a finished call; raises while the call's lease runs; None otherwise."""
    if existing is None:
        return None
    _check_same(existing, mine.operation, mine.fingerprint)
    if existing.state is IdempotencyState.COMPLETED and existing.result is not None:
        return _Existing(result=structure(existing.result["value"], result_type))
    expires = _expiry(existing, lease_seconds)
    if mine.created_at < expires:
        raise _in_progress(existing, f"its lease runs until {expires.isoformat()}; ask again")
    return None


def _expiry(record: IdempotencyRecord, lease_seconds: int) -> datetime:
    return record.lease_until or record.created_at + timedelta(seconds=lease_seconds)


def _take_over(
    s: StoreSession,
    existing: IdempotencyRecord,
    mine: IdempotencyRecord,
    result_type: type[R],
    lease_seconds: int,
) -> _Existing:
    """The stuck-key rule (see the module docstring), under the record's row lock."""
    expires = _expiry(existing, lease_seconds)
    written = [(i, s.get_transaction(i)) for i in existing.written_ahead]
    doubt = [i for i, t in written if t is None or t.status in _IN_DOUBT]
    if doubt:
        raise _in_progress(
            existing,
            f"its lease ran out at {expires.isoformat()}, but the outcome of "
            f"{', '.join(doubt)}, which it wrote ahead, is unknown: run reconcile(), then "
            "ask again",
        )
    records = [t for _, t in written if t is not None]
    if not records:
        taken = attrs.evolve(
            existing, owner=mine.owner, token=mine.token, lease_until=mine.lease_until
        )
        s.put_idempotency(taken)
        _audit(s, existing, mine, "rerun")
        return _Existing(record=taken)
    answer = recovered(result_type, s, records)
    if answer is None:
        raise _in_progress(
            existing,
            f"its lease ran out at {expires.isoformat()} after it wrote ahead "
            f"{', '.join(existing.written_ahead)} (resolved); a {existing.operation} cannot "
            "be answered from those records alone: an operator must finish it",
        )
    s.put_idempotency(
        attrs.evolve(
            existing,
            state=IdempotencyState.COMPLETED,
            result={"value": unstructure(answer)},
        )
    )
    _audit(s, existing, mine, "recorded")
    return _Existing(result=answer)


def _audit(s: StoreSession, stuck: IdempotencyRecord, mine: IdempotencyRecord, how: str) -> None:
    s.append_audit(
        AuditEntry(
            at=mine.created_at,
            actor=mine.owner or "",
            action="idempotency.taken_over",
            subject_id=stuck.key,
            detail={
                "operation": stuck.operation,
                "previous_owner": stuck.owner,
                "lease_until": stuck.lease_until.isoformat() if stuck.lease_until else None,
                "written_ahead": list(stuck.written_ahead),
                "how": how,
            },
        )
    )


def _in_progress(existing: IdempotencyRecord, why: str) -> OperationInProgressError:
    return OperationInProgressError(
        f"the request with idempotency key {existing.key!r} is still in progress "
        f"(started {existing.created_at.isoformat()} by {existing.owner}): {why}",
        field="idempotency_key",
        value=existing.key,
    )


def _check_same(existing: IdempotencyRecord, operation: str, print_: str) -> None:
    if existing.operation != operation or existing.fingerprint != print_:
        raise IdempotencyError(
            f"idempotency key {existing.key!r} was first used for {existing.operation} with other "
            "parameters; use a new key for a new request",
            field="idempotency_key",
            value=existing.key,
        )


def _ended(store: Store, record: IdempotencyRecord, *, forget: bool) -> None:
    """The call raised: forget its key when it wrote nothing ahead and failed on bad input
    (``forget``: a ``BillingError`` such as not-found, or a ``TypeError``); otherwise keep the
    key bound to what it wrote ahead and end its lease, so the next caller decides by the
    stuck-key rule at once. Nothing happens when another call took the key over meanwhile,
    or when the store cannot be reached (the lease then runs out by itself)."""
    try:
        with store.session() as session:
            current = session.get_idempotency(record.key, lock=True)
            if current is None or current.token != record.token:
                return
            if forget and not current.written_ahead:
                session.delete_idempotency(record.key)
            else:
                session.put_idempotency(attrs.evolve(current, lease_until=current.created_at))
    except Exception:  # the store failed too: the original error is the caller's answer
        _log.warning("could not end the lease of idempotency key %r", record.key, exc_info=True)


def _refuse_unresolved_twin(s: StoreSession, mine: IdempotencyRecord, lease_seconds: int) -> None:
    """A new key for a request (same operation and parameters) whose earlier key is still
    in progress after its call ended (its lease ran out or was ended by an error) is refused:
    the earlier key is resolved by ``reconcile()`` and a replay with it, never by running the
    request again. Calls that are still running are not twins: identical requests may run at
    once under different keys (each is decided on the stored books)."""
    for other in s.unresolved_idempotency(mine.operation):
        if (
            other.key != mine.key
            and other.fingerprint == mine.fingerprint
            and _expiry(other, lease_seconds) <= mine.created_at
        ):
            raise OperationInProgressError(
                f"the same {mine.operation} is unresolved under idempotency key {other.key!r} "
                f"(started {other.created_at.isoformat()} by {other.owner}; its call ended "
                f"without answering): run reconcile(), then ask again with key {other.key!r} "
                "for its answer; a new key would run the request twice",
                field="idempotency_key",
                value=mine.key,
            )
