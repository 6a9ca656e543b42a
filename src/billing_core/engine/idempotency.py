"""Idempotency keys: a replay returns the stored result, and nothing runs twice.

Every money-moving engine call takes an idempotency key. The first call with a key records
``(operation, fingerprint of the parameters)`` as *in progress* in the store, inside its own
committed session, before anything else happens; a second worker that arrives with the same key
finds the record (the store's unique key makes the insert race safe) and gets either the stored
result (finished), an ``OperationInProgressError`` (still running: ask again later) or, when its
parameters differ, an ``IdempotencyError``. When the call finishes, its result's JSON form is
stored with the record, and every replay structures it back: same answer, no gateway call.

A call that raised bad input (``BillingError`` before any money moved) drops its record, so the
key can be used again with corrected parameters.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import attrs

from ..errors import ConflictError, IdempotencyError, InvalidValueError, OperationInProgressError
from ..plugins.protocols import Store
from ..plugins.records import IdempotencyRecord, IdempotencyState
from ..serialization import structure, unstructure

__all__ = ["fingerprint", "run_idempotent"]

R = TypeVar("R")


def fingerprint(operation: str, params: Mapping[str, Any]) -> str:
    """A stable hash of an operation and its parameters' JSON form."""
    text = json.dumps([operation, unstructure(dict(params))], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > 255:
        raise InvalidValueError(
            "must be a non-empty string of at most 255 characters",
            field="idempotency_key",
            value=key,
        )
    return key


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
) -> R:
    """Run ``body`` once per key; replays get the stored result (see the module docstring)."""
    check_key(key)
    print_ = fingerprint(operation, params)
    record = IdempotencyRecord(
        key=key, operation=operation, fingerprint=print_, created_at=now, owner=owner
    )
    try:
        with store.session() as session:
            session.insert_idempotency(record)
    except ConflictError:
        with store.session() as session:
            existing = session.get_idempotency(key)
        if existing is None:  # finished with bad input and dropped meanwhile: try once more
            return run_idempotent(
                store,
                key=key,
                operation=operation,
                params=params,
                result_type=result_type,
                now=now,
                owner=owner,
                body=body,
            )
        return _replay(existing, operation, print_, result_type)
    try:
        result = body()
    except InvalidValueError:
        _drop(store, record)
        raise
    except TypeError:
        _drop(store, record)
        raise
    done = attrs.evolve(
        record, state=IdempotencyState.COMPLETED, result={"value": unstructure(result)}
    )
    with store.session() as session:
        session.put_idempotency(done)
    return result


def _replay(existing: IdempotencyRecord, operation: str, print_: str, result_type: type[R]) -> R:
    if existing.operation != operation or existing.fingerprint != print_:
        raise IdempotencyError(
            f"idempotency key {existing.key!r} was first used for {existing.operation} with other "
            "parameters; use a new key for a new request",
            field="idempotency_key",
            value=existing.key,
        )
    if existing.state is not IdempotencyState.COMPLETED or existing.result is None:
        raise OperationInProgressError(
            f"the request with idempotency key {existing.key!r} is still in progress "
            f"(started {existing.created_at.isoformat()}); ask again later",
            field="idempotency_key",
            value=existing.key,
        )
    return structure(existing.result["value"], result_type)


def _drop(store: Store, record: IdempotencyRecord) -> None:
    """Forget a key whose call failed on bad input before any money moved."""
    with store.session() as session:
        session.delete_idempotency(record.key)
