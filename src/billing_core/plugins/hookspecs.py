"""The hooks of billing_core: what a plugin can provide and what it can listen to.

A plugin is any module or object with functions named after these hooks, decorated with
``hookimpl``. It may take fewer arguments than the hook offers (pluggy passes the ones it names).
Third-party plugins are found through the ``billing_core`` entry-point group; the built-ins
(``billing_core.plugins.builtins``) are registered through these same hooks.

**Providers.** ``billing_core_payment_gateways``, ``billing_core_certificate_providers`` and
``billing_core_store`` hand the engine the objects it works with; they satisfy the Protocols in
``billing_core.plugins.protocols``. ``billing_core_choose_gateway`` picks the gateway for a
payment when several are installed. ``billing_core_known_settings`` declares the settings keys a
plugin reads (any other key is refused).

**Events.** Every other hook receives one event, a frozen attrs object from
``billing_core.plugins.events``, after the engine has committed what it describes. Event hooks
return nothing; an exception raised by one propagates to the engine's caller.

Every hook is named ``billing_core_*``, annotated, documented, and exercised by
``tests/test_hookspecs.py``, which fails for a hook that lacks any of these. ``docs/hooks.md`` is
generated from this module and checked against it by the same test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import pluggy

from ..model import Customer
from .events import (
    CertificateCancellation,
    CollectionAttempted,
    CollectionDeclined,
    CollectionGaveUp,
    CollectionSucceeded,
    CreditMemoCreated,
    InvoiceIssued,
    InvoiceMarkedUncollectible,
    InvoicePaid,
    InvoiceVoided,
    OutcomeReconciled,
    OutcomeUnknown,
    OutsidePaymentRecorded,
    RefundFailed,
    RefundGaveUp,
    RefundIssued,
    RenewalGaveUp,
    SubscriptionAbandoned,
    SubscriptionAdded,
    SubscriptionCancelledForDelinquency,
    SubscriptionPastDue,
    SubscriptionRenewed,
    VoidIssued,
)
from .protocols import CertificateProvider, GatewayRequest, PaymentGateway, Store

__all__ = ["PROJECT", "Clock", "hookimpl", "hookspec"]

PROJECT = "billing_core"
"""The pluggy project name, which is also the entry-point group third-party plugins use."""

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Clock = Callable[[], datetime]
"""A clock: called with no arguments, returns the current aware datetime (the engine's clock)."""


# -- providers ---------------------------------------------------------------------------------
@hookspec
def billing_core_payment_gateways(
    clock: Clock, settings: Mapping[str, Any]
) -> Iterable[PaymentGateway]:
    """Return the payment gateways this plugin provides.

    Called once per ``Plugins``; the gateways are kept for its lifetime. ``clock`` is the
    engine's clock and ``settings`` the host's plugin settings. Each gateway's ``name`` must be
    unique across all plugins: two plugins offering one name is a ``PluginError``.
    """
    raise NotImplementedError


@hookspec
def billing_core_certificate_providers(
    clock: Clock, settings: Mapping[str, Any]
) -> Iterable[CertificateProvider]:
    """Return the certificate providers this plugin provides.

    Called once per ``Plugins``, like ``billing_core_payment_gateways``; each provider's ``name``
    must be unique across all plugins.
    """
    raise NotImplementedError


@hookspec
def billing_core_known_settings() -> Mapping[str, str]:
    """Declare the settings keys this plugin reads, each with a one-line description.

    ``Plugins(settings=...)`` refuses a key that no registered plugin declares, naming it and
    the known ones (a misspelt ``"sandbx"`` must not be ignored); the check runs before the
    provider hooks are called. The built-ins declare ``sandbox``.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def billing_core_store(url: str, options: Mapping[str, Any]) -> Store | None:
    """Open the store that ``url`` names, or return None when this plugin does not handle it.

    The first plugin returning a store wins; plugins registered later are asked first, and the
    built-ins (``memory://``, ``sqlite:///path`` and ``postgresql://...``) last, so a plugin can
    take over a scheme. ``options`` are the host's other store settings.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def billing_core_choose_gateway(
    request: GatewayRequest,
    customer: Customer | None,
    gateways: Mapping[str, PaymentGateway],
) -> str | None:
    """Name the gateway that should take this payment, or return None to let the next plugin
    (and then the host's default) decide.

    ``gateways`` are the installed gateways by name; the answer must be one of them. Useful to
    route by currency, by customer (their country, their reseller) or by amount. The engine
    asks it for every charge attempt, before writing the sale ahead (``request.instrument`` is
    the instrument tried); an instrument with a sticky ``gateway`` goes there without asking.
    A name that is not installed is a ``PluginError`` and nothing is written.
    """
    raise NotImplementedError


# -- events ------------------------------------------------------------------------------------
@hookspec
def billing_core_refund_issued(event: RefundIssued) -> None:
    """A refund succeeded at the gateway (directly or on a retry from the queue)."""


@hookspec
def billing_core_void_issued(event: VoidIssued) -> None:
    """A void succeeded at the gateway: the charge was cancelled before it settled."""


@hookspec
def billing_core_refund_failed(event: RefundFailed) -> None:
    """A refund attempt failed; the refund waits in the retry queue for its next attempt."""


@hookspec
def billing_core_refund_gave_up(event: RefundGaveUp) -> None:
    """The last retry of a refund failed: send ``event.message`` to ``event.notify_emails``.

    The refund has left the queue; nothing will retry it, so a person has to act.
    """


@hookspec
def billing_core_certificate_cancellation_requested(event: CertificateCancellation) -> None:
    """A certificate's cancellation was asked of its provider.

    ``event.state`` is ``requested`` when the customer still has to confirm it in the provider's
    portal (the certificate was issued): the refund can follow only after that.
    """


@hookspec
def billing_core_outcome_unknown(event: OutcomeUnknown) -> None:
    """A gateway call may or may not have happened: its transaction stays ``unknown`` until
    reconciliation asks the gateway (it is never retried blindly)."""


@hookspec
def billing_core_outcome_reconciled(event: OutcomeReconciled) -> None:
    """Reconciliation learnt the fate of an unknown gateway call and recorded it."""


@hookspec
def billing_core_subscription_added(event: SubscriptionAdded) -> None:
    """A subscription was created (and its first term charged, if there was a charge)."""


@hookspec
def billing_core_subscription_renewed(event: SubscriptionRenewed) -> None:
    """A subscription started a new term with its renewal inventory."""


@hookspec
def billing_core_collection_attempted(event: CollectionAttempted) -> None:
    """A charge attempt on one instrument was written ahead and is sent to the gateway.

    A charge tries the instruments of its payment order (``rules.collection.payment_order``) one
    attempt each, with its own gateway idempotency key (``<key>:sale``, then ``<key>:sale:2``...).
    """


@hookspec
def billing_core_collection_declined(event: CollectionDeclined) -> None:
    """The gateway declined a charge attempt. ``event.next_instrument_id`` is tried next, if any.

    Only a decline moves on to the next instrument: a timeout or an unknown answer may have
    charged the card, so it is reconciled, never retried on another card (that could charge
    twice).
    """


@hookspec
def billing_core_collection_succeeded(event: CollectionSucceeded) -> None:
    """A charge attempt took the money; ``event.instrument`` is the instrument that paid."""


@hookspec
def billing_core_subscription_past_due(event: SubscriptionPastDue) -> None:
    """A renewal was not paid: the subscription is ``past_due`` on its old term and did not renew.

    ``event.explanation`` says why (the decline, the blocklist entry, no usable instrument).
    """


@hookspec
def billing_core_collection_gave_up(event: CollectionGaveUp) -> None:
    """Automatic collection of an invoice gave up: the dunning schedule ran out.

    Tell the merchant (``event.notify_emails``); ``event.explanation`` has the figures. The
    invoice stays open: it can still be paid by hand or recorded as paid outside the gateway.
    """


@hookspec
def billing_core_subscription_abandoned(event: SubscriptionAbandoned) -> None:
    """A pending order was never activated: it was cancelled as abandoned on its ``abandon_on``
    (``abandon_pending_orders``). Nothing was charged for it."""


@hookspec
def billing_core_renewal_gave_up(event: RenewalGaveUp) -> None:
    """``renew_due`` gave up chasing an unpaid renewal (every retry of the dunning schedule
    failed): tell the merchant (``event.notify_emails``). The subscription stays past due until
    it is paid or cancelled for delinquency."""


@hookspec
def billing_core_subscription_cancelled_for_delinquency(
    event: SubscriptionCancelledForDelinquency,
) -> None:
    """A subscription was cancelled: its invoice (``event.invoice``), or its renewal
    (``event.invoice`` is None), was unpaid at the end of the delinquency period.

    ``event.explanation`` names what was unpaid, its due date and the cancellation date.
    """


@hookspec
def billing_core_invoice_issued(event: InvoiceIssued) -> None:
    """An invoice was issued: numbered, its lines frozen, its totals computed; ``open``, or
    ``paid`` when store credit or coupons left nothing to pay."""


@hookspec
def billing_core_invoice_paid(event: InvoicePaid) -> None:
    """A payment was recorded against an invoice (paid in full, or partly)."""


@hookspec
def billing_core_invoice_voided(event: InvoiceVoided) -> None:
    """An invoice was voided: nothing is owed on it any more."""


@hookspec
def billing_core_invoice_marked_uncollectible(event: InvoiceMarkedUncollectible) -> None:
    """An invoice was written off as uncollectible, by hand (``mark_uncollectible``) or because it
    was still unpaid at the end of its delinquency period (``collect_due``). Nothing is collected
    from it any more; a late payment is still taken."""


@hookspec
def billing_core_outside_payment_recorded(event: OutsidePaymentRecorded) -> None:
    """Money received outside the gateway (a cheque, a wire) was recorded on an invoice under the
    event's ``reference``; no gateway was called."""


@hookspec
def billing_core_credit_memo_created(event: CreditMemoCreated) -> None:
    """A credit memo was created and added to its customer's store credit."""
