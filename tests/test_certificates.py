"""One live certificate per domain, the domains of an order, what a refund gives back."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import (
    Certificate,
    CertificateLine,
    CertificateStatus,
    InvalidTypeError,
    InvalidValueError,
    Money,
    Period,
    Subscription,
    SubscriptionState,
    Transaction,
)
from billing_core.rules.certificates import (
    CertificateReason,
    RefundedUnits,
    assess_new_certificate,
    normalize_domain,
    plan_domains,
    refunded_units,
    return_inventory,
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


def test_one_certificate_named_twice_counts_once() -> None:
    # the store's copy and the provider's copy of one certificate: "(and 1 more)" was wrong
    d = assess_new_certificate("example.com", [cert("pending"), cert("pending")])
    assert "(and" not in d.explanation
    assert [c.id for c in d.blocking] == ["c-1"]
    # the later copy (the provider's, fresher) wins: cancelled there, it no longer blocks
    assert assess_new_certificate("example.com", [cert("pending"), cert("cancelled")]).allowed
    two = assess_new_certificate("example.com", [cert("pending"), cert("issued", id="c-2")])
    assert "c-1 (and 1 more) is pending" in two.explanation


# -- the domains of an order ----------------------------------------------------------------------
def test_plan_names_one_domain_per_unit_in_type_order() -> None:
    plan = plan_domains({"ov": 2, "dv": 1, "ev": 0}, ["A.example", "b.example.", "c.example"])
    assert plan.allowed
    assert plan.assignments == (("a.example", "dv"), ("b.example", "ov"), ("c.example", "ov"))
    assert plan.explanation == (
        "One certificate per domain: a.example (dv), b.example (ov), c.example (ov)."
    )


def test_plan_without_domains_buys_unnamed_units() -> None:
    plan = plan_domains({"dv": 3}, [])
    assert (plan.allowed, plan.assignments) == (True, ())
    assert (
        plan.explanation
        == "The order names no domain: 3 unnamed units (3 × dv), no certificate ordered."
    )


def test_plan_refuses_duplicates_and_mismatches() -> None:
    dup = plan_domains({"dv": 2}, ["b.example", "B.EXAMPLE."])
    assert (dup.allowed, dup.reason) == (False, CertificateReason.DUPLICATE_DOMAIN)
    assert dup.reason == "duplicate_domain"
    assert dup.explanation.startswith("The order names b.example more than once")
    few = plan_domains({"dv": 3}, ["d.example"])
    assert few.reason == "domains_do_not_match_inventory"
    assert few.explanation == (
        "The order charges 3 certificates (3 × dv) but names 1 domain (d.example). Name one "
        "domain per certificate, or none to buy unnamed units."
    )
    assert plan_domains({"dv": 10**12}, ["d.example"]).reason == "domains_do_not_match_inventory"


def test_plan_bad_input() -> None:
    with pytest.raises(InvalidTypeError) as info:
        plan_domains({"dv": 1}, "a.example")
    assert info.value.field == "$.domains"
    with pytest.raises(InvalidValueError) as info2:
        plan_domains({"dv": 2}, ["a.example", " "])
    assert info2.value.field == "$.domains[1]"


DOMAINS = st.lists(st.sampled_from(["a.com", "A.com.", "b.com", "c.com", "d.com"]), max_size=5)


@given(st.dictionaries(st.sampled_from(["dv", "ov", "ev"]), st.integers(0, 3)), DOMAINS)
def test_plan_names_each_unit_once_or_refuses(
    inventory: dict[str, int], domains: list[str]
) -> None:
    plan = plan_domains(inventory, domains)
    names = [normalize_domain(d) for d in domains]
    units = sum(q for q in inventory.values() if q > 0)
    if len(set(names)) < len(names):
        assert plan.reason == CertificateReason.DUPLICATE_DOMAIN
    elif names and len(names) != units:
        assert plan.reason == CertificateReason.DOMAINS_DO_NOT_MATCH_INVENTORY
    else:
        assert plan.allowed
        assert [d for d, _ in plan.assignments] == names
        per_type = Counter(t for _, t in plan.assignments)
        assert all(per_type[t] in (0, q) for t, q in inventory.items() if q > 0)
        assert not names or sum(per_type.values()) == units


# -- what a refund gives back ---------------------------------------------------------------------
def _sale(*lines: CertificateLine) -> Transaction:
    return Transaction(
        id="t-1",
        amount=sum((line.total for line in lines), Money("0.00", "USD")),
        created_at=datetime(2026, 10, 1, tzinfo=UTC),
        settled=True,
        lines=lines,
        subscription_id="s-1",
    )


def _line(quantity: int = 1, cert_id: str | None = None, t: str = "dv") -> CertificateLine:
    return CertificateLine(
        certificate_type=t,
        quantity=quantity,
        unit_price=Money("100.00", "USD"),
        domain=f"{cert_id}.example" if cert_id else None,
        certificate_id=cert_id,
    )


def test_refunded_units_and_the_inventory_they_return() -> None:
    before = _sale(_line(cert_id="c-a"), _line(cert_id="c-b"), _line(3, t="ov"))
    after = attrs.evolve(
        before,
        lines=(
            attrs.evolve(before.lines[0], refunded_quantity=1),
            before.lines[1],
            attrs.evolve(before.lines[2], refunded_quantity=2),
        ),
    )
    units = refunded_units(before, after)
    assert (dict(units.by_type), units.certificate_ids) == ({"dv": 1, "ov": 2}, ("c-a",))
    sub = Subscription(
        id="s-1",
        customer_id="c1",
        term=Period.years(1),
        start=date(2026, 10, 1),
        inventory={"dv": 2, "ov": 3},
        renewal_inventory={"dv": 5, "ov": 1},
    )
    left = return_inventory(sub, units)
    assert (left.inventory, left.renewal_inventory) == ({"dv": 1, "ov": 1}, {"dv": 4, "ov": 0})
    assert (left.state, left.auto_renew) == (SubscriptionState.ACTIVE, True)
    assert not refunded_units(before, before)
    with pytest.raises(InvalidValueError):
        refunded_units(before, attrs.evolve(after, id="t-2"))


def test_a_fully_refunded_subscription_is_cancelled() -> None:
    sub = Subscription(
        id="s-1", customer_id="c1", term=Period.months(1), start=date(2026, 10, 1),
        inventory={"dv": 1}, renewal_inventory={"dv": 3},
    )  # fmt: skip
    gone = return_inventory(sub, RefundedUnits(by_type={"dv": 1}))
    assert (gone.state, gone.auto_renew, gone.inventory) == (
        SubscriptionState.CANCELLED, False, {"dv": 0},
    )  # fmt: skip


@given(st.lists(st.tuples(st.integers(1, 4), st.booleans()), min_size=1, max_size=5), st.data())
def test_inventory_returned_equals_units_refunded(
    shape: list[tuple[int, bool]], data: st.DataObject
) -> None:
    lines = [
        _line(1 if named else q, f"c-{i}" if named else None) for i, (q, named) in enumerate(shape)
    ]
    before = _sale(*lines)
    taken = [data.draw(st.integers(0, line.quantity)) for line in lines]
    after = attrs.evolve(
        before,
        lines=tuple(
            attrs.evolve(line, refunded_quantity=n) for line, n in zip(lines, taken, strict=True)
        ),
    )
    units = refunded_units(before, after)
    total = sum(line.quantity for line in lines)
    assert sum(units.by_type.values()) == sum(taken)
    assert len(units.certificate_ids) == sum(
        1 for line, n in zip(lines, taken, strict=True) if n and line.certificate_id
    )
    sub = Subscription(
        id="s-1", customer_id="c1", term=Period.years(1), start=date(2026, 10, 1),
        inventory={"dv": total}, renewal_inventory={"dv": total},
    )  # fmt: skip
    left = return_inventory(sub, units)
    assert left.inventory == {"dv": total - sum(taken)}
    assert (left.state is SubscriptionState.CANCELLED) is (sum(taken) == total)
