"""Certificates and their domains: one live certificate per domain (SPEC 3.5, seed 001), the
domains of an order reconciled with its quantities, and what a refund gives back.

A customer may hold one certificate per domain: a new order for a domain whose current
certificate is pending or issued is refused (``domain_has_live_certificate``) until that one is
cancelled. An issued certificate is cancelled by the customer in the provider's portal; a pending
order can be cancelled by the merchant. Cancelled, revoked, rejected and expired certificates do
not block.

Domains compare case-insensitively and without a trailing dot; ``*.example.com`` and
``example.com`` are different names (a wildcard and a single host are separate certificates).
``assess_new_certificate`` counts a certificate once however many sources name it (the store
and the provider): by id, the later copy winning, so pass the provider's fresher view last.

**Domains of an order** (``plan_domains``): an order (``add_subscription``, ``add_inventory``)
either names no domain at all, and then buys *unnamed units* (seats or certificate credits the
host assigns itself; nothing is ordered at the provider), or names exactly one domain per unit,
and then one certificate is ordered per domain. Domains go to the units in certificate-type
order (``{"dv": 1, "ov": 2}`` with three domains: the first is the dv one). Refused, with a
reason code: a domain named twice in one order (``duplicate_domain``) and a number of domains
other than the number of units (``domains_do_not_match_inventory``): which units were meant to
be named cannot be guessed, and charging for certificates that are never ordered is the bug.

**A refund by certificate** (``refunded_units``, ``return_inventory``): the certificates a refund
gave back are the lines whose ``refunded_quantity`` grew; each named one is cancelled at the
provider (which frees its domain), and the subscription's inventory and renewal inventory are
lowered by the units per type (never below zero). A subscription left with no unit is
cancelled and does not renew.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import attrs

from ..decisions import Decision, Reason
from ..errors import InvalidTypeError, InvalidValueError
from ..model import Certificate, CertificateStatus, Subscription, SubscriptionState, Transaction

__all__ = [
    "CertificateOrderDecision",
    "CertificateReason",
    "DomainPlan",
    "RefundedUnits",
    "assess_new_certificate",
    "normalize_domain",
    "plan_domains",
    "refunded_units",
    "return_inventory",
]


class CertificateReason(Reason):
    DOMAIN_HAS_LIVE_CERTIFICATE = "domain_has_live_certificate"
    DUPLICATE_DOMAIN = "duplicate_domain"
    DOMAINS_DO_NOT_MATCH_INVENTORY = "domains_do_not_match_inventory"


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
    latest: dict[str, Certificate] = {}  # by id: one certificate named twice counts once
    for i, cert in enumerate(existing):
        if not isinstance(cert, Certificate):
            raise InvalidTypeError(
                f"must be a Certificate, not {type(cert).__name__}",
                field=f"existing[{i}]",
                value=cert,
            )
        if normalize_domain(cert.domain, f"existing[{i}].domain") == name:
            latest[cert.id] = cert
    blocking = [cert for cert in latest.values() if cert.live]
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


# -- the domains of an order ---------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class DomainPlan(Decision):
    """The domains of an order, normalized, and the certificate type each one gets.

    ``assignments`` pairs each domain with its type, in order; empty for an order of unnamed
    units or a denial.
    """

    reason: CertificateReason | None = None
    assignments: tuple[tuple[str, str], ...] = ()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def plan_domains(inventory: Mapping[str, int], domains: Sequence[str]) -> DomainPlan:
    """Reconcile an order's ``domains`` with its ``inventory`` (units per certificate type).

    See the module docstring: no domain at all (unnamed units), or exactly one per unit.
    Quantities below one are left out; a domain that is not a name raises.
    """
    if isinstance(domains, str) or not isinstance(domains, Sequence):
        raise InvalidTypeError(
            f"must be a sequence of domain names, not {type(domains).__name__}",
            field="domains",
            value=domains,
        )
    names = [normalize_domain(d, f"domains[{i}]") for i, d in enumerate(domains)]
    twice = sorted(name for name, n in Counter(names).items() if n > 1)
    if twice:
        return DomainPlan(
            allowed=False,
            reason=CertificateReason.DUPLICATE_DOMAIN,
            explanation=f"The order names {', '.join(twice)} more than once; a domain can hold "
            "only one live certificate, so name each domain once.",
        )
    units = {t: q for t, q in sorted(inventory.items()) if q > 0}
    total = sum(units.values())
    bought = ", ".join(f"{q} × {t}" for t, q in units.items()) or "nothing"
    if not names:
        return DomainPlan(
            allowed=True,
            explanation=f"The order names no domain: {_plural(total, 'unnamed unit')} "
            f"({bought}), no certificate ordered.",
        )
    if len(names) != total:
        return DomainPlan(
            allowed=False,
            reason=CertificateReason.DOMAINS_DO_NOT_MATCH_INVENTORY,
            explanation=f"The order charges {_plural(total, 'certificate')} ({bought}) but "
            f"names {_plural(len(names), 'domain')} ({', '.join(names)}). Name one domain per "
            "certificate, or none to buy unnamed units.",
        )
    types = (t for t, q in units.items() for _ in range(q))  # as many as the names: bounded
    assignments = tuple(zip(names, types, strict=True))
    return DomainPlan(
        allowed=True,
        assignments=assignments,
        explanation=f"One certificate per domain: "
        f"{', '.join(f'{d} ({t})' for d, t in assignments)}.",
    )


# -- what a refund gives back ---------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class RefundedUnits:
    """What a refund gave back: units per certificate type, and the named certificates."""

    by_type: Mapping[str, int] = attrs.field(factory=dict)
    certificate_ids: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.by_type)


def refunded_units(before: Transaction, after: Transaction) -> RefundedUnits:
    """The certificate units a refund gave back: ``after`` is ``before`` once the refund (or
    void) is recorded; each line counts the growth of its ``refunded_quantity``."""
    for name, value in (("before", before), ("after", after)):
        if not isinstance(value, Transaction):
            raise InvalidTypeError(
                f"must be a Transaction, not {type(value).__name__}", field=name, value=value
            )
    if before.id != after.id or len(before.lines) != len(after.lines):
        raise InvalidValueError(
            f"must be the same transaction as before ({before.id})", field="after", value=after.id
        )
    by_type: Counter[str] = Counter()
    ids: list[str] = []
    for old, new in zip(before.lines, after.lines, strict=True):
        given = new.refunded_quantity - old.refunded_quantity
        if given > 0:
            by_type[new.certificate_type] += given
            if new.certificate_id:
                ids.append(new.certificate_id)
    return RefundedUnits(by_type=dict(by_type), certificate_ids=tuple(ids))


def return_inventory(subscription: Subscription, units: RefundedUnits) -> Subscription:
    """``subscription`` with the refunded ``units`` taken off its inventory and renewal
    inventory (never below zero); cancelled, without auto-renewal, once no unit is left."""
    inventory = {t: max(0, q - units.by_type.get(t, 0)) for t, q in subscription.inventory.items()}
    renewal = {
        t: max(0, q - units.by_type.get(t, 0)) for t, q in subscription.renewal_inventory.items()
    }
    updated = attrs.evolve(subscription, inventory=inventory, renewal_inventory=renewal)
    if not any(inventory.values()) and subscription.state is not SubscriptionState.CANCELLED:
        updated = attrs.evolve(updated, state=SubscriptionState.CANCELLED, auto_renew=False)
    return updated
