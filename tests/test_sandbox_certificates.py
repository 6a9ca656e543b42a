"""The sandbox certificate provider: ordering, issuing, and the two ways a cancellation goes."""

from __future__ import annotations

import pytest

from billing_core import CertificateStatus, IdempotencyError, InvalidValueError, NotFoundError
from billing_core.plugins.protocols import CancellationState, CertificateProvider
from billing_core.plugins.sandbox_certificates import SandboxCertificateProvider


@pytest.fixture
def provider() -> SandboxCertificateProvider:
    return SandboxCertificateProvider()


def order(
    provider: SandboxCertificateProvider,
    certificate_id: str = "cert-1",
    domain: str = "example.com",
) -> None:
    provider.order(
        certificate_id=certificate_id,
        domain=domain,
        certificate_type="wildcard",
        customer_id="cust-1",
        idempotency_key=f"order-{certificate_id}",
    )


def test_it_satisfies_the_protocol(provider: SandboxCertificateProvider) -> None:
    assert isinstance(provider, CertificateProvider)
    assert provider.name == "sandbox"


def test_an_order_starts_pending_and_is_idempotent(provider: SandboxCertificateProvider) -> None:
    first = provider.order(
        certificate_id="cert-1",
        domain="example.com",
        certificate_type="wildcard",
        customer_id="cust-1",
        idempotency_key="k1",
    )
    assert (first.status, first.domain, first.certificate_type, first.customer_id) == (
        CertificateStatus.PENDING,
        "example.com",
        "wildcard",
        "cust-1",
    )
    again = provider.order(
        certificate_id="cert-1",
        domain="example.com",
        certificate_type="wildcard",
        customer_id="cust-1",
        idempotency_key="k1",
    )
    assert again == first
    with pytest.raises(IdempotencyError):
        provider.order(
            certificate_id="cert-2",
            domain="example.com",
            certificate_type="wildcard",
            customer_id="cust-1",
            idempotency_key="k1",
        )
    with pytest.raises(InvalidValueError, match="already ordered"):
        provider.order(
            certificate_id="cert-1",
            domain="other.example",
            certificate_type="standard",
            customer_id=None,
            idempotency_key="k2",
        )
    assert provider.calls["order"] == 4


def test_a_pending_certificate_is_cancelled_at_once(provider: SandboxCertificateProvider) -> None:
    order(provider)
    assert provider.request_cancellation("cert-1") is CancellationState.COMPLETED
    assert provider.status("cert-1") is CertificateStatus.CANCELLED
    assert provider.cancellation_state("cert-1") is CancellationState.COMPLETED
    with pytest.raises(InvalidValueError, match="no cancellation"):
        provider.customer_confirms_cancellation("cert-1")


def test_an_issued_certificate_waits_for_the_customer(
    provider: SandboxCertificateProvider,
) -> None:
    order(provider)
    assert provider.issue("cert-1").status is CertificateStatus.ISSUED
    assert provider.request_cancellation("cert-1") is CancellationState.REQUESTED
    assert provider.status("cert-1") is CertificateStatus.ISSUED, "still issued until confirmed"
    assert provider.request_cancellation("cert-1") is CancellationState.REQUESTED
    confirmed = provider.customer_confirms_cancellation("cert-1")
    assert confirmed.status is CertificateStatus.CANCELLED
    assert provider.status("cert-1") is CertificateStatus.CANCELLED
    assert provider.cancellation_state("cert-1") is CancellationState.COMPLETED
    assert provider.request_cancellation("cert-1") is CancellationState.COMPLETED


def test_rejected_revoked_and_expired(provider: SandboxCertificateProvider) -> None:
    for cid in ("a", "b", "c"):
        order(provider, cid, f"{cid}.example")
    assert provider.reject("a").status is CertificateStatus.REJECTED
    provider.issue("b")
    assert provider.revoke("b").status is CertificateStatus.REVOKED
    provider.issue("c")
    assert provider.request_cancellation("c") is CancellationState.REQUESTED
    assert provider.expire("c").status is CertificateStatus.EXPIRED
    assert provider.cancellation_state("c") is CancellationState.COMPLETED
    assert provider.request_cancellation("a") is CancellationState.COMPLETED
    with pytest.raises(InvalidValueError, match="cannot become issued from rejected"):
        provider.issue("a")
    order(provider, "d", "d.example")
    with pytest.raises(InvalidValueError, match="cannot become revoked from pending"):
        provider.revoke("d")


def test_the_current_certificate_of_a_domain_is_the_latest(
    provider: SandboxCertificateProvider,
) -> None:
    assert provider.certificate_for_domain("example.com") is None
    order(provider, "old")
    provider.request_cancellation("old")
    order(provider, "new")
    current = provider.certificate_for_domain("example.com")
    assert current is not None
    assert (current.id, current.status) == ("new", CertificateStatus.PENDING)
    assert provider.certificate("old").status is CertificateStatus.CANCELLED


def test_unknown_ids_raise_not_found(provider: SandboxCertificateProvider) -> None:
    for call in (
        provider.status,
        provider.request_cancellation,
        provider.issue,
        provider.customer_confirms_cancellation,
    ):
        with pytest.raises(NotFoundError, match="certificate_id"):
            call("nope")
