"""The sandbox certificate provider: a certificate authority in memory, driven by tests.

A certificate is ordered ``pending``. Tests move it on as the authority and the customer would:
``issue(id)`` (validation done), ``reject(id)`` (validation failed), ``revoke(id)``,
``expire(id)``. Cancellation follows the resellers' rule:

* a certificate that is not issued yet (pending) is cancelled at once: ``request_cancellation``
  answers ``completed`` and its status becomes ``cancelled``;
* an issued certificate needs the customer: ``request_cancellation`` answers ``requested``, the
  status stays ``issued``, and only ``customer_confirms_cancellation(id)`` (the customer acting in
  the provider's portal) makes it ``cancelled``. Asking again meanwhile answers ``requested``;
* a certificate that is no longer live (cancelled, rejected, revoked, expired) has nothing left
  to cancel: ``completed``.

``order`` is idempotent by its key: the same key with the same parameters returns the same
certificate; with other parameters it raises ``IdempotencyError``. ``calls`` counts calls per
method. One lock guards everything; the state lives in the memory of one process.
"""

from __future__ import annotations

import threading
from collections import Counter

import attrs

from ..errors import IdempotencyError, InvalidValueError, NotFoundError
from ..model import Certificate, CertificateStatus
from .protocols import CancellationState

__all__ = ["SandboxCertificateProvider"]


class SandboxCertificateProvider:
    """An in-memory certificate provider; see the module docstring for its life cycle."""

    def __init__(self, *, name: str = "sandbox") -> None:
        self.name = name
        self.calls: Counter[str] = Counter()
        self._lock = threading.RLock()
        self._certificates: dict[str, Certificate] = {}
        self._by_domain: dict[str, list[str]] = {}
        self._orders: dict[str, tuple[tuple[object, ...], str]] = {}
        self._cancellations: dict[str, CancellationState] = {}

    def __repr__(self) -> str:
        return f"<SandboxCertificateProvider {self.name!r}: {len(self._certificates)} certificates>"

    # -- the CertificateProvider protocol ------------------------------------------------------
    def order(
        self,
        *,
        certificate_id: str,
        domain: str,
        certificate_type: str,
        customer_id: str | None,
        idempotency_key: str,
    ) -> Certificate:
        """Order a certificate for ``domain``; it starts ``pending``."""
        params = (certificate_id, domain, certificate_type, customer_id)
        with self._lock:
            self.calls["order"] += 1
            earlier = self._orders.get(idempotency_key)
            if earlier is not None:
                if earlier[0] != params:
                    raise IdempotencyError(
                        "this idempotency key ordered another certificate",
                        field="idempotency_key",
                        value=idempotency_key,
                    )
                return self._certificates[earlier[1]]
            if certificate_id in self._certificates:
                raise InvalidValueError(
                    "a certificate with this id was already ordered",
                    field="certificate_id",
                    value=certificate_id,
                )
            certificate = Certificate(
                id=certificate_id,
                domain=domain,
                certificate_type=certificate_type,
                customer_id=customer_id,
            )
            self._certificates[certificate_id] = certificate
            self._by_domain.setdefault(domain, []).append(certificate_id)
            self._orders[idempotency_key] = (params, certificate_id)
            return certificate

    def status(self, certificate_id: str) -> CertificateStatus:
        """The certificate's status; ``NotFoundError`` for an id never ordered here."""
        with self._lock:
            self.calls["status"] += 1
            return self._get(certificate_id).status

    def certificate_for_domain(self, domain: str) -> Certificate | None:
        """The domain's current certificate (the latest one ordered), if any."""
        with self._lock:
            self.calls["certificate_for_domain"] += 1
            ids = self._by_domain.get(domain)
            return self._certificates[ids[-1]] if ids else None

    def request_cancellation(self, certificate_id: str) -> CancellationState:
        """Cancel a pending certificate at once; ask the customer to confirm for an issued one."""
        with self._lock:
            self.calls["request_cancellation"] += 1
            certificate = self._get(certificate_id)
            if certificate.status is CertificateStatus.PENDING:
                self._set(certificate, CertificateStatus.CANCELLED)
                state = CancellationState.COMPLETED
            elif certificate.status is CertificateStatus.ISSUED:
                state = CancellationState.REQUESTED
            else:
                state = CancellationState.COMPLETED
            self._cancellations[certificate_id] = state
            return state

    # -- what the authority and the customer do, for tests -------------------------------------
    def issue(self, certificate_id: str) -> Certificate:
        """The authority issues a pending certificate."""
        return self._move(certificate_id, CertificateStatus.ISSUED, {CertificateStatus.PENDING})

    def reject(self, certificate_id: str) -> Certificate:
        """The authority rejects a pending certificate (validation failed)."""
        return self._move(certificate_id, CertificateStatus.REJECTED, {CertificateStatus.PENDING})

    def revoke(self, certificate_id: str) -> Certificate:
        """The authority revokes an issued certificate."""
        return self._move(certificate_id, CertificateStatus.REVOKED, {CertificateStatus.ISSUED})

    def expire(self, certificate_id: str) -> Certificate:
        """An issued certificate reaches the end of its validity."""
        return self._move(certificate_id, CertificateStatus.EXPIRED, {CertificateStatus.ISSUED})

    def customer_confirms_cancellation(self, certificate_id: str) -> Certificate:
        """The customer confirms, in the provider's portal, a cancellation that was requested."""
        with self._lock:
            certificate = self._get(certificate_id)
            if self._cancellations.get(certificate_id) is not CancellationState.REQUESTED:
                raise InvalidValueError(
                    "no cancellation of this certificate waits for the customer",
                    field="certificate_id",
                    value=certificate_id,
                )
            self._cancellations[certificate_id] = CancellationState.COMPLETED
            return self._set(certificate, CertificateStatus.CANCELLED)

    def cancellation_state(self, certificate_id: str) -> CancellationState | None:
        """Where the certificate's cancellation stands, or None if none was requested."""
        with self._lock:
            self._get(certificate_id)
            return self._cancellations.get(certificate_id)

    def certificate(self, certificate_id: str) -> Certificate:
        """The certificate as the provider holds it."""
        with self._lock:
            return self._get(certificate_id)

    # -- internals -----------------------------------------------------------------------------
    def _get(self, certificate_id: str) -> Certificate:
        try:
            return self._certificates[certificate_id]
        except KeyError:
            raise NotFoundError(
                "no certificate with this id at the provider",
                field="certificate_id",
                value=certificate_id,
            ) from None

    def _set(self, certificate: Certificate, status: CertificateStatus) -> Certificate:
        updated = attrs.evolve(certificate, status=status)
        self._certificates[certificate.id] = updated
        return updated

    def _move(
        self, certificate_id: str, status: CertificateStatus, allowed: set[CertificateStatus]
    ) -> Certificate:
        with self._lock:
            certificate = self._get(certificate_id)
            if certificate.status not in allowed:
                raise InvalidValueError(
                    f"cannot become {status} from {certificate.status}",
                    field="certificate_id",
                    value=certificate_id,
                )
            if certificate_id in self._cancellations and status is not CertificateStatus.ISSUED:
                self._cancellations[certificate_id] = CancellationState.COMPLETED
            return self._set(certificate, status)
