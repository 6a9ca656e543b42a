"""The ``BillingEngine``: the seed flows, end to end, against the configured plugins.

    from billing_core import BillingEngine
    from billing_core.rules.permissions import Actor

    engine = BillingEngine(store="sqlite:///billing.sqlite3", clock=clock,
                           notify_emails=["billing@example.com"])
    agent = Actor(id="agent-7", role="support_agent")
    engine.refund_transaction("tx-...", amount=Money("10.00", "USD"),
                              idempotency_key="ticket-4711", actor=agent)

Every money-moving call takes an ``idempotency_key`` and an ``actor``: a replay with the same key
returns the stored result without calling the gateway again; the same key with other parameters
raises ``IdempotencyError``. The engine reads time only from ``clock`` (a callable returning an
aware datetime), so tests and replays control it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import attrs

from ..errors import InvalidTypeError, NotFoundError, PrecisionError
from ..model import Customer, InvoiceLine, Subscription, SubscriptionState, Transaction, UsageEvent
from ..money import Money
from ..periods import Period
from ..plugins.events import CertificateCancellation, Event
from ..plugins.manager import Plugins
from ..plugins.protocols import CertificateProvider, PaymentGateway, Store
from ..plugins.records import AuditEntry, QueueEntry
from ..rules import metering
from ..rules.permissions import DEFAULT_POLICY, Action, Actor, PermissionDecision, PermissionPolicy
from ..rules.permissions import check as check_permission
from ..rules.refunds import RefundPolicy
from ..rules.retry import RetryPolicy
from ..timeutil import require_aware
from . import charging, refunding, subscriptions
from .context import EngineContext, new_id
from .idempotency import check_key, run_idempotent
from .results import (
    ChargeResult,
    CloseResult,
    InventoryResult,
    QueueRunResult,
    ReconcileResult,
    RefundOutcome,
    RefundResult,
    RenewalResult,
    SubscriptionResult,
)

__all__ = ["BillingEngine"]

R = TypeVar("R")
_log = logging.getLogger("billing_core.engine")


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _actor(actor: object) -> Actor:
    if not isinstance(actor, Actor):
        raise InvalidTypeError(
            f"must be an Actor (billing_core.rules.permissions.Actor), not {type(actor).__name__}",
            field="actor",
            value=actor,
        )
    return actor


def _id(value: object, field: str) -> str:
    """An id argument: a non-empty ``str`` (a store cannot look anything else up)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidTypeError(
            f"must be an id (a non-empty str), not {value!r}", field=field, value=value
        )
    return value


def _keyed(value: object, field: str) -> Mapping[str, Any]:
    """``value`` if it is a mapping keyed by non-empty ``str`` (certificate types); bad input
    otherwise (checked before the idempotency fingerprint, which needs JSON keys)."""
    if not isinstance(value, Mapping):
        raise InvalidTypeError(
            f"must be a mapping of certificate type to value, not {type(value).__name__}",
            field=field,
            value=value,
        )
    for key in value:
        if not isinstance(key, str) or not key:
            raise InvalidTypeError(
                f"keys must be certificate types (non-empty str), not {key!r}",
                field=field,
                value=key,
            )
    return value


def _certificates(value: object) -> Mapping[int | str, int] | None:
    """``certificates=`` of a refund: None, or a mapping keyed by line index or certificate id
    or type (the counts are checked by the rules)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidTypeError(
            f"must be a mapping of line to count, not {type(value).__name__}",
            field="certificates",
            value=value,
        )
    for key in value:
        if isinstance(key, bool) or not isinstance(key, int | str):
            raise InvalidTypeError(
                f"keys must be a line index or a certificate id or type, not {key!r}",
                field="certificates",
                value=key,
            )
    return value


class BillingEngine:
    """Runs the billing flows against a store, a payment gateway and a certificate provider.

    ``store`` is a ``Store`` or a URL opened through the plugins (``"memory://"``,
    ``"sqlite:///billing.sqlite3"``, ``"postgresql+psycopg://..."``). ``gateway`` and
    ``certificate_provider`` are provider objects or names; without them the plugins' defaults
    are used (the built-in sandboxes unless ``settings={"sandbox": False}``).
    """

    def __init__(
        self,
        *,
        store: Store | str,
        clock: Callable[[], datetime] | None = None,
        plugins: Plugins | None = None,
        gateway: PaymentGateway | str | None = None,
        certificate_provider: CertificateProvider | str | None = None,
        settings: Mapping[str, Any] | None = None,
        refund_policy: RefundPolicy | None = None,
        retry_policy: RetryPolicy | None = None,
        permissions: PermissionPolicy = DEFAULT_POLICY,
        notify_emails: Iterable[str] = (),
        worker_id: str | None = None,
        ids: Callable[[str], str] | None = None,
        lease_seconds: int = 300,
    ) -> None:
        self.clock = clock or _wall_clock
        self.plugins = plugins or Plugins(clock=self.clock, settings=settings)
        self.store = self.plugins.store(store) if isinstance(store, str) else store
        gateways = dict(self.plugins.gateways())
        if isinstance(gateway, str) or gateway is None:
            default = self.plugins.gateway(gateway) if gateways else None
        else:
            default = gateway
        if default is not None:
            gateways[default.name] = default
        if isinstance(certificate_provider, str) or certificate_provider is None:
            providers = self.plugins.certificate_providers()
            provider = (
                self.plugins.certificate_provider(certificate_provider) if providers else None
            )
        else:
            provider = certificate_provider
        self.permissions = permissions
        self.events: list[Event] = []
        self.event_errors: list[tuple[Event, Exception]] = []
        self.ctx = EngineContext(
            store=self.store,
            gateways=gateways,
            default_gateway=default.name if default is not None else None,
            certificate_provider=provider,
            clock=self.clock,
            refund_policy=refund_policy or RefundPolicy(),
            retry_policy=retry_policy or RetryPolicy(),
            notify_emails=tuple(notify_emails),
            worker_id=worker_id or f"{socket.gethostname()}:{os.getpid()}",
            emit=self._emit,
            ids=ids or new_id,
            lease_seconds=lease_seconds,
        )

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def gateway(self) -> PaymentGateway:
        """The default payment gateway."""
        return self.ctx.gateway()

    @property
    def certificate_provider(self) -> CertificateProvider:
        return self.ctx.certificates()

    def _emit(self, event: Event) -> None:
        """Tell the plugins. A listener that raises is logged and kept in ``event_errors``: the
        money has already moved and been recorded, so the caller must get its result."""
        self.events.append(event)
        try:
            self.plugins.emit(event)
        except Exception as exc:
            self.event_errors.append((event, exc))
            _log.exception("a billing_core plugin failed on %s", type(event).__name__)

    def _once(
        self,
        key: str,
        operation: str,
        params: Mapping[str, Any],
        result_type: type[R],
        body: Callable[[], R],
    ) -> R:
        return run_idempotent(
            self.store,
            key=key,
            operation=operation,
            params=params,
            result_type=result_type,
            now=self.ctx.now(),
            owner=self.ctx.worker_id,
            body=body,
            lease_seconds=self.ctx.lease_seconds,
        )

    # -- customers -------------------------------------------------------------------------------
    def add_customer(self, customer: Customer, *, actor: Actor) -> Customer:
        """Store (or update) a customer."""
        if not isinstance(customer, Customer):
            raise InvalidTypeError("must be a Customer", field="customer", value=customer)
        who = _actor(actor)
        with self.store.session() as s:
            s.put_customer(customer)
            self.ctx.audit(s, action="customer.saved", subject_id=customer.id, actor=who.id)
        return customer

    def blocklist_customer(self, customer_id: str, *, actor: Actor) -> PermissionDecision:
        """Blocklist a customer: admins only. A support agent gets a denial, not an exception."""
        who = _actor(actor)
        _id(customer_id, "customer_id")
        decision = check_permission(who, Action.BLOCKLIST_CUSTOMER, self.permissions)
        with self.store.session() as s:
            customer = s.get_customer(customer_id)
            if customer is None:
                raise NotFoundError(f"no customer {customer_id!r}", field="customer_id")
            if decision.allowed:
                s.put_customer(attrs.evolve(customer, blocklisted=True))
            self.ctx.audit(
                s,
                action="customer.blocklist" if decision.allowed else "customer.blocklist_denied",
                subject_id=customer_id,
                actor=who.id,
                detail={"role": who.role},
            )
        return decision

    # -- subscriptions ---------------------------------------------------------------------------
    def add_subscription(
        self,
        customer_id: str,
        *,
        term: Period,
        inventory: Mapping[str, int],
        unit_prices: Mapping[str, Money],
        idempotency_key: str,
        actor: Actor,
        start: date | None = None,
        auto_renew: bool = True,
        domains: Sequence[str] = (),
    ) -> SubscriptionResult:
        """Add a subscription (optionally backdated), charge it and order its certificates."""
        who = _actor(actor)
        _id(customer_id, "customer_id")
        if start is not None and not isinstance(start, date):
            raise InvalidTypeError(
                f"must be a date or None, not {type(start).__name__}", field="start", value=start
            )
        _keyed(inventory, "inventory")
        _keyed(unit_prices, "unit_prices")
        params = {
            "customer_id": customer_id,
            "term": term,
            "inventory": dict(inventory),
            "unit_prices": dict(unit_prices),
            "start": start,
            "auto_renew": auto_renew,
            "domains": list(domains),
        }
        return self._once(
            idempotency_key,
            "add_subscription",
            params,
            SubscriptionResult,
            lambda: subscriptions.add_subscription(
                self.ctx,
                customer_id,
                term=term,
                inventory=inventory,
                unit_prices=unit_prices,
                start=start,
                auto_renew=auto_renew,
                domains=domains,
                key=idempotency_key,
                actor=who.id,
            ),
        )

    def add_inventory(
        self,
        subscription_id: str,
        *,
        certificate_type: str,
        quantity: int,
        idempotency_key: str,
        actor: Actor,
    ) -> InventoryResult:
        """Add inventory mid-term: a prorated line on the next invoice."""
        who = _actor(actor)
        _id(subscription_id, "subscription_id")
        params = {
            "subscription_id": subscription_id,
            "certificate_type": certificate_type,
            "quantity": quantity,
        }
        return self._once(
            idempotency_key,
            "add_inventory",
            params,
            InventoryResult,
            lambda: subscriptions.add_inventory(
                self.ctx,
                subscription_id,
                certificate_type=certificate_type,
                quantity=quantity,
                actor=who.id,
            ),
        )

    def change_renewal_inventory(
        self,
        subscription_id: str,
        *,
        inventory: Mapping[str, int],
        actor: Actor,
    ) -> InventoryResult:
        """Change the inventory that renews next term (no charge now)."""
        who = _actor(actor)
        return subscriptions.change_renewal_inventory(
            self.ctx, subscription_id, inventory=inventory, actor=who.id
        )

    def suspend(self, subscription_id: str, *, actor: Actor) -> Subscription:
        return subscriptions.set_state(
            self.ctx, subscription_id, SubscriptionState.SUSPENDED, actor=_actor(actor).id
        )

    def reenable(self, subscription_id: str, *, actor: Actor) -> Subscription:
        return subscriptions.set_state(
            self.ctx, subscription_id, SubscriptionState.ACTIVE, actor=_actor(actor).id
        )

    def cancel(self, subscription_id: str, *, actor: Actor) -> Subscription:
        return subscriptions.set_state(
            self.ctx, subscription_id, SubscriptionState.CANCELLED, actor=_actor(actor).id
        )

    def renew_due(self, *, actor: Actor) -> list[RenewalResult]:
        """Renew every subscription whose term has ended (charged once per term: the renewal's
        idempotency key is derived from the subscription and the new term's start)."""
        return subscriptions.renew_due(self.ctx, actor=_actor(actor).id)

    # -- money ------------------------------------------------------------------------------------
    def charge(
        self,
        customer_id: str,
        amount: Money,
        *,
        idempotency_key: str,
        actor: Actor,
        description: str = "",
    ) -> ChargeResult:
        """A one-off sale."""
        who = _actor(actor)
        if not isinstance(amount, Money):
            raise InvalidTypeError("must be Money", field="amount", value=amount)
        _id(customer_id, "customer_id")
        if not amount.is_rounded:  # bad input: refused before anything is written
            raise PrecisionError(
                f"must be a whole number of {amount.currency} minor units",
                field="amount",
                value=amount,
            )
        params = {"customer_id": customer_id, "amount": amount, "description": description}
        return self._once(
            idempotency_key,
            "charge",
            params,
            ChargeResult,
            lambda: charging.charge(
                self.ctx,
                amount=amount,
                key=idempotency_key,
                actor=who.id,
                customer_id=customer_id,
                description=description,
            )[0],
        )

    def refund_transaction(
        self,
        transaction_id: str,
        *,
        idempotency_key: str,
        actor: Actor,
        amount: Money | None = None,
        certificates: Mapping[int | str, int] | None = None,
    ) -> RefundResult:
        """Refund (or void, while unsettled) a transaction: all that is left, an amount, or a
        number of certificates per line. The rules decide; a failed refund enters the queue."""
        who = _actor(actor)
        check_key(idempotency_key)
        _id(transaction_id, "transaction_id")
        certificates = _certificates(certificates)
        params = {
            "transaction_id": transaction_id,
            "amount": amount,
            "certificates": dict(certificates) if certificates else None,
        }
        return self._once(
            idempotency_key,
            "refund_transaction",
            params,
            RefundResult,
            lambda: self._refund(
                transaction_id, who, idempotency_key, amount=amount, certificates=certificates
            ),
        )

    def refund_order(
        self, transaction_id: str, *, idempotency_key: str, actor: Actor
    ) -> RefundResult:
        """Refund a whole order: void first, refund if it settled meanwhile."""
        who = _actor(actor)
        _id(transaction_id, "transaction_id")
        params = {"transaction_id": transaction_id}
        return self._once(
            idempotency_key,
            "refund_order",
            params,
            RefundResult,
            lambda: self._refund(
                transaction_id, who, idempotency_key, amount=None, certificates=None
            ),
        )

    def _refund(
        self,
        transaction_id: str,
        who: Actor,
        key: str,
        *,
        amount: Money | None,
        certificates: Mapping[int | str, int] | None,
    ) -> RefundResult:
        decision = check_permission(who, Action.REFUND_TRANSACTION, self.permissions)
        if not decision.allowed:
            return RefundResult(
                transaction_id=transaction_id,
                outcome=RefundOutcome.DENIED,
                reason=str(decision.reason),
                explanation=decision.explanation,
            )
        return refunding.refund(
            self.ctx,
            transaction_id,
            amount=amount,
            certificates=certificates,
            key=key,
            actor=who.id,
        )

    def process_refund_queue(
        self, *, now: datetime | None = None, limit: int = 100
    ) -> QueueRunResult:
        """Retry the failed refunds due at ``now`` (default: the clock)."""
        if now is not None:
            require_aware(now, "now")
        return refunding.process_refund_queue(self.ctx, now=now, limit=limit)

    def reconcile(self) -> ReconcileResult:
        """Ask the gateway about every transaction whose outcome is unknown, and record it."""
        return refunding.reconcile(self.ctx)

    # -- certificates ------------------------------------------------------------------------------
    def request_certificate_cancellation(
        self, certificate_id: str, *, actor: Actor
    ) -> CertificateCancellation:
        return subscriptions.request_certificate_cancellation(
            self.ctx, certificate_id, actor=_actor(actor).id
        )

    # -- usage -------------------------------------------------------------------------------------
    def record_usage(self, events: Iterable[UsageEvent]) -> int:
        """Store usage events; a duplicate id is ignored. Returns how many were new."""
        return subscriptions.record_usage(self.ctx, events)

    def close_metered_period(
        self,
        subscription_id: str,
        *,
        price: metering.MeteredPrice,
        start: datetime,
        end: datetime,
        idempotency_key: str,
        actor: Actor,
        metric: str | None = None,
    ) -> CloseResult:
        """Close ``[start, end)`` of a metered price into invoice lines (once per key)."""
        who = _actor(actor)
        _id(subscription_id, "subscription_id")
        require_aware(start, "start")
        require_aware(end, "end")
        params = {
            "subscription_id": subscription_id,
            "start": start,
            "end": end,
            "metric": metric,
            "price": repr(price),
        }
        return self._once(
            idempotency_key,
            "close_metered_period",
            params,
            CloseResult,
            lambda: subscriptions.close_metered_period(
                self.ctx,
                subscription_id,
                price=price,
                start=start,
                end=end,
                metric=metric,
                actor=who.id,
            ),
        )

    # -- reading -----------------------------------------------------------------------------------
    def transaction(self, transaction_id: str) -> Transaction:
        _id(transaction_id, "transaction_id")
        with self.store.session() as s:
            t = s.get_transaction(transaction_id)
        if t is None:
            raise NotFoundError(f"no transaction {transaction_id!r}", field="transaction_id")
        return t

    def subscription(self, subscription_id: str) -> Subscription:
        _id(subscription_id, "subscription_id")
        with self.store.session() as s:
            sub = s.get_subscription(subscription_id)
        if sub is None:
            raise NotFoundError(f"no subscription {subscription_id!r}", field="subscription_id")
        return sub

    def transactions(
        self, *, customer_id: str | None = None, parent_id: str | None = None
    ) -> list[Transaction]:
        with self.store.session() as s:
            return s.list_transactions(customer_id=customer_id, parent_id=parent_id)

    def invoice_lines(self, subscription_id: str) -> list[InvoiceLine]:
        with self.store.session() as s:
            return s.invoice_lines(subscription_id)

    def refund_queue(self) -> list[QueueEntry]:
        with self.store.session() as s:
            return s.list_queue()

    def audit_log(self, *, subject_id: str | None = None) -> list[AuditEntry]:
        with self.store.session() as s:
            return s.audit_log(subject_id=subject_id)
