"""What a plugin provides: payment gateways, certificate providers and stores, as typed Protocols.

A plugin returns objects that satisfy these Protocols from its hooks (see ``hookspecs``); mypy
checks a plugin author's class against them, and the contract suites in ``billing_core.testing``
check its behaviour.

**Gateways** move money. Every call carries billing_core's own transaction id and an idempotency
key, and answers with a ``GatewayOutcome`` whose ``status`` is one of:

* ``succeeded``: done; ``reference`` is the gateway's id for it;
* ``pending``: accepted, not final yet (ask ``lookup`` later);
* ``declined``: refused, nothing happened (``decline_code`` and ``message`` say why; a void of a
  charge that has settled meanwhile is declined with ``DECLINE_ALREADY_SETTLED``);
* ``not_sent``: the request never left (connection refused, validation before sending): nothing
  happened, safe to retry with the same key;
* ``unknown``: it may or may not have happened (a timeout after sending). Never retry blindly:
  reconcile by asking ``lookup`` with the same transaction id and key.

A gateway declares what it can do as data (``GatewayCapabilities``), checked before any call.

**Stores** keep the records. All reads and writes happen inside ``store.session()``, one atomic
unit of work: a read with ``lock=True`` holds the record against other workers until the session
ends (``SELECT ... FOR UPDATE`` on PostgreSQL, a write transaction on SQLite, a lock in memory),
and every write of the session lands together or not at all. The store enforces the money
invariant itself: it refuses to write a transaction whose refunded plus reserved total exceeds
its amount.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Protocol, runtime_checkable

import attrs

from ..blocklists import BlocklistEntry
from ..instruments import PaymentInstrument
from ..invoices import Invoice, InvoiceStatus
from ..model import (
    Certificate,
    CertificateStatus,
    Customer,
    InvoiceLine,
    Subscription,
    SubscriptionState,
    Transaction,
    TransactionStatus,
    UsageEvent,
)
from ..money import Money
from ..wallets import Wallet
from .records import (
    AuditEntry,
    CouponRedemption,
    CreditMemo,
    IdempotencyRecord,
    MeteredClose,
    OutboxEvent,
    QueueEntry,
    QueueState,
    TaxProfile,
)

__all__ = [
    "DECLINE_ALREADY_SETTLED",
    "CancellationState",
    "CertificateProvider",
    "GatewayCapabilities",
    "GatewayOperation",
    "GatewayOutcome",
    "GatewayRequest",
    "OutcomeStatus",
    "PaymentGateway",
    "Store",
    "StoreSession",
]

DECLINE_ALREADY_SETTLED = "already_settled"
"""The decline code of a void refused because the charge settled meanwhile: refund instead."""


class OutcomeStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"
    DECLINED = "declined"
    NOT_SENT = "not_sent"
    UNKNOWN = "unknown"


class GatewayOperation(enum.StrEnum):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    SALE = "sale"
    VOID = "void"
    REFUND = "refund"
    PAYOUT = "payout"


@attrs.frozen(kw_only=True)
class GatewayRequest:
    """One call to a gateway.

    ``transaction_id`` is billing_core's id of the transaction this call creates (the sale, the
    refund); ``parent_reference`` is the gateway's reference of the transaction it acts on (the
    charge being captured, voided or refunded), ``parent_transaction_id`` billing_core's id of it.
    ``instrument`` is the payment instrument a sale or authorization is charged on (None: the
    gateway's own default for the customer); a gateway declines an inactive or expired one, as
    a card network does.
    """

    operation: GatewayOperation
    transaction_id: str
    idempotency_key: str
    amount: Money
    parent_transaction_id: str | None = None
    parent_reference: str | None = None
    customer_id: str | None = None
    description: str = ""
    instrument: PaymentInstrument | None = None


@attrs.frozen(kw_only=True)
class GatewayOutcome:
    """What a gateway answered. See the module docstring for the meaning of each status."""

    status: OutcomeStatus
    reference: str | None = None
    amount: Money | None = None
    settled: bool = False
    decline_code: str | None = None
    message: str = ""

    @property
    def final(self) -> bool:
        """True for succeeded and declined: the money's fate is known."""
        return self.status in (OutcomeStatus.SUCCEEDED, OutcomeStatus.DECLINED)


@attrs.frozen(kw_only=True)
class GatewayCapabilities:
    """What a gateway can do, declared as data and checked before a call."""

    authorizations: bool = True
    voids: bool = True
    refunds: bool = True
    partial_refunds: bool = True
    payouts: bool = False
    currencies: frozenset[str] | None = None  # None: every currency

    def supports_currency(self, currency: str) -> bool:
        return self.currencies is None or currency in self.currencies


@runtime_checkable
class PaymentGateway(Protocol):
    """A payment gateway: the only thing in billing_core that moves money."""

    name: str
    capabilities: GatewayCapabilities

    def authorize(self, request: GatewayRequest) -> GatewayOutcome: ...
    def capture(self, request: GatewayRequest) -> GatewayOutcome: ...
    def sale(self, request: GatewayRequest) -> GatewayOutcome: ...
    def void(self, request: GatewayRequest) -> GatewayOutcome: ...
    def refund(self, request: GatewayRequest) -> GatewayOutcome: ...
    def payout(self, request: GatewayRequest) -> GatewayOutcome: ...

    def lookup(self, transaction_id: str, idempotency_key: str) -> GatewayOutcome:
        """The outcome of an earlier call, by billing_core's transaction id and key.

        Answers ``unknown`` only when the gateway itself cannot tell; a call it never received
        answers ``not_sent``.
        """
        ...


class CancellationState(enum.StrEnum):
    REQUESTED = "requested"  # waiting for the customer to confirm in the provider's portal
    COMPLETED = "completed"


@runtime_checkable
class CertificateProvider(Protocol):
    """A certificate authority or reseller API."""

    name: str

    def order(
        self,
        *,
        certificate_id: str,
        domain: str,
        certificate_type: str,
        customer_id: str | None,
        idempotency_key: str,
    ) -> Certificate: ...

    def status(self, certificate_id: str) -> CertificateStatus: ...

    def certificate_for_domain(self, domain: str) -> Certificate | None:
        """The domain's current certificate (the latest one ordered), if any."""
        ...

    def request_cancellation(self, certificate_id: str) -> CancellationState:
        """Ask to cancel; an issued certificate completes only when the customer confirms."""
        ...


class StoreSession(Protocol):
    """One atomic unit of work on a store. Obtain with ``store.session()``."""

    # customers
    def get_customer(self, customer_id: str) -> Customer | None: ...
    def put_customer(self, customer: Customer) -> None: ...
    def insert_customer(self, customer: Customer) -> None:
        """Add a new customer; ``ConflictError`` if the id exists (also when another session
        added it concurrently: the check and the insert are one statement)."""
        ...

    def list_customers(self) -> list[Customer]:
        """Every customer, in the order they were first stored."""
        ...

    # payment instruments: one wallet per customer
    def get_wallet(self, customer_id: str, *, lock: bool = False) -> Wallet | None: ...
    def put_wallet(self, wallet: Wallet) -> None: ...

    # blocklist entries (kept when lifted: ``lifted_at`` is set)
    def get_blocklist_entry(self, entry_id: str) -> BlocklistEntry | None: ...
    def put_blocklist_entry(self, entry: BlocklistEntry) -> None: ...
    def list_blocklist(self) -> list[BlocklistEntry]:
        """Every entry, lifted and expired ones too, in the order they were first stored."""
        ...

    # subscriptions
    def get_subscription(
        self, subscription_id: str, *, lock: bool = False
    ) -> Subscription | None: ...
    def put_subscription(self, subscription: Subscription) -> None: ...
    def list_subscriptions(
        self,
        *,
        customer_id: str | None = None,
        states: Iterable[SubscriptionState] | None = None,
    ) -> list[Subscription]: ...

    # certificates
    def get_certificate(self, certificate_id: str) -> Certificate | None: ...
    def put_certificate(self, certificate: Certificate) -> None: ...
    def certificates_for_domain(self, domain: str) -> list[Certificate]: ...

    # transactions
    def get_transaction(self, transaction_id: str, *, lock: bool = False) -> Transaction | None: ...
    def insert_transaction(self, transaction: Transaction) -> None:
        """Add a new transaction; ``ConflictError`` if the id exists."""
        ...

    def update_transaction(self, transaction: Transaction) -> None:
        """Replace a stored transaction; ``NotFoundError`` if absent. Refuses (``InvalidAmountError``)
        a refunded plus reserved total above the amount, whatever the caller checked."""
        ...

    def list_transactions(
        self,
        *,
        customer_id: str | None = None,
        parent_id: str | None = None,
        statuses: Iterable[TransactionStatus] | None = None,
    ) -> list[Transaction]: ...

    # refund retry queue
    def put_queue_entry(self, entry: QueueEntry) -> None: ...
    def get_queue_entry(self, entry_id: str, *, lock: bool = False) -> QueueEntry | None: ...
    def list_queue(self, *, states: Iterable[QueueState] | None = None) -> list[QueueEntry]: ...
    def claim_due(
        self, *, now: datetime, worker: str, lease_seconds: int, limit: int
    ) -> list[QueueEntry]:
        """Claim up to ``limit`` entries due at ``now`` (queued, or claimed with an expired lease),
        marking them claimed by ``worker`` until ``now + lease_seconds``. Two workers never claim
        the same entry while a lease is live (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""
        ...

    # usage
    def add_usage_events(self, events: Sequence[UsageEvent]) -> int:
        """Store events, ignoring ids already stored; returns how many were new."""
        ...

    def usage_events(
        self, *, subscription_id: str, start: datetime, end: datetime, metric: str | None = None
    ) -> Iterator[UsageEvent]: ...

    # metered periods closed: one record per (subscription, metric, start, end)
    def insert_metered_close(self, record: MeteredClose) -> None:
        """Record a closed period; ``ConflictError`` if one with the same subscription, metric,
        start and end (as instants) exists: another close won. Race safe (a unique key), and
        the session goes on after the conflict."""
        ...

    def get_metered_close(
        self, *, subscription_id: str, metric: str | None, start: datetime, end: datetime
    ) -> MeteredClose | None: ...

    # invoice lines waiting for the next invoice (pending until an invoice takes them)
    def add_invoice_lines(
        self, subscription_id: str, lines: Sequence[InvoiceLine], *, billed_on: date | None = None
    ) -> None:
        """Append pending lines, due for an invoice from ``billed_on`` on (None: at once)."""
        ...

    def invoice_lines(self, subscription_id: str) -> list[InvoiceLine]:
        """Every line ever added for the subscription (pending or invoiced), in order."""
        ...

    def pending_invoice_lines(self, subscription_id: str) -> list[InvoiceLine]:
        """The lines no invoice has taken yet, in order."""
        ...

    def pending_line_groups(self, *, up_to: date) -> list[tuple[str, str]]:
        """``(subscription_id, currency)`` of every subscription holding pending lines due on or
        before ``up_to``, in the order their first such line was added."""
        ...

    def take_pending_lines(
        self, subscription_ids: Sequence[str], *, currency: str, up_to: date, invoice_id: str
    ) -> list[InvoiceLine]:
        """Mark the pending lines of ``subscription_ids`` in ``currency`` due on or before
        ``up_to`` as taken by ``invoice_id`` and return them (subscription order, then added
        order). A line is taken once: a concurrent session that took it first wins, and a rolled
        back session leaves it pending."""
        ...

    # invoices and their per-store gapless numbering
    def insert_invoice(self, invoice: Invoice) -> None:
        """Add a new invoice; ``ConflictError`` if the id (or its number) exists."""
        ...

    def update_invoice(self, invoice: Invoice) -> None:
        """Replace a stored invoice; ``NotFoundError`` if absent, ``ConflictError`` if its new
        number is another invoice's."""
        ...

    def get_invoice(self, invoice_id: str, *, lock: bool = False) -> Invoice | None: ...
    def list_invoices(
        self,
        *,
        customer_id: str | None = None,
        statuses: Iterable[InvoiceStatus] | None = None,
    ) -> list[Invoice]:
        """Invoices in the order they were first stored."""
        ...

    def next_invoice_number(self, prefix: str) -> int:
        """The next number of the sequence named ``prefix`` (1, 2, 3, ...): a counter row updated
        in this session, held until it ends, so numbers are gapless and unique even across
        processes, and a rolled back session gives its number back."""
        ...

    # credit memos (store credit) and coupon redemptions
    def put_credit_memo(self, memo: CreditMemo) -> None:
        """Insert or replace by id (a replaced memo keeps its place in lists)."""
        ...

    def get_credit_memo(self, memo_id: str, *, lock: bool = False) -> CreditMemo | None: ...
    def list_credit_memos(
        self, *, customer_id: str | None = None, lock: bool = False
    ) -> list[CreditMemo]:
        """Memos in the order they were first stored; ``lock=True`` holds them all until the
        session ends (an issuer drawing credit)."""
        ...

    def put_coupon_redemption(self, redemption: CouponRedemption) -> None:
        """Insert or replace by id (a replaced redemption keeps its place in lists)."""
        ...

    def list_coupon_redemptions(
        self, *, customer_id: str | None = None, coupon_id: str | None = None
    ) -> list[CouponRedemption]: ...

    # a customer's tax ids and tax-exemption documents
    def put_tax_profile(self, profile: TaxProfile) -> None: ...
    def get_tax_profile(self, customer_id: str) -> TaxProfile | None: ...

    # idempotency
    def get_idempotency(self, key: str, *, lock: bool = False) -> IdempotencyRecord | None: ...
    def put_idempotency(self, record: IdempotencyRecord) -> None:
        """Insert or replace by key. Inserting raises ``ConflictError`` only via
        ``insert_idempotency``."""
        ...

    def insert_idempotency(self, record: IdempotencyRecord) -> None:
        """Insert a new record; ``ConflictError`` if the key exists (another worker won)."""
        ...

    def unresolved_idempotency(self, operation: str) -> list[IdempotencyRecord]:
        """The ``in_progress`` records of ``operation`` (a new key for a request that is still
        unresolved under another key is refused: see ``engine.idempotency``)."""
        ...

    def delete_idempotency(self, key: str) -> None:
        """Forget a key (a call that failed on bad input before any money moved); nothing
        happens when it is absent."""
        ...

    # audit log: append-only
    def append_audit(self, entry: AuditEntry) -> None: ...
    def audit_log(self, *, subject_id: str | None = None) -> list[AuditEntry]: ...

    # event outbox: events recorded with the change they describe, delivered after commit
    def add_outbox_event(self, event: OutboxEvent) -> OutboxEvent:
        """Record a new pending event; returns it with the ``sequence`` the store assigned
        (increasing in insertion order). ``ConflictError`` if the id exists."""
        ...

    def claim_outbox(
        self,
        *,
        now: datetime,
        worker: str,
        lease_seconds: int,
        limit: int,
        ids: Iterable[str] | None = None,
    ) -> list[OutboxEvent]:
        """Claim up to ``limit`` due events (pending, ``next_attempt_at`` not after ``now``;
        only those in ``ids`` when given), in ``sequence`` order: each gets ``claimed_by=worker``
        and ``next_attempt_at = now + lease_seconds``. Two deliverers never claim one event
        while a lease is live (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""
        ...

    def mark_outbox_delivered(self, event_id: str, *, worker: str, at: datetime) -> bool:
        """The claimed event was delivered: ``delivered_at=at``, one more attempt, unclaimed.
        Writes nothing and answers False unless ``worker`` holds the claim."""
        ...

    def mark_outbox_failed(
        self, event_id: str, *, worker: str, error: str, retry_at: datetime
    ) -> bool:
        """A listener failed on the claimed event: one more attempt, ``last_error=error``, due
        again at ``retry_at``. Writes nothing and answers False unless ``worker`` holds it."""
        ...

    def list_outbox(
        self, *, pending: bool | None = None, limit: int | None = None
    ) -> list[OutboxEvent]:
        """The events in ``sequence`` order: the pending ones (``pending=True``), the delivered
        ones (``False``) or all; the first ``limit`` of them."""
        ...


@runtime_checkable
class Store(Protocol):
    """Where billing_core keeps its records."""

    name: str

    def session(self) -> AbstractContextManager[StoreSession]:
        """An atomic unit of work: commits on normal exit, rolls back on an exception."""
        ...

    def close(self) -> None: ...
