"""One live certificate per domain (SPEC 3.5, seed 001).

A customer may hold one certificate per domain: a new order for a domain whose current
certificate is pending or issued is refused (``domain_has_live_certificate``) until that one is
cancelled. An issued certificate is cancelled by the customer in the provider's portal; a pending
order can be cancelled by the merchant. Cancelled, revoked, rejected and expired certificates do
not block.

Domains compare case-insensitively and without a trailing dot; ``*.example.com`` and
``example.com`` are different names (a wildcard and a single host are separate certificates).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from ..decisions import Decision, Reason
from ..errors import InvalidTypeError, InvalidValueError
from ..model import Certificate, CertificateStatus

__all__ = [
    "CertificateOrderDecision",
    "CertificateReason",
    "assess_new_certificate",
    "normalize_domain",
]


class CertificateReason(Reason):
    DOMAIN_HAS_LIVE_CERTIFICATE = "domain_has_live_certificate"


class CertificateNextStep(enum.StrEnum):
    CUSTOMER_CANCELS_AT_PROVIDER = "customer_cancels_at_provider"
    CANCEL_PENDING_ORDER = "cancel_pending_order"


@attrs.frozen(kw_only=True)
class CertificateOrderDecision(Decision):
    """May a new certificate be ordered for ``domain``; ``blocking`` names the live one(s)."""

    reason: CertificateReason | None = None
    domain: str
    blocking: tuple[Certificate, ...] = ()
    next_step: CertificateNextStep | None = None


def normalize_domain(domain: object, field: str = "domain") -> str:
    """``Example.COM.`` -> ``example.com``; a non-str or empty name raises."""
    if not isinstance(domain, str):
        raise InvalidTypeError(
            f"must be a str, not {type(domain).__name__}", field=field, value=domain
        )
    name = domain.strip().rstrip(".").lower()
    if not name or " " in name:
        raise InvalidValueError("must be a domain name", field=field, value=domain)
    return name


def assess_new_certificate(
    domain: str, existing: Iterable[Certificate], *, portal: str = "the provider's user portal"
) -> CertificateOrderDecision:
    """May a new certificate be ordered for ``domain``, given the certificates that exist?

    ``existing`` may hold certificates for any domain; only those for ``domain`` count.
    """
    name = normalize_domain(domain)
    blocking: list[Certificate] = []
    for i, cert in enumerate(existing):
        if not isinstance(cert, Certificate):
            raise InvalidTypeError(
                f"must be a Certificate, not {type(cert).__name__}",
                field=f"existing[{i}]",
                value=cert,
            )
        if cert.live and normalize_domain(cert.domain, f"existing[{i}].domain") == name:
            blocking.append(cert)
    if not blocking:
        return CertificateOrderDecision(
            allowed=True,
            domain=name,
            explanation=f"{name} has no pending or issued certificate; a new one can be ordered.",
        )
    first = blocking[0]
    if first.status is CertificateStatus.ISSUED:
        step = CertificateNextStep.CUSTOMER_CANCELS_AT_PROVIDER
        todo = (
            f"The customer must first cancel it in {portal}; once it shows as cancelled, "
            "the new certificate can be ordered."
        )
    else:
        step = CertificateNextStep.CANCEL_PENDING_ORDER
        todo = "Cancel that pending order first; then the new certificate can be ordered."
    others = f" (and {len(blocking) - 1} more)" if len(blocking) > 1 else ""
    return CertificateOrderDecision(
        allowed=False,
        reason=CertificateReason.DOMAIN_HAS_LIVE_CERTIFICATE,
        domain=name,
        blocking=tuple(blocking),
        next_step=step,
        explanation=(
            f"{name} already has a live certificate: {first.id}{others} is "
            f"{first.status.value}, and a domain can hold only one. {todo}"
        ),
    )
