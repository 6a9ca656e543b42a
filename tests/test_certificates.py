"""One live certificate per domain."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import Certificate, CertificateStatus, InvalidTypeError, InvalidValueError
from billing_core.rules.certificates import (
    CertificateReason,
    assess_new_certificate,
    normalize_domain,
)


def cert(status: str, domain: str = "example.com", id: str = "c-1") -> Certificate:
    return Certificate(id=id, domain=domain, status=status)


def test_issued_blocks_with_next_step() -> None:
    d = assess_new_certificate("example.com", [cert("issued")])
    assert (d.allowed, d.reason) == (False, CertificateReason.DOMAIN_HAS_LIVE_CERTIFICATE)
    assert d.reason == "domain_has_live_certificate"
    assert d.blocking == (cert("issued"),)
    assert d.next_step == "customer_cancels_at_provider"
    assert d.explanation == (
        "example.com already has a live certificate: c-1 is issued, and a domain can hold only "
        "one. The customer must first cancel it in the provider's user portal; once it shows as "
        "cancelled, the new certificate can be ordered."
    )


def test_pending_blocks() -> None:
    d = assess_new_certificate("Example.COM.", [cert("cancelled", id="c-0"), cert("pending")])
    assert d.reason == CertificateReason.DOMAIN_HAS_LIVE_CERTIFICATE
    assert d.next_step == "cancel_pending_order"
    assert "c-1 is pending" in d.explanation
    assert [c.id for c in d.blocking] == ["c-1"]


@pytest.mark.parametrize("status", ["cancelled", "revoked", "rejected", "expired"])
def test_dead_certificates_do_not_block(status: str) -> None:
    d = assess_new_certificate("example.com", [cert(status)])
    assert d.allowed
    assert d.reason is None


def test_other_domains_do_not_block() -> None:
    others = [cert("issued", "other.com"), cert("issued", "*.example.com", "c-w")]
    assert assess_new_certificate("example.com", others).allowed
    assert not assess_new_certificate("*.EXAMPLE.com", others).allowed


def test_bad_input() -> None:
    with pytest.raises(InvalidTypeError) as info:
        assess_new_certificate(3, [])  # type: ignore[arg-type]
    assert info.value.field == "$.domain"
    with pytest.raises(InvalidValueError):
        normalize_domain(" . ")
    with pytest.raises(InvalidTypeError) as info2:
        assess_new_certificate("a.com", ["c-1"])  # type: ignore[list-item]
    assert info2.value.field == "$.existing[0]"


@given(st.lists(st.sampled_from(list(CertificateStatus)), max_size=6))
def test_blocked_exactly_when_one_is_live(statuses: list[CertificateStatus]) -> None:
    certs = [cert(s, id=f"c-{i}") for i, s in enumerate(statuses)]
    d = assess_new_certificate("example.com", certs)
    live = [c for c in certs if c.status in ("pending", "issued")]
    assert d.allowed is (not live)
    assert list(d.blocking) == live
