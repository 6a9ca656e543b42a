"""The engine's foundation: its configuration, its events, the guard path every public call takes
(``engine.guards``) and the reads. ``BillingEngine`` (``engine.engine``) builds the flows on it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from ..decisions import Decision
from ..errors import ConfigurationError, NotFoundError, PermissionDeniedError
from ..model import Customer, InvoiceLine, Subscription, Transaction
from ..plugins.events import Event
from ..plugins.manager import GatewayMode, Plugins, gateway_mode
from ..plugins.protocols import CertificateProvider, PaymentGateway, Store
from ..plugins.records import AuditEntry, QueueEntry
from ..rules.permissions import DEFAULT_POLICY, SYSTEM_ACTOR, Actor, PermissionPolicy
from ..rules.refunds import RefundPolicy
from ..rules.retry import RetryPolicy
from . import guards
from .context import EngineContext, new_id
from .guards import actor as _actor
from .guards import ident
from .idempotency import run_idempotent

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
        self.events: list[Event] = []
        self.event_errors: list[tuple[Event, Exception]] = []
        self.ctx = EngineContext(
            store=self.store,
            gateways=gateways,
            default_gateway=default.name,
            certificate_provider=provider,
            clock=self.clock,
            refund_policy=refund_policy or RefundPolicy(),
            retry_policy=retry_policy or RetryPolicy(),
            notify_emails=tuple(notify_emails),
            worker_id=worker_id or f"{socket.gethostname()}:{os.getpid()}",
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

    def audit_log(
        self, *, subject_id: str | None = None, actor: Actor | None = None
    ) -> list[AuditEntry]:
        self._read("audit_log", actor)
        with self.store.session() as s:
            return s.audit_log(subject_id=subject_id)
