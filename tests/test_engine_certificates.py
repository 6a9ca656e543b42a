"""Certificates through the engine (issue 10, observations 5 and 6), on memory, SQLite and
PostgreSQL: the domains of an order reconciled with its quantities, duplicate domains refused,
inventory added mid-term ordering its certificates, one blocking certificate counted once, and
a refund by certificate cancelling it, freeing its domain and lowering the inventory."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import test_engine as base
from billing_core import (
    BillingEngine,
    CertificateStatus,
    Customer,
    Money,
    Period,
    SubscriptionState,
)
from billing_core.engine import (
    ChargeOutcome,
    InventoryResult,
    RefundOutcome,
    SubscriptionResult,
)
from billing_core.plugins.sandbox_certificates import SandboxCertificateProvider
from billing_core.plugins.sandbox_gateway import Fault, SandboxGateway
from billing_core.testing.clock import ManualClock

ADMIN, AGENT = base.ADMIN, base.AGENT
store_url, clock, engine = base.store_url, base.clock, base.engine  # the engine tests' fixtures
DV = Money("100.00", "USD")
YEAR = Period.years(1)


def _provider(engine: BillingEngine) -> SandboxCertificateProvider:
    provider = engine.certificate_provider
    assert isinstance(provider, SandboxCertificateProvider)
    return provider


def _order(
    engine: BillingEngine,
    key: str,
    domains: list[str],
    *,
    term: Period = YEAR,
    **inventory: int,
) -> SubscriptionResult:
    return engine.add_subscription(
        "c1",
        term=term,
        inventory=inventory or {"dv": len(domains)},
        unit_prices={"dv": DV, "ov": Money("250.00", "USD")},
        domains=domains,
        idempotency_key=key,
        actor=ADMIN,
    )


def _sub(result: SubscriptionResult) -> str:
    assert result.subscription_id is not None, result.explanation
    return result.subscription_id


def _sale(result: SubscriptionResult) -> str:
    assert result.charge is not None and result.charge.transaction_id, result.explanation
    return result.charge.transaction_id


class TestOrders:
    def test_a_domain_named_twice_is_refused(self, engine: BillingEngine) -> None:
        result = _order(engine, "dup", ["b.example", "B.example."])
        assert result.outcome is ChargeOutcome.DENIED
        assert result.reason == "duplicate_domain"
        assert result.explanation == (
            "The order names b.example more than once; a domain can hold only one live "
            "certificate, so name each domain once."
        )
        assert base._sandbox(engine).calls["sale"] == 0
        assert _provider(engine).calls["order"] == 0

    @pytest.mark.parametrize(
        ("domains", "inventory", "explanation"),
        [
            (
                ["d.example"],
                {"dv": 3},
                "The order charges 3 certificates (3 × dv) but names 1 domain (d.example). "
                "Name one domain per certificate, or none to buy unnamed units.",
            ),
            (
                ["a.example", "b.example"],
                {"dv": 1},
                "The order charges 1 certificate (1 × dv) but names 2 domains (a.example, "
                "b.example). Name one domain per certificate, or none to buy unnamed units.",
            ),
        ],
    )
    def test_domains_that_do_not_match_the_quantities_are_refused(
        self, engine: BillingEngine, domains: list[str], inventory: dict[str, int], explanation: str
    ) -> None:
        result = _order(engine, "mismatch", domains, dv=inventory["dv"])
        assert result.reason == "domains_do_not_match_inventory"
        assert result.explanation == explanation
        assert base._sandbox(engine).calls["sale"] == 0
        assert _provider(engine).calls["order"] == 0

    def test_named_units_get_one_certificate_each_in_type_order(
        self, engine: BillingEngine
    ) -> None:
        result = _order(
            engine, "named", ["One.example", "two.example", "three.example"], dv=1, ov=2
        )
        assert result.outcome is ChargeOutcome.CHARGED
        ids = result.certificate_ids
        certs = [_provider(engine).certificate(i) for i in ids]
        assert [(c.domain, c.certificate_type) for c in certs] == [
            ("one.example", "dv"),
            ("two.example", "ov"),
            ("three.example", "ov"),
        ]
        sale = engine.transaction(_sale(result))
        assert [(line.certificate_id, line.quantity) for line in sale.lines] == [
            (i, 1) for i in ids
        ]
        assert sale.amount == Money("600.00", "USD")  # 100.00 + 2 × 250.00

    def test_unnamed_units_are_charged_and_order_nothing(self, engine: BillingEngine) -> None:
        result = _order(engine, "unnamed", [], dv=2)
        assert result.outcome is ChargeOutcome.CHARGED
        assert result.certificate_ids == ()
        assert _provider(engine).calls["order"] == 0

    def test_one_blocking_certificate_is_counted_once(self, engine: BillingEngine) -> None:
        first = _order(engine, "first", ["d.example"])
        (cert_id,) = first.certificate_ids
        second = _order(engine, "second", ["d.example"])
        assert second.reason == "domain_has_live_certificate"
        assert second.explanation == (
            f"d.example already has a live certificate: {cert_id} is pending, and a domain can "
            "hold only one. Cancel that pending order first; then the new certificate can be "
            "ordered."
        )


class TestInventoryAddedMidTerm:
    def test_added_units_order_their_certificates(self, engine: BillingEngine) -> None:
        sub = _order(engine, "s", ["a.example"])
        sub_id = _sub(sub)
        engine.clock.advance(days=184)  # type: ignore[attr-defined]

        def add() -> InventoryResult:
            return engine.add_inventory(
                sub_id,
                certificate_type="dv",
                quantity=2,
                domains=["x.example", "Y.example"],
                idempotency_key="inv",
                actor=ADMIN,
            )

        added = add()
        assert added.allowed
        # 181 of 365 days remain: 2 × 100.00 × 181/365 = 99.18
        assert [line.amount for line in added.lines] == [Money("99.18", "USD")]
        certs = [_provider(engine).certificate(i) for i in added.certificate_ids]
        assert [(c.domain, c.status) for c in certs] == [
            ("x.example", CertificateStatus.PENDING),
            ("y.example", CertificateStatus.PENDING),
        ]
        with engine.store.session() as s:
            stored = [s.get_certificate(i) for i in added.certificate_ids]
        assert [c.subscription_id if c else None for c in stored] == [sub_id, sub_id]
        assert engine.subscription(sub_id).inventory == {"dv": 3}
        assert "x.example (dv), y.example (dv)" in added.explanation
        again = add()  # a replay: the same answer, nothing ordered twice
        assert again == added and _provider(engine).calls["order"] == 3

    @pytest.mark.parametrize(
        ("domains", "reason"),
        [
            (["a.example"], "domain_has_live_certificate"),
            (["n.example"], "domains_do_not_match_inventory"),
            (["n.example", "n.example"], "duplicate_domain"),
        ],
    )
    def test_refused_additions_change_nothing(
        self, engine: BillingEngine, domains: list[str], reason: str
    ) -> None:
        sub_id = _sub(_order(engine, "s", ["a.example"]))
        result = engine.add_inventory(
            sub_id,
            certificate_type="dv",
            quantity=2 if len(domains) != 1 or reason != "domain_has_live_certificate" else 1,
            domains=domains,
            idempotency_key="inv",
            actor=ADMIN,
        )
        assert (result.allowed, result.reason) == (False, reason)
        assert engine.subscription(sub_id).inventory == {"dv": 1}
        assert engine.invoice_lines(sub_id) == []
        assert _provider(engine).calls["order"] == 1


class TestRefundByCertificate:
    def test_refunded_certificate_is_cancelled_freed_and_leaves_the_inventory(
        self, engine: BillingEngine, clock: ManualClock
    ) -> None:
        sub = _order(engine, "s", ["a.example", "b.example"])
        sub_id = _sub(sub)
        cert_a, cert_b = sub.certificate_ids
        clock.advance(days=2)  # settled
        refund = engine.refund_transaction(
            _sale(sub),
            certificates={cert_a: 1},
            idempotency_key="r",
            actor=AGENT,
        )
        assert (refund.outcome, refund.amount) == (RefundOutcome.REFUNDED, DV)
        provider = _provider(engine)
        assert provider.status(cert_a) is CertificateStatus.CANCELLED
        assert provider.status(cert_b) is CertificateStatus.PENDING
        with engine.store.session() as s:
            stored = s.get_certificate(cert_a)
        assert stored is not None and stored.status is CertificateStatus.CANCELLED
        after = engine.subscription(sub_id)
        assert (after.inventory, after.renewal_inventory) == ({"dv": 1}, {"dv": 1})
        assert after.state is SubscriptionState.ACTIVE
        # the domain is free again
        assert _order(engine, "again", ["a.example"]).outcome is ChargeOutcome.CHARGED
        assert [e.action for e in engine.audit_log(subject_id=sub_id)][-1] == "inventory.refunded"

    def test_refunded_unnamed_units_lower_the_inventory(
        self, engine: BillingEngine, clock: ManualClock
    ) -> None:
        sub = _order(engine, "s", [], dv=3)
        clock.advance(days=2)
        engine.refund_transaction(
            _sale(sub),
            certificates={0: 2},
            idempotency_key="r",
            actor=AGENT,
        )
        after = engine.subscription(_sub(sub))
        assert (after.inventory, after.state) == ({"dv": 1}, SubscriptionState.ACTIVE)

    @pytest.mark.parametrize("settled", [True, False], ids=["refund", "void"])
    def test_fully_refunded_subscription_is_cancelled_and_never_renews(
        self, engine: BillingEngine, clock: ManualClock, settled: bool
    ) -> None:
        result = _order(engine, "m", ["m.example"], term=Period.months(1))
        if settled:
            clock.advance(days=2)
        refund = engine.refund_order(_sale(result), idempotency_key="o", actor=AGENT)
        assert refund.outcome is (RefundOutcome.REFUNDED if settled else RefundOutcome.VOIDED)
        sub = engine.subscription(_sub(result))
        assert (sub.state, sub.auto_renew, sub.inventory) == (
            SubscriptionState.CANCELLED,
            False,
            {"dv": 0},
        )
        assert _provider(engine).status(result.certificate_ids[0]) is CertificateStatus.CANCELLED
        clock.advance(days=40)
        assert engine.renew_due(actor=ADMIN).renewals == ()
        assert base._sandbox(engine).calls["sale"] == 1

    def test_a_refund_that_succeeds_on_retry_gives_the_certificate_back(
        self, engine: BillingEngine, clock: ManualClock
    ) -> None:
        sub = _order(engine, "s", ["a.example", "b.example"])
        cert_a = sub.certificate_ids[0]
        clock.advance(days=2)
        base._sandbox(engine).script("refund", [Fault.DECLINE])
        first = engine.refund_transaction(
            _sale(sub),
            certificates={cert_a: 1},
            idempotency_key="r",
            actor=AGENT,
        )
        assert first.outcome is RefundOutcome.QUEUED
        assert _provider(engine).status(cert_a) is CertificateStatus.PENDING
        clock.advance(days=1)
        assert engine.process_refund_queue().succeeded == 1
        assert _provider(engine).status(cert_a) is CertificateStatus.CANCELLED
        assert engine.subscription(_sub(sub)).inventory == {"dv": 1}


# -- properties (memory store: the rules are the same on every store) -----------------------------
NAMES = st.lists(st.sampled_from(["a.example", "A.example.", "b.example", "c.example"]), max_size=4)


@settings(max_examples=40, deadline=None)
@given(
    orders=st.lists(
        st.tuples(st.booleans(), NAMES, st.integers(min_value=1, max_value=3)), max_size=5
    )
)
def test_never_two_live_certificates_for_one_domain(
    orders: list[tuple[bool, list[str], int]],
) -> None:
    """Whatever orders and additions name: at most one live certificate per domain, and every
    charged (or billed) order ordered exactly as many certificates as it named units."""
    clk = ManualClock(base.START)
    eng = BillingEngine(store="memory://", clock=clk, gateway=SandboxGateway(clock=clk))
    eng.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
    first = _order(eng, "base", [], dv=1)
    sub_id = _sub(first)
    provider = _provider(eng)
    every: list[str] = []
    for i, (mid_term, names, quantity) in enumerate(orders):
        units = len(names) or quantity
        if mid_term:
            added = eng.add_inventory(
                sub_id,
                certificate_type="dv",
                quantity=units,
                domains=names,
                idempotency_key=f"k{i}",
                actor=ADMIN,
            )
            ordered, ok = added.certificate_ids, added.allowed
        else:
            result = _order(eng, f"k{i}", names, dv=units)
            ordered = result.certificate_ids
            ok = result.outcome is ChargeOutcome.CHARGED
            if ok:
                sale = eng.transaction(_sale(result))
                assert sum(line.quantity for line in sale.lines) == units
        assert len(ordered) == (len(names) if ok else 0)
        every.extend(ordered)
        clk.advance(timedelta(hours=1))
    live = [provider.certificate(i).domain for i in every if provider.certificate(i).live]
    assert len(live) == len(set(live)), live


def test_a_provider_failing_after_the_refund_does_not_undo_it(
    engine: BillingEngine, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = _order(engine, "s", ["a.example", "b.example"])
    cert_a = sub.certificate_ids[0]
    clock.advance(days=2)

    def down(certificate_id: str) -> object:
        raise ConnectionError("provider down")

    monkeypatch.setattr(_provider(engine), "request_cancellation", down)
    refund = engine.refund_transaction(
        _sale(sub), certificates={cert_a: 1}, idempotency_key="r", actor=AGENT
    )
    assert refund.outcome is RefundOutcome.REFUNDED
    (failed,) = engine.audit_log(subject_id=cert_a)[-1:]
    assert failed.action == "certificate.cancellation_failed"
    assert failed.detail["error"] == "ConnectionError: provider down"
    assert engine.subscription(_sub(sub)).inventory == {"dv": 1}
