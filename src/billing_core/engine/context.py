"""What every engine flow needs: the plugins, the clock, the policies, and a safe gateway call.

``call_gateway`` is the one place money moves. It checks the gateway's declared capabilities
first (a gateway that cannot void is never asked to), and turns anything a plugin does wrong (an
exception, an answer that is not a ``GatewayOutcome``) into an ``unknown`` outcome: the request
may have left, so the engine must reconcile rather than retry blindly.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from ..errors import ConfigurationError, PluginError
from ..instruments import PaymentInstrument
from ..model import Customer
from ..plugins.events import Event
from ..plugins.protocols import (
    CertificateProvider,
    GatewayOperation,
    GatewayOutcome,
    GatewayRequest,
    OutcomeStatus,
    PaymentGateway,
    Store,
    StoreSession,
)
from ..plugins.records import AuditEntry
from ..rules.refunds import RefundPolicy
from ..rules.retry import RetryPolicy
from ..timeutil import require_aware

__all__ = ["Chooser", "EngineContext", "call_gateway", "new_id"]

Chooser = Callable[[GatewayRequest, Customer | None, Mapping[str, PaymentGateway]], str | None]
"""``Plugins.choose_gateway``: the ``billing_core_choose_gateway`` hook's answer, or None."""


def new_id(prefix: str) -> str:
    """A fresh record id: ``prefix`` and 20 random hex digits (``tx-4f0c...``)."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


@attrs.define(kw_only=True)
class EngineContext:
    store: Store
    gateways: Mapping[str, PaymentGateway]
    default_gateway: str | None
    certificate_provider: CertificateProvider | None
    clock: Callable[[], datetime]
    refund_policy: RefundPolicy
    retry_policy: RetryPolicy
    notify_emails: tuple[str, ...]
    worker_id: str
    emit: Callable[[Event], None]
    ids: Callable[[str], str] = new_id
    lease_seconds: int = 300
    choose_gateway: Chooser | None = None
    receipt_prefix: str = "RCT-"
    """The numbering sequence of receipts (``engine.receipts``; ``InvoiceSettings``)."""

    def now(self) -> datetime:
        return require_aware(self.clock(), "clock()")

    def gateway(self, name: str | None = None) -> PaymentGateway:
        key = name or self.default_gateway
        if key is None:
            raise PluginError(
                "no payment gateway is configured: register one through the "
                "billing_core_payment_gateways hook or pass gateway= to BillingEngine"
            )
        try:
            return self.gateways[key]
        except KeyError:
            raise PluginError(
                f"no payment gateway named {key!r} (configured: {', '.join(sorted(self.gateways))})",
                field="gateway",
                value=key,
            ) from None

    def gateway_for(
        self,
        request: GatewayRequest,
        customer: Customer | None,
        instrument: PaymentInstrument | None = None,
    ) -> PaymentGateway:
        """The gateway that takes ``request``: the instrument's sticky gateway (its token lives
        there), else the one ``billing_core_choose_gateway`` names, else the default. A name
        that is not installed is a ``PluginError`` (raised before anything is written)."""
        if instrument is not None and instrument.gateway is not None:
            return self.gateway(instrument.gateway)
        if self.choose_gateway is not None:
            name = self.choose_gateway(request, customer, self.gateways)
            if name is not None:
                if name not in self.gateways:
                    raise PluginError(
                        f"billing_core_choose_gateway named {name!r}, which is not installed "
                        f"(configured: {', '.join(sorted(self.gateways))})",
                        field="gateway",
                        value=name,
                    )
                return self.gateways[name]
        return self.gateway()

    def certificates(self) -> CertificateProvider:
        if self.certificate_provider is None:
            raise ConfigurationError(
                "no certificate provider is configured: register one through the "
                "billing_core_certificate_providers hook or pass certificate_provider="
            )
        return self.certificate_provider

    def audit(
        self,
        session: StoreSession,
        *,
        action: str,
        subject_id: str,
        actor: str,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        session.append_audit(
            AuditEntry(
                at=self.now(),
                actor=actor,
                action=action,
                subject_id=subject_id,
                detail=dict(detail or {}),
            )
        )


_METHODS = {
    GatewayOperation.AUTHORIZE: "authorize",
    GatewayOperation.CAPTURE: "capture",
    GatewayOperation.SALE: "sale",
    GatewayOperation.VOID: "void",
    GatewayOperation.REFUND: "refund",
    GatewayOperation.PAYOUT: "payout",
}


def capability_problem(gateway: PaymentGateway, request: GatewayRequest) -> str | None:
    """Why ``gateway`` cannot take ``request``, by its declared capabilities; None if it can."""
    caps = gateway.capabilities
    op = request.operation
    if not caps.supports_currency(request.amount.currency):
        return f"gateway {gateway.name!r} does not support {request.amount.currency}"
    needs = {
        GatewayOperation.AUTHORIZE: caps.authorizations,
        GatewayOperation.VOID: caps.voids,
        GatewayOperation.REFUND: caps.refunds,
        GatewayOperation.PAYOUT: caps.payouts,
    }
    if not needs.get(op, True):
        return f"gateway {gateway.name!r} cannot {op.value}"
    return None


def call_gateway(gateway: PaymentGateway, request: GatewayRequest) -> GatewayOutcome:
    """Call ``gateway`` for ``request``; a misbehaving plugin yields ``unknown``, never a crash."""
    problem = capability_problem(gateway, request)
    if problem is not None:
        return GatewayOutcome(status=OutcomeStatus.NOT_SENT, message=problem)
    method = getattr(gateway, _METHODS[request.operation])
    try:
        outcome = method(request)
    except Exception as exc:  # a plugin's bug or a network library's error: it may have left
        return GatewayOutcome(
            status=OutcomeStatus.UNKNOWN,
            message=f"gateway {gateway.name!r} raised {type(exc).__name__}: {exc}",
        )
    if not isinstance(outcome, GatewayOutcome):
        return GatewayOutcome(
            status=OutcomeStatus.UNKNOWN,
            message=f"gateway {gateway.name!r} answered {type(outcome).__name__}, "
            "not a GatewayOutcome",
        )
    return outcome


def lookup(gateway: PaymentGateway, transaction_id: str, key: str) -> GatewayOutcome:
    """Ask ``gateway`` what became of a call; a failing lookup is ``unknown``."""
    try:
        outcome = gateway.lookup(transaction_id, key)
    except Exception as exc:
        return GatewayOutcome(
            status=OutcomeStatus.UNKNOWN,
            message=f"lookup at {gateway.name!r} raised {type(exc).__name__}: {exc}",
        )
    if not isinstance(outcome, GatewayOutcome):
        return GatewayOutcome(status=OutcomeStatus.UNKNOWN, message="lookup answered nonsense")
    return outcome
