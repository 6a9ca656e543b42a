"""The records a store keeps besides the domain values: queue entries, idempotency, audit.

* ``QueueEntry``: a failed refund waiting to be tried again. It points at the refund transaction
  that was written ahead (and whose money stays reserved on the original while it waits), keeps
  the refund's original idempotency key (every retry reuses it, so a gateway never refunds twice),
  and records every attempt with its time and error. Each claim raises its ``fence`` (a fencing
  number) by one: a worker writes for an entry only while the stored entry is still ``claimed``
  with the fence it was handed, so a worker whose lease was taken over writes nothing.
* ``IdempotencyRecord``: what an engine call with a given key asked (a fingerprint of its
  parameters) and, once finished, what it answered (its JSON form). A replay returns the stored
  answer; the same key with other parameters is an error. While in progress it has an owner (one
  engine call, ``owner`` plus a random ``token``), a lease (``lease_until``) and the ids of the
  transactions the call wrote ahead (``written_ahead``), from which a stuck key is taken over.
* ``AuditEntry``: one line of the append-only audit log: who did what to which record, when.
* ``OutboxEvent``: one engine event in the outbox: recorded in the transaction of the change it
  describes, delivered to the listeners after commit (``delivered_at`` set), retried with
  backoff (``attempts``, ``last_error``, ``next_attempt_at``) while a listener fails. A
  deliverer claims an event by setting ``claimed_by`` and moving ``next_attempt_at`` to the end
  of its lease, so two deliverers never hold one event at once.
* ``MeteredClose``: a metered period of one subscription and metric that was closed, and the
  answer of that close. Its key ``(subscription_id, metric, start, end)`` is unique in a store,
  so a period is billed once whatever idempotency key a second close carries.
* ``CreditMemo``: money owed to a customer as store credit (never a refund): its items, its
  total, what is left of it (``remaining``) and the invoices that drew on it (``applied``).
* ``TaxProfile``: a customer's tax ids and tax-exemption documents (seed 004), oldest first.
* ``CouponRedemption``: a coupon redeemed on a customer's account (or one invoice): how many
  invoices it has discounted and, for an ``amount_off`` coupon, how much it has used.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs

from ..invoices import Coupon, CreditMemoItem, TaxExemption
from ..money import Money

__all__ = [
    "Attempt",
    "AuditEntry",
    "CouponRedemption",
    "CreditMemo",
    "IdempotencyRecord",
    "IdempotencyState",
    "MeteredClose",
    "OutboxEvent",
    "QueueEntry",
    "QueueState",
    "TaxProfile",
]


class QueueState(enum.StrEnum):
    QUEUED = "queued"  # waiting for next_attempt_at
    CLAIMED = "claimed"  # a worker holds it until lease_until
    SUCCEEDED = "succeeded"  # a retry went through
    GAVE_UP = "gave_up"  # the last retry failed; the merchant was notified


@attrs.frozen(kw_only=True)
class Attempt:
    """One try of a refund: when, and the error it ended with (empty when it succeeded)."""

    at: datetime
    outcome: str
    error: str = ""


def _to_attempts(value: Iterable[Attempt]) -> tuple[Attempt, ...]:
    return tuple(value)  # a typed converter: mypy's attrs plugin reads its parameter type


def _to_ids(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class QueueEntry:
    id: str
    refund_transaction_id: str
    original_transaction_id: str
    amount: Money
    idempotency_key: str
    created_at: datetime
    attempts: tuple[Attempt, ...] = attrs.field(default=(), converter=_to_attempts)
    next_attempt_at: datetime | None = None
    state: QueueState = QueueState.QUEUED
    claimed_by: str | None = None
    lease_until: datetime | None = None
    fence: int = 0  # the fencing number of the latest claim: raised by one at every claim

    def held_by(self, claim: QueueEntry) -> bool:
        """Whether ``claim`` (this entry as a worker claimed it) still holds the lease: the
        stored entry (``self``, read under its row lock) is claimed, by the same worker, with the
        same fencing number. Time plays no part: an expired lease is held until taken over."""
        return (
            self.state is QueueState.CLAIMED
            and self.fence == claim.fence
            and self.claimed_by == claim.claimed_by
        )

    @property
    def failures(self) -> int:
        """Failed attempts so far, the first one included."""
        return sum(1 for a in self.attempts if a.error)


class IdempotencyState(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


@attrs.frozen(kw_only=True)
class IdempotencyRecord:
    key: str
    operation: str
    fingerprint: str
    created_at: datetime
    state: IdempotencyState = IdempotencyState.IN_PROGRESS
    result: Mapping[str, Any] | None = None
    owner: str | None = None  # the worker executing it while in progress
    token: str | None = None  # the one engine call executing it (a random token per call)
    lease_until: datetime | None = None  # past it, an in-progress key may be taken over
    written_ahead: tuple[str, ...] = attrs.field(default=(), converter=_to_ids)
    """Ids of the transactions the call wrote ahead before calling a gateway."""


@attrs.frozen(kw_only=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    subject_id: str
    detail: Mapping[str, Any] = attrs.field(factory=dict)
    id: str | None = None  # assigned by the store (a sequence), in append order


@attrs.frozen(kw_only=True)
class MeteredClose:
    """A closed metered period: ``[start, end)`` of ``subscription_id``'s ``metric`` (``None``:
    every metric). ``result`` is the JSON form of the engine's answer to the first close;
    ``idempotency_key`` the key that close carried. ``start`` and ``end`` compare as instants."""

    subscription_id: str
    metric: str | None
    start: datetime
    end: datetime
    closed_at: datetime
    idempotency_key: str
    result: Mapping[str, Any] = attrs.field(factory=dict)


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _items(value: Iterable[CreditMemoItem]) -> tuple[CreditMemoItem, ...]:
    return tuple(value)


def _pairs(value: Iterable[tuple[str, Money]]) -> tuple[tuple[str, Money], ...]:
    return tuple((str(k), m) for k, m in value)


@attrs.frozen(kw_only=True)
class CreditMemo:
    """A credit memo of ``customer_id``: ``total`` (items plus their tax) became store credit;
    ``remaining`` is what upcoming invoices may still draw (oldest memo first, same currency);
    ``applied`` lists ``(invoice_id, amount)`` drawn so far. ``invoice_id`` is the invoice it
    credits, if any (then capped at what that invoice can still credit)."""

    id: str
    customer_id: str
    number: str
    items: tuple[CreditMemoItem, ...] = attrs.field(converter=_items)
    total: Money
    remaining: Money
    created_at: datetime
    reason: str = ""
    invoice_id: str | None = None
    applied: tuple[tuple[str, Money], ...] = attrs.field(default=(), converter=_pairs)
    explanation: str = ""

    @property
    def currency(self) -> str:
        return self.total.currency


@attrs.frozen(kw_only=True)
class CouponRedemption:
    """``coupon`` redeemed by ``customer_id`` at ``redeemed_at``: on the account (every upcoming
    invoice while it lasts) or, with ``invoice_id``, on that one draft invoice. ``periods_applied``
    counts the invoices it discounted, ``amount_used`` what an ``amount_off`` coupon has taken;
    ``finished`` once its duration (or amount) is used up."""

    id: str
    coupon: Coupon
    customer_id: str
    redeemed_at: datetime
    invoice_id: str | None = None
    periods_applied: int = 0
    amount_used: Money | None = None
    finished: bool = False


def _documents(value: Iterable[TaxExemption]) -> tuple[TaxExemption, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class TaxProfile:
    """``customer_id``'s tax ids (printed on its invoices) and tax-exemption documents: an
    invoice records the first document that exempts on its issue date (or the latest one)."""

    customer_id: str
    tax_ids: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    exemptions: tuple[TaxExemption, ...] = attrs.field(default=(), converter=_documents)


@attrs.frozen(kw_only=True)
class OutboxEvent:
    """An event in the outbox. ``name`` is the event's class name (``"RefundGaveUp"``),
    ``payload`` its JSON form (``billing_core.serialization``); ``sequence`` is assigned by the
    store when the event is added (increasing in insertion order). Pending while
    ``delivered_at`` is None; due once ``next_attempt_at`` is not after now."""

    id: str
    name: str
    payload: Mapping[str, Any]
    created_at: datetime
    next_attempt_at: datetime
    sequence: int | None = None
    delivered_at: datetime | None = None
    attempts: int = 0  # deliveries tried (the one that succeeded included)
    last_error: str = ""
    claimed_by: str | None = None  # the deliverer holding it until next_attempt_at

    @property
    def pending(self) -> bool:
        return self.delivered_at is None
