"""Certificates as the engine orders and cancels them: the domain checks of an order, the
certificates it orders at the provider, and a cancellation request.

``subscriptions`` (``add_subscription``, ``add_inventory``) and ``certificate_refunds`` use
these; the rules are ``rules.certificates`` (one live certificate per domain, the domains of an
order reconciled with its quantities).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ..errors import NotFoundError
from ..model import Certificate
from ..plugins.events import CertificateCancellation
from ..plugins.protocols import StoreSession
from ..rules import certificates
from .context import EngineContext

__all__ = [
    "Ordered",
    "first_blocked",
    "order_certificates",
    "plan_certificates",
    "request_certificate_cancellation",
]


def first_blocked(
    ctx: EngineContext, plan: certificates.DomainPlan
) -> certificates.CertificateOrderDecision | None:
    """The first domain of ``plan`` that already has a live certificate (the store's records,
    then the provider's fresher view of the same ones), or None when every domain is free."""
    names = [domain for domain, _ in plan.assignments]
    with ctx.store.session() as s:
        stored = {name: s.certificates_for_domain(name) for name in names}
    for name in names:
        existing = list(stored[name])
        if ctx.certificate_provider is not None:
            current = ctx.certificate_provider.certificate_for_domain(name)
            existing.extend([current] if current is not None else [])
        verdict = certificates.assess_new_certificate(name, existing)
        if not verdict.allowed:
            return verdict
    return None


def plan_certificates(
    ctx: EngineContext, plan: certificates.DomainPlan
) -> list[tuple[str, str, str]]:
    """The certificates to order: ``(certificate_id, domain, type)``, one per named domain."""
    return [(ctx.ids("crt"), domain, t) for domain, t in plan.assignments]


@attrs.frozen(kw_only=True)
class Ordered:
    """The certificates of an order as the store keeps them: ``certificates`` (every planned
    one), and ``pending``: the ``(certificate, error)`` of those the provider failed to order."""

    certificates: tuple[Certificate, ...]
    pending: tuple[tuple[Certificate, str], ...] = ()

    def note(self) -> str:
        """A sentence for the result's explanation ("" when every certificate was ordered)."""
        if not self.pending:
            return ""
        which = ", ".join(f"{c.domain} ({error})" for c, error in self.pending)
        return (
            f" The provider could not order the certificate of {which} yet: the money and the "
            "order are recorded, the certificate is kept pending and each failure is logged as "
            "a follow-up (audit action certificate.order_pending, with its provider key) to "
            "order again."
        )

    def record(self, ctx: EngineContext, s: StoreSession, *, key: str, actor: str) -> None:
        """Store every certificate, and one follow-up audit line per pending one."""
        for cert in self.certificates:
            s.put_certificate(cert)
        for cert, error in self.pending:
            ctx.audit(
                s,
                action="certificate.order_pending",
                subject_id=cert.id,
                actor=actor,
                detail={
                    "domain": cert.domain,
                    "certificate_type": cert.certificate_type,
                    "subscription_id": cert.subscription_id,
                    "provider_key": f"{key}:cert:{cert.id}",
                    "error": error,
                },
            )


def order_certificates(
    ctx: EngineContext,
    cert_plan: Sequence[tuple[str, str, str]],
    *,
    customer_id: str,
    subscription_id: str,
    key: str,
    transaction_id: str | None,
) -> Ordered:
    """Order each planned certificate at the provider (idempotent by a key derived from the
    call's key and the certificate id), as the store will keep it. This runs after the money
    (or the inventory) is recorded, so a provider that fails is never the call's answer: the
    certificate is kept ``pending`` with a follow-up (``Ordered.pending``)."""
    made: list[Certificate] = []
    pending: list[tuple[Certificate, str]] = []
    for cert_id, domain, certificate_type in cert_plan:
        try:
            cert = ctx.certificates().order(
                certificate_id=cert_id,
                domain=domain,
                certificate_type=certificate_type,
                customer_id=customer_id,
                idempotency_key=f"{key}:cert:{cert_id}",
            )
        except Exception as exc:  # a provider's error, bad input included: the money moved
            cert = Certificate(
                id=cert_id,
                domain=domain,
                certificate_type=certificate_type,
                customer_id=customer_id,
            )
            pending.append(
                (_kept(cert, subscription_id, transaction_id), f"{type(exc).__name__}: {exc}")
            )
        made.append(_kept(cert, subscription_id, transaction_id))
    return Ordered(certificates=tuple(made), pending=tuple(pending))


def _kept(cert: Certificate, subscription_id: str, transaction_id: str | None) -> Certificate:
    return attrs.evolve(cert, subscription_id=subscription_id, transaction_id=transaction_id)


def request_certificate_cancellation(
    ctx: EngineContext, certificate_id: str, *, actor: str
) -> CertificateCancellation:
    """Ask the provider to cancel a certificate; an issued one waits for the customer."""
    provider = ctx.certificates()
    state = provider.request_cancellation(certificate_id)
    status = provider.status(certificate_id)
    with ctx.store.session() as s:
        cert = s.get_certificate(certificate_id)
        if cert is None:
            raise NotFoundError(f"no certificate {certificate_id!r}", field="certificate_id")
        cert = attrs.evolve(cert, status=status)
        s.put_certificate(cert)
        ctx.audit(
            s,
            action="certificate.cancellation_requested",
            subject_id=certificate_id,
            actor=actor,
            detail={"state": state.value},
        )
    event = CertificateCancellation(
        at=ctx.now(), certificate=cert, state=state, provider=provider.name
    )
    ctx.emit(event)
    return event
