"""The events the engine tells plugins about: one frozen attrs class per event hook.

The engine builds an event and hands it to ``Plugins.emit(event)``, which calls the event's hook
(``event.hook``, for example ``billing_core_refund_issued``) with ``event=event``. A plugin
implements the hook and receives the typed object, so mypy checks it, and the engine's calls stay
stable when an event gains a field (new fields are added with defaults, never removed).

Every event carries ``at``: the aware instant it happened, read from the engine's clock. The
engine records each event in its store's outbox, in the unit of work that produced it, and hands
it to the listeners after that unit of work has committed (at least once, retried while a
listener raises; see ``billing_core.engine.outbox``), so a listener sees the records in the store
and holds no lock. Each event class round-trips through ``billing_core.serialization``.

* ``RefundIssued`` (``billing_core_refund_issued``): a refund succeeded at the gateway;
* ``VoidIssued`` (``billing_core_void_issued``): a void succeeded at the gateway;
* ``RefundFailed`` (``billing_core_refund_failed``): a refund failed and waits in the retry queue;
* ``RefundGaveUp`` (``billing_core_refund_gave_up``): its last retry failed: tell the merchant;
* ``CertificateCancellation`` (``billing_core_certificate_cancellation_requested``): a
  certificate's cancellation was asked of its provider;
* ``OutcomeUnknown`` (``billing_core_outcome_unknown``): a gateway call may or may not have
  happened;
* ``OutcomeReconciled`` (``billing_core_outcome_reconciled``): reconciliation learnt its fate;
* ``SubscriptionAdded`` (``billing_core_subscription_added``): a subscription was created;
* ``SubscriptionRenewed`` (``billing_core_subscription_renewed``): it started a new term;
* ``CollectionAttempted`` (``billing_core_collection_attempted``): a charge attempt on one
  instrument was sent to the gateway;
* ``CollectionDeclined`` (``billing_core_collection_declined``): the gateway declined it (the next
  instrument of the payment order is tried, if there is one);
* ``CollectionSucceeded`` (``billing_core_collection_succeeded``): an attempt took the money;
* ``SubscriptionPastDue`` (``billing_core_subscription_past_due``): a renewal was not paid and
  the subscription went ``past_due`` instead of renewing.
* ``SubscriptionAbandoned`` (``billing_core_subscription_abandoned``): a pending order was never
  activated and is cancelled as abandoned;
* ``RenewalGaveUp`` (``billing_core_renewal_gave_up``): the dunning schedule of an unpaid
  renewal ran out: tell the merchant;
* ``InvoiceIssued`` (``billing_core_invoice_issued``): an invoice was issued (numbered, open);
* ``InvoicePaid`` (``billing_core_invoice_paid``): a payment was recorded against an invoice;
* ``InvoiceVoided`` (``billing_core_invoice_voided``): an invoice was voided;
* ``InvoiceMarkedUncollectible`` (``billing_core_invoice_marked_uncollectible``): an invoice was
  written off (by hand, or when it became delinquent); a late payment is still taken;
* ``OutsidePaymentRecorded`` (``billing_core_outside_payment_recorded``): money received outside
  the gateway (a cheque, a wire) was recorded on an invoice;
* ``CreditMemoCreated`` (``billing_core_credit_memo_created``): a credit memo became store
  credit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar

import attrs

from ..instruments import PaymentInstrument
from ..invoices import Invoice
from ..model import Certificate, Subscription, Transaction
from ..money import Money
from ..timeutil import require_aware
from .protocols import CancellationState, GatewayOutcome, GatewayRequest
from .records import CreditMemo, QueueEntry

__all__ = [
    "CertificateCancellation",
    "CollectionAttempted",
    "CollectionDeclined",
    "CollectionGaveUp",
    "CollectionSucceeded",
    "CreditMemoCreated",
    "Event",
    "InvoiceIssued",
    "InvoiceMarkedUncollectible",
    "InvoicePaid",
    "InvoiceVoided",
    "OutcomeReconciled",
    "OutcomeUnknown",
    "OutsidePaymentRecorded",
    "RefundFailed",
    "RefundGaveUp",
    "RefundIssued",
    "RenewalGaveUp",
    "SubscriptionAbandoned",
    "SubscriptionAdded",
    "SubscriptionCancelledForDelinquency",
    "SubscriptionPastDue",
    "SubscriptionRenewed",
    "VoidIssued",
]


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _aware(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    require_aware(value, attribute.name)


@attrs.frozen(kw_only=True)
class Event:
    """The base of every event: ``at`` is when it happened; ``hook`` names the hook it goes to."""

    hook: ClassVar[str] = ""
    at: datetime = attrs.field(validator=_aware)


@attrs.frozen(kw_only=True)
class RefundIssued(Event):
    """A refund went through: ``refund`` is the new refund transaction, ``original`` the charge
    it refunds (already updated: ``refunded`` includes this refund)."""

    hook: ClassVar[str] = "billing_core_refund_issued"
    refund: Transaction
    original: Transaction
    gateway: str
    retried: bool = False  # True when it went through on a retry from the queue


@attrs.frozen(kw_only=True)
class VoidIssued(Event):
    """A void went through: ``void`` is the new void transaction, ``original`` the voided charge
    (or released authorization)."""

    hook: ClassVar[str] = "billing_core_void_issued"
    void: Transaction
    original: Transaction
    gateway: str


@attrs.frozen(kw_only=True)
class RefundFailed(Event):
    """A refund attempt failed and the refund waits in the retry queue until
    ``entry.next_attempt_at``. ``error`` is the gateway's reason (its decline message)."""

    hook: ClassVar[str] = "billing_core_refund_failed"
    entry: QueueEntry
    error: str
    decline_code: str | None = None


@attrs.frozen(kw_only=True)
class RefundGaveUp(Event):
    """The last retry of a refund failed: it left the queue and the merchant must be told.

    ``notify_emails`` are the merchant's notify emails; ``subject`` and ``message`` are the notice
    to send them (the message names the transaction, the amount and every attempt), and
    ``detail`` is the same notice as a JSON-ready mapping for plugins that render their own.
    """

    hook: ClassVar[str] = "billing_core_refund_gave_up"
    entry: QueueEntry
    notify_emails: tuple[str, ...] = attrs.field(converter=_strings)
    subject: str
    message: str
    detail: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class CertificateCancellation(Event):
    """A cancellation of ``certificate`` was asked of ``provider``. ``state`` is ``completed`` for
    a certificate that was not issued yet (cancelled at once) and ``requested`` for an issued one:
    the customer must confirm it in the provider's portal before it can be refunded."""

    hook: ClassVar[str] = "billing_core_certificate_cancellation_requested"
    certificate: Certificate
    state: CancellationState
    provider: str


@attrs.frozen(kw_only=True)
class OutcomeUnknown(Event):
    """A gateway call answered ``unknown`` (a timeout after sending): ``transaction`` is kept
    with status ``unknown`` until reconciliation asks the gateway's ``lookup``; ``request`` is
    the call, whose transaction id and key the lookup uses."""

    hook: ClassVar[str] = "billing_core_outcome_unknown"
    transaction: Transaction
    request: GatewayRequest
    gateway: str


@attrs.frozen(kw_only=True)
class OutcomeReconciled(Event):
    """Reconciliation learnt the fate of an unknown call from the gateway's ``lookup``:
    ``outcome`` is what the gateway reported, ``transaction`` the record as now stored."""

    hook: ClassVar[str] = "billing_core_outcome_reconciled"
    transaction: Transaction
    outcome: GatewayOutcome
    gateway: str


@attrs.frozen(kw_only=True)
class SubscriptionAdded(Event):
    """A subscription was created; ``charge`` is the transaction that paid for its first term,
    if one was taken."""

    hook: ClassVar[str] = "billing_core_subscription_added"
    subscription: Subscription
    charge: Transaction | None = None


@attrs.frozen(kw_only=True)
class SubscriptionRenewed(Event):
    """A subscription started a new term (``subscription`` as renewed, with the renewal
    inventory in effect); ``charge`` is the renewal's transaction, if one was taken."""

    hook: ClassVar[str] = "billing_core_subscription_renewed"
    subscription: Subscription
    charge: Transaction | None = None


@attrs.frozen(kw_only=True)
class CollectionAttempted(Event):
    """Attempt number ``attempt`` (from 1) of a charge was sent to ``gateway``: ``transaction``
    is the sale written ahead for it, ``instrument`` what it is charged on (None: the gateway's
    default for the customer)."""

    hook: ClassVar[str] = "billing_core_collection_attempted"
    transaction: Transaction
    instrument: PaymentInstrument | None
    attempt: int
    gateway: str


@attrs.frozen(kw_only=True)
class CollectionDeclined(Event):
    """The gateway declined attempt ``attempt``; ``next_instrument_id`` is the instrument tried
    next (None: none is left, the charge is declined)."""

    hook: ClassVar[str] = "billing_core_collection_declined"
    transaction: Transaction
    instrument: PaymentInstrument | None
    attempt: int
    gateway: str
    decline_code: str | None = None
    message: str = ""
    next_instrument_id: str | None = None


@attrs.frozen(kw_only=True)
class CollectionSucceeded(Event):
    """Attempt ``attempt`` took the money: ``transaction`` is the completed sale."""

    hook: ClassVar[str] = "billing_core_collection_succeeded"
    transaction: Transaction
    instrument: PaymentInstrument | None
    attempt: int
    gateway: str


@attrs.frozen(kw_only=True)
class SubscriptionPastDue(Event):
    """A renewal was not paid (declined, blocked, or no usable instrument): ``subscription`` is
    stored ``past_due`` on its old term, nothing renewed; ``explanation`` says why."""

    hook: ClassVar[str] = "billing_core_subscription_past_due"
    subscription: Subscription
    explanation: str
    charge: Transaction | None = None


@attrs.frozen(kw_only=True)
class CollectionGaveUp(Event):
    """Automatic collection of ``invoice`` gave up: every try of the dunning schedule failed
    (``attempts`` in all). The merchant's ``notify_emails`` are to be told; the invoice stays
    open (it can still be paid by hand or recorded as paid outside the gateway)."""

    hook: ClassVar[str] = "billing_core_collection_gave_up"
    invoice: Invoice
    attempts: int
    notify_emails: tuple[str, ...] = attrs.field(converter=_strings)
    explanation: str
    subscription: Subscription | None = None


@attrs.frozen(kw_only=True)
class SubscriptionAbandoned(Event):
    """A pending order was never activated: ``subscription`` was cancelled as abandoned on its
    ``abandon_on`` (``rules.collection.assess_pending``); nothing was ever charged for it."""

    hook: ClassVar[str] = "billing_core_subscription_abandoned"
    subscription: Subscription
    explanation: str


@attrs.frozen(kw_only=True)
class RenewalGaveUp(Event):
    """``renew_due`` gave up chasing ``subscription``'s unpaid renewal: every try of the dunning
    schedule failed (``attempts`` in all). The merchant's ``notify_emails`` are to be told; the
    subscription stays ``past_due`` until it is paid or cancelled for delinquency."""

    hook: ClassVar[str] = "billing_core_renewal_gave_up"
    subscription: Subscription
    attempts: int
    notify_emails: tuple[str, ...] = attrs.field(converter=_strings)
    explanation: str


@attrs.frozen(kw_only=True)
class SubscriptionCancelledForDelinquency(Event):
    """``subscription`` was cancelled because ``invoice`` (or, when ``invoice`` is None, its
    renewal: ``engine.renewal_dunning``) was still unpaid at the end of the delinquency period
    (``rules.collection.assess_unpaid``: ``cancel_on``)."""

    hook: ClassVar[str] = "billing_core_subscription_cancelled_for_delinquency"
    subscription: Subscription
    explanation: str
    invoice: Invoice | None = None


@attrs.frozen(kw_only=True)
class InvoiceIssued(Event):
    """An invoice was issued: ``invoice`` is open (or paid, when nothing was due), numbered,
    its lines frozen and its totals computed."""

    hook: ClassVar[str] = "billing_core_invoice_issued"
    invoice: Invoice


@attrs.frozen(kw_only=True)
class InvoicePaid(Event):
    """A payment was recorded against ``invoice`` (as now stored: ``paid`` or still ``open``
    when partly paid); ``payment`` is the sale that paid it."""

    hook: ClassVar[str] = "billing_core_invoice_paid"
    invoice: Invoice
    payment: Transaction


@attrs.frozen(kw_only=True)
class InvoiceVoided(Event):
    """``invoice`` was voided: nothing is owed on it any more."""

    hook: ClassVar[str] = "billing_core_invoice_voided"
    invoice: Invoice


@attrs.frozen(kw_only=True)
class InvoiceMarkedUncollectible(Event):
    """``invoice`` was written off (``uncollectible``): by hand, or by ``collect_due`` when it
    was still unpaid at the end of its delinquency period. It can still be paid."""

    hook: ClassVar[str] = "billing_core_invoice_marked_uncollectible"
    invoice: Invoice
    explanation: str


@attrs.frozen(kw_only=True)
class OutsidePaymentRecorded(Event):
    """``amount`` received outside the gateway under ``reference`` (a cheque, a wire) was recorded
    on ``invoice`` (as now stored: ``paid``, or still ``open`` when it paid part of it). No
    gateway was called."""

    hook: ClassVar[str] = "billing_core_outside_payment_recorded"
    invoice: Invoice
    amount: Money
    reference: str


@attrs.frozen(kw_only=True)
class CreditMemoCreated(Event):
    """``memo`` was created: its total is now store credit of its customer (never a refund)."""

    hook: ClassVar[str] = "billing_core_credit_memo_created"
    memo: CreditMemo
