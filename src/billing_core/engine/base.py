"""The engine's foundation: its configuration, its events, the guard path every public call takes
(``engine.guards``) and the reads. ``BillingEngine`` (``engine.engine``) builds the flows on it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from ..decisions import Decision
from ..errors import ConfigurationError, NotFoundError, PermissionDeniedError
from ..model import Customer, InvoiceLine, Subscription, Transaction
from ..plugins.events import Event
from ..plugins.manager import GatewayMode, Plugins, gateway_mode
from ..plugins.protocols import CertificateProvider, PaymentGateway, Store
from ..plugins.records import AuditEntry, OutboxEvent, QueueEntry
from ..rules.permissions import DEFAULT_POLICY, SYSTEM_ACTOR, Actor, PermissionPolicy
from ..rules.refunds import RefundPolicy
from ..rules.retry import RetryPolicy
from . import guards
from .context import EngineContext, new_id
from .guards import actor as _actor
from .guards import ident
from .idempotency import run_idempotent
from .outbox import Delivery, Outbox

__all__ = ["EngineBase"]

R = TypeVar("R")
_log = logging.getLogger("billing_core.engine")


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class EngineBase:
    """Configuration, events, the guard path and the reads of a ``BillingEngine``."""

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
        keep_events: int = 1000,
    ) -> None:
        if plugins is not None and settings is not None:
            raise ConfigurationError(
                "give the settings to Plugins(settings=...) when passing plugins=, not to the "
                "engine (it would ignore them)",
                field="settings",
            )
        self.clock = clock or _wall_clock
        self.plugins = plugins or Plugins(clock=self.clock, settings=settings)
        self.store = self.plugins.store(store) if isinstance(store, str) else store
        gateways = dict(self.plugins.gateways())
        if isinstance(gateway, str) or gateway is None:
            default = self.plugins.gateway(gateway)  # PluginError now if there is none
        else:
            default = gateway
        gateways[default.name] = default
        self.gateway_mode: GatewayMode = gateway_mode(default)
        """``"sandbox"`` when payments are fake (the built-in sandbox), ``"live"`` otherwise."""
        implicit = gateway is None and self.plugins.default_gateway is None
        if implicit and self.gateway_mode is GatewayMode.SANDBOX:
            _log.info(
                "no gateway named: using the built-in sandbox gateway %r, payments are fake "
                "(pass gateway='sandbox' to say so, or name your gateway plugin)",
                default.name,
            )
        if isinstance(certificate_provider, str) or certificate_provider is None:
            providers = self.plugins.certificate_providers()
            provider = (
                self.plugins.certificate_provider(certificate_provider) if providers else None
            )
        else:
            provider = certificate_provider
        self.permissions = permissions
        worker = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.outbox = Outbox(
            store=self.store,
            plugins=self.plugins,
            now=self._now,
            worker_id=worker,
            ids=ids or new_id,
            lease_seconds=lease_seconds,
            keep_events=keep_events,
        )
        self.events: deque[Event] = self.outbox.events
        """The last ``keep_events`` events this engine committed (oldest first), delivered or
        not: a convenience for tests and consoles; the outbox (``outbox_events``) is the record."""
        self.event_errors: deque[tuple[Event, Exception]] = self.outbox.errors
        """The last ``keep_events`` listener failures, as ``(event, exception)``."""
        self.ctx = EngineContext(
            store=self.outbox.store,
            gateways=gateways,
            default_gateway=default.name,
            certificate_provider=provider,
            clock=self.clock,
            refund_policy=refund_policy or RefundPolicy(),
            retry_policy=retry_policy or RetryPolicy(),
            notify_emails=tuple(notify_emails),
            worker_id=worker,
            emit=self._emit,
            ids=ids or new_id,
            lease_seconds=lease_seconds,
            choose_gateway=self.plugins.choose_gateway,
        )
        self.guard = guards.Guard(self.ctx, permissions)

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def gateway(self) -> PaymentGateway:
        """The default payment gateway."""
        return self.ctx.gateway()

    @property
    def certificate_provider(self) -> CertificateProvider:
        return self.ctx.certificates()

    def _now(self) -> datetime:
        return self.ctx.now()

    def _emit(self, event: Event) -> None:
        """Record ``event`` in the outbox, in the store session open for this call (see
        ``engine.outbox``): the listeners get it after that session commits and the call ends.
        A listener that raises is logged, kept in ``event_errors`` and retried later: the money
        has already moved and been recorded, so the caller must get its result."""
        self.outbox.record(event)

    def _deliver(self, limit: int) -> Delivery:
        return self.outbox.deliver(limit=limit)

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

    def _guarded(
        self,
        method: str,
        who: Actor,
        deny: Callable[[Decision], R],
        body: Callable[[], R],
        *,
        customer_id: str | None = None,
        subscription_id: str | None = None,
        subject: str | None = None,
        also: str | None = None,
        keyed_by: tuple[str, Mapping[str, Any], type[R]] | None = None,
    ) -> R:
        """Steps 2 to 4 of the guard path (``engine.guards``; step 1, bad input, is done by the
        caller), then ``body``, once per idempotency key when ``keyed_by=(key, params, type)``."""
        with self.outbox.scope():  # its events reach the listeners once it has ended
            return self._guarded_call(
                method,
                who,
                deny,
                body,
                customer_id=customer_id,
                subscription_id=subscription_id,
                subject=subject,
                also=also,
                keyed_by=keyed_by,
            )

    def _guarded_call(
        self,
        method: str,
        who: Actor,
        deny: Callable[[Decision], R],
        body: Callable[[], R],
        *,
        customer_id: str | None,
        subscription_id: str | None,
        subject: str | None,
        also: str | None,
        keyed_by: tuple[str, Mapping[str, Any], type[R]] | None,
    ) -> R:
        denial = self.guard.permit(who, method)
        if denial is None and also is not None:
            denial = self.guard.permit(who, method, action=also)
        if denial is None:
            admitted = self.guard.admit(
                method,
                key=keyed_by[0] if keyed_by else None,
                customer_id=customer_id,
                subscription_id=subscription_id,
            )
            if admitted is True and keyed_by is not None:  # a replay: the stored answer
                return self._once(keyed_by[0], method, keyed_by[1], keyed_by[2], body)
            denial = admitted if isinstance(admitted, Decision) else None
        if denial is not None:
            target = subject or customer_id or subscription_id or who.id
            self.guard.audit_denial(who, method, target, denial)
            return deny(denial)
        if keyed_by is None:
            return body()
        return self._once(keyed_by[0], method, keyed_by[1], keyed_by[2], body)

    def _read(self, method: str, actor: Actor | None) -> None:
        """The guard of a read: a refused actor raises (a read has no result to answer with)."""
        denial = self.guard.permit(SYSTEM_ACTOR if actor is None else _actor(actor), method)
        if denial is not None:
            raise PermissionDeniedError(denial.explanation, field="actor", value=actor)

    # -- reading (a refused actor raises PermissionDeniedError; no actor = the host itself) -------
    def customer(self, customer_id: str, *, actor: Actor | None = None) -> Customer:
        self._read("customer", actor)
        ident(customer_id, "customer_id")
        with self.store.session() as s:
            return guards.customer(s, customer_id)

    def transaction(self, transaction_id: str, *, actor: Actor | None = None) -> Transaction:
        self._read("transaction", actor)
        ident(transaction_id, "transaction_id")
        with self.store.session() as s:
            t = s.get_transaction(transaction_id)
        if t is None:
            raise NotFoundError(f"no transaction {transaction_id!r}", field="transaction_id")
        return t

    def subscription(self, subscription_id: str, *, actor: Actor | None = None) -> Subscription:
        self._read("subscription", actor)
        ident(subscription_id, "subscription_id")
        with self.store.session() as s:
            return guards.subscription(s, subscription_id)

    def transactions(
        self,
        *,
        customer_id: str | None = None,
        parent_id: str | None = None,
        actor: Actor | None = None,
    ) -> list[Transaction]:
        self._read("transactions", actor)
        with self.store.session() as s:
            return s.list_transactions(customer_id=customer_id, parent_id=parent_id)

    def invoice_lines(
        self, subscription_id: str, *, actor: Actor | None = None
    ) -> list[InvoiceLine]:
        self._read("invoice_lines", actor)
        with self.store.session() as s:
            return s.invoice_lines(subscription_id)

    def refund_queue(self, *, actor: Actor | None = None) -> list[QueueEntry]:
        self._read("refund_queue", actor)
        with self.store.session() as s:
            return s.list_queue()

    def outbox_events(
        self, *, pending: bool | None = None, limit: int | None = None, actor: Actor | None = None
    ) -> list[OutboxEvent]:
        """The event outbox in sequence order (``pending=True``: not delivered yet; ``False``:
        delivered), each with its delivery record: ``delivered_at``, ``attempts``,
        ``last_error``, ``next_attempt_at``."""
        self._read("outbox_events", actor)
        with self.store.session() as s:
            return s.list_outbox(pending=pending, limit=limit)

    def audit_log(
        self, *, subject_id: str | None = None, actor: Actor | None = None
    ) -> list[AuditEntry]:
        self._read("audit_log", actor)
        with self.store.session() as s:
            return s.audit_log(subject_id=subject_id)
