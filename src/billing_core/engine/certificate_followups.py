"""The follow-ups of certificates the provider failed to order after the money moved.

``certificate_orders`` keeps such a certificate ``pending`` in the store with an audit line
``certificate.order_pending`` (its domain, type, subscription and provider key). The job
``order_pending_certificates`` orders each again at the provider under the SAME provider key,
so a provider that did order it the first time (its answer lost) answers with that
certificate, never a second one. Ordered: stored as the provider answers (keeping its
subscription and transaction) and audited ``certificate.ordered``. Failing again: audited
``certificate.order_retry_failed`` and left for the next run; one failure never stops the
others.
"""

from __future__ import annotations

import attrs

from ..model import CertificateStatus
from ..plugins.records import AuditEntry
from .context import EngineContext
from .results import CertificateFollowUpResult

__all__ = ["ORDERED", "PENDING", "RETRY_FAILED", "order_pending_certificates", "pending_follow_ups"]

PENDING = "certificate.order_pending"
ORDERED = "certificate.ordered"
RETRY_FAILED = "certificate.order_retry_failed"


def pending_follow_ups(ctx: EngineContext) -> list[AuditEntry]:
    """The ``certificate.order_pending`` lines not yet done, oldest first: no later
    ``certificate.ordered`` for the same certificate, and the stored certificate still the
    kept ``pending`` one (a certificate cancelled or gone meanwhile is not ordered again)."""
    open_: dict[str, AuditEntry] = {}
    with ctx.store.session() as s:
        for entry in s.audit_log():
            if entry.action == PENDING:
                open_[entry.subject_id] = entry
            elif entry.action == ORDERED:
                open_.pop(entry.subject_id, None)
        stored = {cid: s.get_certificate(cid) for cid in open_}
    return [
        entry
        for cid, entry in open_.items()
        if (cert := stored[cid]) is not None and cert.status is CertificateStatus.PENDING
    ]


def order_pending_certificates(
    ctx: EngineContext, *, limit: int | None, actor: str
) -> CertificateFollowUpResult:
    """Order the pending certificates again (up to ``limit``, oldest follow-up first)."""
    due = pending_follow_ups(ctx)
    if limit is not None:
        due = due[:limit]
    ordered: list[str] = []
    failed: list[tuple[str, str]] = []
    for entry in due:
        error = _order_again(ctx, entry, actor=actor)
        if error is None:
            ordered.append(entry.subject_id)
        else:
            failed.append((entry.subject_id, error))
    return CertificateFollowUpResult(
        checked=len(due), ordered=tuple(ordered), still_pending=tuple(failed)
    )


def _order_again(ctx: EngineContext, entry: AuditEntry, *, actor: str) -> str | None:
    """Order one certificate again; the error (audited) when the provider fails, else None."""
    key = str(entry.detail["provider_key"])
    with ctx.store.session() as s:
        kept = s.get_certificate(entry.subject_id)
    if kept is None:  # checked by pending_follow_ups; gone since
        return None
    try:
        answer = ctx.certificates().order(
            certificate_id=kept.id,
            domain=kept.domain,
            certificate_type=kept.certificate_type,
            customer_id=kept.customer_id,
            idempotency_key=key,
        )
    except Exception as exc:  # the provider's error: audited, the next run tries again
        error = f"{type(exc).__name__}: {exc}"
        with ctx.store.session() as s:
            ctx.audit(
                s,
                action=RETRY_FAILED,
                subject_id=kept.id,
                actor=actor,
                detail={"domain": kept.domain, "provider_key": key, "error": error},
            )
        return error
    cert = attrs.evolve(
        answer, subscription_id=kept.subscription_id, transaction_id=kept.transaction_id
    )
    with ctx.store.session() as s:
        s.put_certificate(cert)
        ctx.audit(
            s,
            action=ORDERED,
            subject_id=cert.id,
            actor=actor,
            detail={
                "domain": cert.domain,
                "certificate_type": cert.certificate_type,
                "subscription_id": cert.subscription_id,
                "provider_key": key,
                "status": cert.status.value,
            },
        )
    return None
