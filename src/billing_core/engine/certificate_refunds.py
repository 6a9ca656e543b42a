"""What a refund by certificate does beyond the money: the certificates and the inventory.

``give_back`` is called once, by ``refund_recording``, after a refund or void of a transaction has completed (its lines'
``refunded_quantity`` recorded). ``rules.certificates.refunded_units`` compares the transaction
before and after and names what was given back; then:

1. each named certificate given back is cancelled at the provider (a pending one is cancelled at
   once and frees its domain; an issued one, which a refund normally refuses, waits for the
   customer in the provider's portal) and its stored status follows the provider's, through
   ``certificate_orders.request_certificate_cancellation`` (audited, with its event);
2. the subscription's inventory and renewal inventory lose the units given back, per type
   (``rules.certificates.return_inventory``); a subscription left with no unit is cancelled,
   without auto-renewal, so it never renews nor is charged again.

The money has already moved when this runs, so a provider that fails here does not undo the
refund: the failure is logged and audited (``certificate.cancellation_failed``) for an operator,
and the inventory is lowered all the same.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import attrs

from ..model import CertificateStatus, SubscriptionState, Transaction
from ..plugins.protocols import StoreSession
from ..rules import certificates
from .certificate_orders import request_certificate_cancellation
from .context import EngineContext

__all__ = ["certificate_ids", "certificate_status", "give_back", "provider_statuses"]

_log = logging.getLogger("billing_core.engine")


def give_back(ctx: EngineContext, before: Transaction, after: Transaction, *, actor: str) -> None:
    """Cancel the certificates and lower the inventory a completed refund gave back."""
    units = certificates.refunded_units(before, after)
    if not units:
        return
    for certificate_id in units.certificate_ids:
        _cancel(ctx, certificate_id, actor=actor)
    if before.subscription_id is None:
        return
    with ctx.store.session() as s:
        sub = s.get_subscription(before.subscription_id, lock=True)
        if sub is None:  # pragma: no cover - a sale's subscription is stored with it
            return
        updated = certificates.return_inventory(sub, units)
        s.put_subscription(updated)
        ctx.audit(
            s,
            action="inventory.refunded",
            subject_id=sub.id,
            actor=actor,
            detail={
                "transaction": before.id,
                "units": dict(units.by_type),
                "certificates": list(units.certificate_ids),
                "inventory": dict(updated.inventory),
                "renewal_inventory": dict(updated.renewal_inventory),
            },
        )
        if updated.state is SubscriptionState.CANCELLED and sub.state is not updated.state:
            ctx.audit(
                s,
                action="subscription.cancelled",
                subject_id=sub.id,
                actor=actor,
                detail={"from": sub.state.value, "why": f"fully refunded by {after.id}"},
            )


def _cancel(ctx: EngineContext, certificate_id: str, *, actor: str) -> None:
    if ctx.certificate_provider is None:
        return
    try:
        request_certificate_cancellation(ctx, certificate_id, actor=actor)
    except Exception as exc:  # the refund is done: an operator follows up
        _log.exception("cancelling certificate %s after its refund failed", certificate_id)
        with ctx.store.session() as s:
            ctx.audit(
                s,
                action="certificate.cancellation_failed",
                subject_id=certificate_id,
                actor=actor,
                detail={"error": f"{type(exc).__name__}: {exc}"},
            )


def certificate_ids(
    original: Transaction, certificates: Mapping[int | str, int] | None
) -> list[str]:
    """The certificates the refund is for: those on the chosen lines, or on every line."""
    chosen = {str(k) for k in certificates} if certificates else None
    return [
        line.certificate_id
        for i, line in enumerate(original.lines)
        if line.certificate_id
        and (chosen is None or {str(i), line.certificate_id, line.certificate_type} & chosen)
    ]


def provider_statuses(ctx: EngineContext, ids: list[str]) -> dict[str, CertificateStatus]:
    """What the certificate provider says now (called outside any store session)."""
    if ctx.certificate_provider is None:
        return {}
    return {cid: CertificateStatus(ctx.certificate_provider.status(cid)) for cid in ids}


def certificate_status(
    s: StoreSession, ids: list[str], fresh: Mapping[str, CertificateStatus]
) -> CertificateStatus | None:
    """The status that decides the refund: issued wins over pending wins over the rest, so one
    issued certificate blocks a refund of the lines it is on. The provider's answer wins over
    the stored record, which is brought up to date."""
    statuses = []
    for cid in ids:
        stored = s.get_certificate(cid)
        status = fresh.get(cid, stored.status if stored is not None else None)
        if stored is not None and status is not None and status is not stored.status:
            s.put_certificate(attrs.evolve(stored, status=status))
        if status is not None:
            statuses.append(status)
    for worst in (CertificateStatus.ISSUED, CertificateStatus.PENDING):
        if worst in statuses:
            return worst
    return statuses[0] if statuses else None
