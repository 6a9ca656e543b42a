"""The job that orders again the certificates a provider failed to order after the money moved
(issue 11 follow-up), on memory, SQLite and PostgreSQL: ordered under the same provider key
(one certificate at the provider, even when its first answer was lost), stored and audited;
a provider failing again leaves it for the next run; a refused actor changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import test_engine as base
from billing_core import BillingEngine, Certificate, CertificateStatus, Customer, Money, Period
from billing_core.engine import CertificateFollowUpResult, ChargeOutcome, JobOutcome
from billing_core.errors import InvalidValueError
from billing_core.plugins.sandbox_certificates import SandboxCertificateProvider
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.rules.permissions import SYSTEM_ACTOR
from billing_core.testing.clock import ManualClock

ADMIN, AGENT = base.ADMIN, base.AGENT
store_url, clock, engine = base.store_url, base.clock, base.engine  # the engine tests' fixtures
DV = Money("100.00", "USD")


def _provider(engine: BillingEngine) -> SandboxCertificateProvider:
    provider = engine.certificate_provider
    assert isinstance(provider, SandboxCertificateProvider)
    return provider


def _at_provider(provider: SandboxCertificateProvider, domain: str) -> list[str]:
    """The ids of every certificate the provider ordered for ``domain``."""
    return list(provider._by_domain.get(domain, []))


class Flaky:
    """Wraps the sandbox's ``order``: fails before it for the domains in ``down``, and after it
    (the provider ordered, its answer lost) for those in ``lost``."""

    def __init__(self, provider: SandboxCertificateProvider) -> None:
        self.real: Callable[..., Certificate] = provider.order
        self.down: set[str] = set()
        self.lost: set[str] = set()
        self.keys: list[str] = []
        self.error: Exception = ConnectionError("provider down")

    def __call__(self, **kwargs: object) -> Certificate:
        self.keys.append(str(kwargs["idempotency_key"]))
        if kwargs["domain"] in self.down:
            raise self.error
        cert = self.real(**kwargs)
        if kwargs["domain"] in self.lost:
            raise TimeoutError("answer lost")
        return cert


@pytest.fixture
def flaky(engine: BillingEngine, monkeypatch: pytest.MonkeyPatch) -> Flaky:
    wrapper = Flaky(_provider(engine))
    monkeypatch.setattr(_provider(engine), "order", wrapper)
    return wrapper


def _subscribe(engine: BillingEngine, domains: list[str], key: str = "order-1") -> list[str]:
    result = engine.add_subscription(
        "c1",
        term=Period.years(1),
        inventory={"dv": len(domains)},
        unit_prices={"dv": DV},
        domains=domains,
        idempotency_key=key,
        actor=ADMIN,
    )
    assert result.outcome is ChargeOutcome.CHARGED, result.explanation
    return list(result.certificate_ids)


def _actions(engine: BillingEngine, subject: str) -> list[str]:
    return [e.action for e in engine.audit_log(subject_id=subject)]


def test_a_certificate_the_provider_failed_is_ordered_by_the_job(
    engine: BillingEngine, flaky: Flaky
) -> None:
    flaky.down = {"a.example"}
    (cert_id,) = _subscribe(engine, ["a.example"])
    with engine.store.session() as s:
        kept = s.get_certificate(cert_id)
    assert kept is not None and kept.status is CertificateStatus.PENDING
    assert _at_provider(_provider(engine), "a.example") == []
    flaky.down = set()

    result = engine.order_pending_certificates()

    assert result == CertificateFollowUpResult(checked=1, ordered=(cert_id,))
    assert result.explanation == "Ordered 1 of 1 pending certificate again."
    assert _at_provider(_provider(engine), "a.example") == [cert_id]
    assert flaky.keys == [f"order-1:cert:{cert_id}"] * 2  # the same provider key
    with engine.store.session() as s:
        stored = s.get_certificate(cert_id)
    assert stored is not None
    assert stored.subscription_id == kept.subscription_id is not None
    assert stored.transaction_id == kept.transaction_id is not None
    assert _actions(engine, cert_id)[-2:] == ["certificate.order_pending", "certificate.ordered"]
    (done,) = [e for e in engine.audit_log(subject_id=cert_id) if e.action == "certificate.ordered"]
    assert done.actor == SYSTEM_ACTOR.id
    assert done.detail["provider_key"] == f"order-1:cert:{cert_id}"
    again = engine.order_pending_certificates()  # nothing left: the follow-up is done
    assert again == CertificateFollowUpResult()
    assert _at_provider(_provider(engine), "a.example") == [cert_id]


def test_a_provider_failing_again_leaves_it_for_the_next_run(
    engine: BillingEngine, flaky: Flaky
) -> None:
    flaky.down = {"a.example", "b.example"}
    cert_a, cert_b = _subscribe(engine, ["a.example", "b.example"])
    flaky.down = {"a.example"}  # b recovers, a is still down

    first = engine.order_pending_certificates(actor=ADMIN)

    assert first.checked == 2
    assert first.ordered == (cert_b,)
    assert first.still_pending == ((cert_a, "ConnectionError: provider down"),)
    assert first.explanation == (
        "Ordered 1 of 2 pending certificates again; 1 still pending, tried again next run "
        f"({cert_a}: ConnectionError: provider down)."
    )
    (failed,) = [
        e
        for e in engine.audit_log(subject_id=cert_a)
        if e.action == "certificate.order_retry_failed"
    ]
    assert failed.actor == ADMIN.id
    assert failed.detail["error"] == "ConnectionError: provider down"
    assert failed.detail["provider_key"] == f"order-1:cert:{cert_a}"
    with engine.store.session() as s:
        still = s.get_certificate(cert_a)
    assert still is not None and still.status is CertificateStatus.PENDING

    flaky.down = set()
    second = engine.order_pending_certificates()
    assert second == CertificateFollowUpResult(checked=1, ordered=(cert_a,))
    assert _at_provider(_provider(engine), "a.example") == [cert_a]
    assert _at_provider(_provider(engine), "b.example") == [cert_b]


def test_any_error_of_one_certificate_never_stops_the_others(
    engine: BillingEngine, flaky: Flaky
) -> None:
    flaky.down = {"a.example", "b.example"}
    cert_a, cert_b = _subscribe(engine, ["a.example", "b.example"])
    flaky.down = {"a.example"}
    flaky.error = InvalidValueError("is not a domain we sign", field="domain")

    result = engine.order_pending_certificates()

    assert result.ordered == (cert_b,)
    assert result.still_pending == (
        (cert_a, "InvalidValueError: is not a domain we sign @ $.domain"),
    )


def test_a_lost_answer_gets_the_same_certificate_back(engine: BillingEngine, flaky: Flaky) -> None:
    flaky.lost = {"a.example"}  # the provider ordered it; the engine never heard
    (cert_id,) = _subscribe(engine, ["a.example"])
    assert _at_provider(_provider(engine), "a.example") == [cert_id]
    _provider(engine).issue(cert_id)  # the authority went on meanwhile
    flaky.lost = set()

    result = engine.order_pending_certificates()

    assert result.ordered == (cert_id,)
    assert _at_provider(_provider(engine), "a.example") == [cert_id]  # no second one
    with engine.store.session() as s:
        stored = s.get_certificate(cert_id)
    assert stored is not None and stored.status is CertificateStatus.ISSUED


def test_nothing_pending_is_a_no_op(engine: BillingEngine, flaky: Flaky) -> None:
    _subscribe(engine, ["a.example"])  # ordered the first time
    calls = _provider(engine).calls["order"]
    result = engine.order_pending_certificates()
    assert result == CertificateFollowUpResult()
    assert result.outcome is JobOutcome.DONE
    assert result.explanation == "No certificate was waiting to be ordered again."
    assert _provider(engine).calls["order"] == calls


def test_a_limit_orders_the_oldest_first(engine: BillingEngine, flaky: Flaky) -> None:
    flaky.down = {"a.example", "b.example"}
    cert_a, cert_b = _subscribe(engine, ["a.example", "b.example"])
    flaky.down = set()
    assert engine.order_pending_certificates(limit=1).ordered == (cert_a,)
    assert engine.order_pending_certificates(limit=0) == CertificateFollowUpResult()
    assert engine.order_pending_certificates().ordered == (cert_b,)


def test_a_cancelled_pending_certificate_is_not_ordered_again(
    engine: BillingEngine, flaky: Flaky
) -> None:
    flaky.down = {"a.example"}
    (cert_id,) = _subscribe(engine, ["a.example"])
    with engine.store.session() as s:
        kept = s.get_certificate(cert_id)
        assert kept is not None
        s.put_certificate(attrs.evolve(kept, status=CertificateStatus.CANCELLED))
    flaky.down = set()
    assert engine.order_pending_certificates() == CertificateFollowUpResult()
    assert _at_provider(_provider(engine), "a.example") == []


def test_a_refused_actor_orders_nothing(engine: BillingEngine, flaky: Flaky) -> None:
    flaky.down = {"a.example"}
    (cert_id,) = _subscribe(engine, ["a.example"])
    flaky.down = set()

    result = engine.order_pending_certificates(actor=AGENT)

    assert result.outcome is JobOutcome.DENIED
    assert result.reason == "permission_denied"
    assert result.checked == 0 and result.ordered == ()
    assert _at_provider(_provider(engine), "a.example") == []
    assert "order_pending_certificates.denied" in [e.action for e in engine.audit_log()]
    assert engine.order_pending_certificates().ordered == (cert_id,)


@pytest.mark.parametrize("limit", [-1, 1.5, True, "2"])
def test_a_bad_limit_is_refused(engine: BillingEngine, limit: object) -> None:
    with pytest.raises(Exception, match=r"@ \$\.limit"):
        engine.order_pending_certificates(limit=limit)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(
    outcomes=st.lists(st.sampled_from(["ok", "down", "lost"]), min_size=1, max_size=5),
    again=st.lists(st.sampled_from(["ok", "down", "lost"]), min_size=5, max_size=5),
)
def test_property_every_domain_ends_with_one_certificate(
    outcomes: list[str], again: list[str]
) -> None:
    """Whatever fails at the order and at the first run, a healthy run after them leaves every
    domain exactly one certificate at the provider, stored with the order's subscription, and
    each run's counts add up."""
    clock = ManualClock(base.START)
    eng = BillingEngine(store="memory://", clock=clock, gateway=SandboxGateway(clock=clock))
    try:
        eng.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
        provider = _provider(eng)
        flaky = Flaky(provider)
        provider.order = flaky  # type: ignore[method-assign]
        domains = [f"d{i}.example" for i in range(len(outcomes))]
        flaky.down = {d for d, o in zip(domains, outcomes, strict=True) if o == "down"}
        flaky.lost = {d for d, o in zip(domains, outcomes, strict=True) if o == "lost"}
        ids = _subscribe(eng, domains)
        failed_first = sum(o != "ok" for o in outcomes)
        flaky.down = {d for d, o in zip(domains, again, strict=False) if o == "down"}
        flaky.lost = {d for d, o in zip(domains, again, strict=False) if o == "lost"}
        first = eng.order_pending_certificates()
        assert first.checked == failed_first
        assert len(first.ordered) + len(first.still_pending) == first.checked
        flaky.down, flaky.lost = set(), set()
        second = eng.order_pending_certificates()
        assert second.checked == len(first.still_pending)
        assert second.still_pending == ()
        assert eng.order_pending_certificates() == CertificateFollowUpResult()
        subscription_ids = set()
        for domain, cert_id in zip(domains, ids, strict=True):
            assert _at_provider(provider, domain) == [cert_id]
            with eng.store.session() as s:
                stored = s.get_certificate(cert_id)
            assert stored is not None
            subscription_ids.add(stored.subscription_id)
        assert len(subscription_ids) == 1 and None not in subscription_ids
    finally:
        eng.store.close()
