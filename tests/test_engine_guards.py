"""Issue 10, observations 1, 2, 3, 4, 11 and 12: one guard path for every engine call, one result
family, one set of limits, and suspension as a pause. On memory, a SQLite file and PostgreSQL.

Each ``TestObservationN`` class failed on the code before the issue and passes after it.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_core import (
    BillingEngine,
    Coupon,
    CreditMemoItem,
    Customer,
    InvalidAmountError,
    InvalidTypeError,
    InvoiceLine,
    Money,
    NotFoundError,
    PaymentInstrument,
    Period,
    SubscriptionState,
    UsageEvent,
)
from billing_core.engine import guards
from billing_core.engine.results import (
    CancellationOutcome,
    ChargeOutcome,
    CustomerOutcome,
    CustomerResult,
    InventoryOutcome,
    JobOutcome,
    RefundOutcome,
    RenewalOutcome,
    StateOutcome,
    UsageOutcome,
)
from billing_core.errors import PermissionDeniedError
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.rules import limits, metering, pricing
from billing_core.rules.permissions import DEFAULT_POLICY, SYSTEM_ACTOR, Actor
from billing_core.testing.clock import ManualClock
from test_engine import ADMIN, AGENT, START, _sandbox

INTERN = Actor(id="ivy", role="intern")
CARD = PaymentInstrument(id="pi-1")  # a role the policy does not know
USD = "USD"
MONTHLY = Period.months(1)


@pytest.fixture
def engine(store_url: str) -> Iterator[BillingEngine]:
    url = store_url
    clock = ManualClock(START)
    gateway = SandboxGateway(clock=clock, settle_after=timedelta(days=1))
    eng = BillingEngine(store=url, clock=clock, gateway=gateway)
    eng.add_customer(Customer(id="c1", company="Acme", timezone="America/New_York"), actor=ADMIN)
    yield eng
    eng.store.close()


def _clock(engine: BillingEngine) -> ManualClock:
    assert isinstance(engine.clock, ManualClock)
    return engine.clock


def _subscribe(
    engine: BillingEngine, key: str, *, term: Period = MONTHLY, customer: str = "c1"
) -> str:
    result = engine.add_subscription(
        customer,
        term=term,
        inventory={"dv": 1},
        unit_prices={"dv": Money("10.00", USD)},
        idempotency_key=key,
        actor=ADMIN,
    )
    assert result.outcome is ChargeOutcome.CHARGED, result.explanation
    assert result.subscription_id is not None
    return result.subscription_id


def _sales(engine: BillingEngine) -> int:
    return _sandbox(engine).calls["sale"]


# -- observation 1 ---------------------------------------------------------------------------------
class TestObservation1MissingCustomer:
    def test_charging_a_customer_that_does_not_exist_raises_and_writes_nothing(
        self, engine: BillingEngine
    ) -> None:
        with pytest.raises(NotFoundError) as info:
            engine.charge("nobody", Money("5.00", USD), idempotency_key="k", actor=ADMIN)
        assert info.value.field == "$.customer_id"
        assert (_sales(engine), engine.transactions()) == (0, [])
        # the key was never taken: it works for a real customer
        ok = engine.charge("c1", Money("5.00", USD), idempotency_key="k", actor=ADMIN)
        assert ok.outcome is ChargeOutcome.CHARGED

    def test_add_subscription_and_inventory_refuse_missing_records_before_the_key(
        self, engine: BillingEngine
    ) -> None:
        with pytest.raises(NotFoundError, match="no customer 'nobody'"):
            _subscribe(engine, "k", customer="nobody")
        with pytest.raises(NotFoundError) as info:
            engine.add_inventory(
                "sub-x", certificate_type="dv", quantity=1, idempotency_key="k2", actor=ADMIN
            )
        assert info.value.field == "$.subscription_id"
        _subscribe(engine, "k")  # neither key was left behind


# -- observation 2 ---------------------------------------------------------------------------------
class TestObservation2Blocklist:
    def test_a_blocklisted_customer_is_refused_every_paying_call(
        self, engine: BillingEngine
    ) -> None:
        sub = _subscribe(engine, "s1")
        paid = engine.charge("c1", Money("7.00", USD), idempotency_key="before", actor=ADMIN)
        engine.suspend(sub, actor=ADMIN)
        assert engine.blocklist_customer("c1", actor=ADMIN).outcome is CustomerOutcome.BLOCKLISTED
        sales = _sales(engine)
        answers: dict[str, Any] = {
            "charge": engine.charge("c1", Money("5.00", USD), idempotency_key="c", actor=ADMIN),
            "add_subscription": engine.add_subscription(
                "c1",
                term=Period.months(1),
                inventory={"dv": 1},
                unit_prices={"dv": Money("10.00", USD)},
                idempotency_key="s2",
                actor=ADMIN,
            ),
            "add_inventory": engine.add_inventory(
                sub, certificate_type="dv", quantity=1, idempotency_key="i", actor=ADMIN
            ),
            "change_renewal_inventory": engine.change_renewal_inventory(
                sub, inventory={"dv": 5}, actor=ADMIN
            ),
            "reenable": engine.reenable(sub, actor=ADMIN),
        }
        for name, answer in answers.items():
            assert answer.outcome == "denied", name
            assert answer.reason == "customer_blocklisted", name
            assert "Customer c1 (Acme) is blocklisted" in answer.explanation, name
        assert answers["add_inventory"].outcome is InventoryOutcome.DENIED
        assert answers["charge"].explanation == (
            "Customer c1 (Acme) is blocklisted: it cannot be charged until an admin lifts the "
            "blocklisting (unblocklist_customer). Refunds, suspending and cancelling stay possible."
        )
        assert _sales(engine) == sales
        stored = engine.subscription(sub)
        assert (stored.state, dict(stored.inventory)) == (SubscriptionState.SUSPENDED, {"dv": 1})
        assert engine.invoice_lines(sub) == []
        denied = [e.action for e in engine.audit_log() if e.action.endswith(".denied")]
        assert sorted(denied) == sorted(f"{n}.denied" for n in answers)
        # a replay of a charge made before the blocklisting still tells the truth
        again = engine.charge("c1", Money("7.00", USD), idempotency_key="before", actor=ADMIN)
        assert again == paid
        # refunds and cancelling stay possible
        _clock(engine).advance(days=2)
        assert paid.transaction_id is not None
        refund = engine.refund_transaction(paid.transaction_id, idempotency_key="r", actor=AGENT)
        assert refund.outcome is RefundOutcome.REFUNDED
        assert engine.cancel(sub, actor=AGENT).outcome is StateOutcome.CANCELLED

    def test_renewals_of_a_blocklisted_customer_are_refused(self, engine: BillingEngine) -> None:
        sub = _subscribe(engine, "s1")
        engine.blocklist_customer("c1", actor=ADMIN)
        _clock(engine).advance(days=31)
        run = engine.renew_due(actor=ADMIN)
        [refused] = run.renewals
        assert (refused.subscription_id, refused.outcome) == (sub, RenewalOutcome.DENIED)
        assert refused.reason == "customer_blocklisted"
        assert _sales(engine) == 1
        assert engine.subscription(sub).start == date(2026, 11, 21)
        assert run.explanation == "0 subscriptions renewed, 0 expired, 1 refused."

    def test_only_an_admin_lifts_a_blocklisting_and_the_same_key_then_works(
        self, engine: BillingEngine
    ) -> None:
        engine.blocklist_customer("c1", actor=ADMIN)
        denied = engine.charge("c1", Money("5.00", USD), idempotency_key="k", actor=ADMIN)
        assert denied.outcome is ChargeOutcome.DENIED
        agent = engine.unblocklist_customer("c1", actor=AGENT)
        assert (agent.allowed, agent.reason) == (False, "permission_denied")
        assert agent.explanation == (
            "Only admin may lift a customer's blocklisting; sam is a support agent."
        )
        assert engine.customer("c1").blocklisted
        lifted = engine.unblocklist_customer("c1", actor=ADMIN)
        assert lifted.outcome is CustomerOutcome.UNBLOCKLISTED and lifted.allowed
        assert not engine.customer("c1").blocklisted
        charged = engine.charge("c1", Money("5.00", USD), idempotency_key="k", actor=ADMIN)
        assert charged.outcome is ChargeOutcome.CHARGED  # a denial is not stored under the key
        assert engine.unblocklist_customer("c1", actor=ADMIN).outcome is CustomerOutcome.UNCHANGED


# -- observation 3 ---------------------------------------------------------------------------------
def _public_methods() -> set[str]:
    return {
        name
        for name in dir(BillingEngine)
        if not name.startswith("_") and name not in guards.PLUMBING
    }


def test_every_public_engine_method_has_a_permission_action() -> None:
    missing = _public_methods() - set(guards.METHOD_ACTIONS)
    assert not missing, f"engine methods without a permission action: {sorted(missing)}"
    assert set(guards.METHOD_ACTIONS) <= _public_methods(), "an action for a method that is gone"
    unlisted = {a for a in guards.METHOD_ACTIONS.values() if a not in DEFAULT_POLICY.rules}
    assert not unlisted, f"actions the default policy does not list: {sorted(unlisted)}"
    for name in _public_methods():  # and every one of them takes an actor
        assert "actor" in inspect.signature(getattr(BillingEngine, name)).parameters, name


def _write_calls(
    engine: BillingEngine, sub: str, tx: str, cert: str
) -> dict[str, Callable[[Actor], Any]]:
    price = metering.MeteredPrice(model=pricing.PerUnit(unit_price=Money("0.01", USD)))
    event = UsageEvent(id="u1", quantity=1, at=START, subscription_id=sub)
    return {
        "add_customer": lambda a: engine.add_customer(Customer(id="c9", company="X"), actor=a),
        "update_customer": lambda a: engine.update_customer(
            Customer(id="c1", company="Renamed"), actor=a
        ),
        "blocklist_customer": lambda a: engine.blocklist_customer("c1", actor=a),
        "unblocklist_customer": lambda a: engine.unblocklist_customer("c1", actor=a),
        "add_subscription": lambda a: engine.add_subscription(
            "c1",
            term=Period.months(1),
            inventory={"dv": 1},
            unit_prices={"dv": Money("10.00", USD)},
            idempotency_key="k-sub",
            actor=a,
        ),
        "add_inventory": lambda a: engine.add_inventory(
            sub, certificate_type="dv", quantity=1, idempotency_key="k-inv", actor=a
        ),
        "change_renewal_inventory": lambda a: engine.change_renewal_inventory(
            sub, inventory={"dv": 3}, actor=a
        ),
        "suspend": lambda a: engine.suspend(sub, actor=a),
        "reenable": lambda a: engine.reenable(sub, actor=a),
        "cancel": lambda a: engine.cancel(sub, actor=a),
        "renew_due": lambda a: engine.renew_due(actor=a),
        "charge": lambda a: engine.charge(
            "c1", Money("5.00", USD), idempotency_key="k-ch", actor=a
        ),
        "activate": lambda a: engine.activate(sub, idempotency_key="k-act", actor=a),
        "add_instrument": lambda a: engine.add_instrument("c1", CARD, actor=a),
        "update_instrument": lambda a: engine.update_instrument("c1", CARD, actor=a),
        "deactivate_instrument": lambda a: engine.deactivate_instrument("c1", "pi-1", actor=a),
        "set_payment_order": lambda a: engine.set_payment_order("c1", primary_id=None, actor=a),
        "set_default_instrument": lambda a: engine.set_default_instrument(sub, None, actor=a),
        "add_blocklist_entry": lambda a: engine.add_blocklist_entry("ip", "1.2.3.4", actor=a),
        "lift_blocklist_entry": lambda a: engine.lift_blocklist_entry("bl-1", actor=a),
        "refund_transaction": lambda a: engine.refund_transaction(
            tx, idempotency_key="k-r", actor=a
        ),
        "refund_order": lambda a: engine.refund_order(tx, idempotency_key="k-o", actor=a),
        "process_refund_queue": lambda a: engine.process_refund_queue(actor=a),
        "reconcile": lambda a: engine.reconcile(actor=a),
        "request_certificate_cancellation": lambda a: engine.request_certificate_cancellation(
            cert, actor=a
        ),
        "record_usage": lambda a: engine.record_usage([event], actor=a),
        "close_metered_period": lambda a: engine.close_metered_period(
            sub,
            price=price,
            start=START,
            end=START + timedelta(days=1),
            idempotency_key="k-close",
            actor=a,
        ),
        **_invoice_calls(engine),
    }


def _invoice_calls(engine: BillingEngine) -> dict[str, Callable[[Actor], Any]]:
    """The invoice calls, on the rig's invoice (issued from a pending line of its subscription)."""
    (invoice,) = [i for i in engine.invoices("c1") if i.receipt_for is None]
    item = CreditMemoItem(description="seat", quantity=1, unit_price=Money("1.00", USD))
    return {
        "issue_due_invoices": lambda a: engine.issue_due_invoices(actor=a),
        "finalize": lambda a: engine.finalize(invoice.id, actor=a),
        "void_invoice": lambda a: engine.void_invoice(invoice.id, actor=a),
        "pay_invoice": lambda a: engine.pay_invoice(invoice.id, idempotency_key="k-pay", actor=a),
        "create_credit_memo": lambda a: engine.create_credit_memo(
            "c1", [item], idempotency_key="k-cm", actor=a
        ),
        "redeem_coupon": lambda a: engine.redeem_coupon(
            "c1", Coupon(id="welcome", percent_off=10), actor=a
        ),
        "set_tax_profile": lambda a: engine.set_tax_profile("c1", tax_ids=["X-1"], actor=a),
    }


def _snapshot(engine: BillingEngine, sub: str) -> tuple[Any, ...]:
    """Everything a call could change, but the audit entries of denials."""
    with engine.store.session() as s:
        subs = sorted(s.list_subscriptions(), key=lambda x: x.id)
        customers = [s.get_customer(c) for c in ("c1", "c2", "c9")]
        certificates = s.certificates_for_domain("a.example")
    audit = [e for e in engine.audit_log() if not e.action.endswith(".denied")]
    with engine.store.session() as s:
        invoicing = (
            s.list_invoices(),
            s.list_credit_memos(),
            s.list_coupon_redemptions(),
            s.get_tax_profile("c1"),
        )
    return (
        invoicing,
        subs,
        customers,
        certificates,
        engine.transactions(),
        engine.invoice_lines(sub),
        engine.refund_queue(),
        audit,
        dict(_sandbox(engine).calls),
    )


@pytest.fixture
def rig(engine: BillingEngine) -> tuple[BillingEngine, str, str, str]:
    """c1 with a subscription (one certificate for a.example) and a settled charge."""
    sub = engine.add_subscription(
        "c1",
        term=Period.months(1),
        inventory={"dv": 1},
        unit_prices={"dv": Money("10.00", USD)},
        domains=["a.example"],
        idempotency_key="rig",
        actor=ADMIN,
    )
    assert sub.subscription_id and sub.charge and sub.charge.transaction_id
    with engine.store.session() as s:
        line = InvoiceLine(description="extra seat", amount=Money("3.00", USD))
        s.add_invoice_lines(sub.subscription_id, [line])
    assert len(engine.issue_due_invoices().invoices) == 1
    _clock(engine).advance(days=2)
    return engine, sub.subscription_id, sub.charge.transaction_id, sub.certificate_ids[0]


class TestObservation3Permissions:
    def test_an_unknown_role_is_refused_every_call_and_changes_nothing(
        self, rig: tuple[BillingEngine, str, str, str]
    ) -> None:
        engine, sub, tx, cert = rig
        before = _snapshot(engine, sub)
        for name, call in _write_calls(engine, sub, tx, cert).items():
            answer = call(INTERN)
            assert answer.outcome == "denied", name
            assert answer.reason == "permission_denied", name
            assert "ivy is an intern" in answer.explanation, name
        assert _snapshot(engine, sub) == before
        denials = [e for e in engine.audit_log() if e.action.endswith(".denied")]
        assert len(denials) == len(_write_calls(engine, sub, tx, cert))
        assert {e.actor for e in denials} == {"ivy"}

    def test_reads_by_an_unknown_role_raise_and_default_to_the_host(
        self, rig: tuple[BillingEngine, str, str, str]
    ) -> None:
        engine, sub, tx, _ = rig
        with pytest.raises(PermissionDeniedError) as info:
            engine.transaction(tx, actor=INTERN)
        assert info.value.field == "$.actor"
        assert isinstance(info.value, PermissionError)
        with pytest.raises(PermissionDeniedError):
            engine.audit_log(actor=INTERN)
        assert engine.transaction(tx).id == tx  # no actor: the host itself (SYSTEM_ACTOR)
        assert engine.subscription(sub, actor=AGENT).id == sub

    def test_the_jobs_run_as_the_system_and_refuse_a_support_agent(
        self, rig: tuple[BillingEngine, str, str, str]
    ) -> None:
        engine, *_ = rig
        assert engine.process_refund_queue().outcome is JobOutcome.DONE
        assert engine.reconcile(actor=SYSTEM_ACTOR).outcome is JobOutcome.DONE
        refused = engine.process_refund_queue(actor=AGENT)
        assert (refused.outcome, refused.reason) == (JobOutcome.DENIED, "permission_denied")
        assert refused.explanation == (
            "Only admin or system may run the refund retry queue; sam is a support agent."
        )
        assert engine.renew_due(actor=AGENT).outcome is JobOutcome.DENIED
        assert engine.record_usage([], actor=AGENT).outcome is UsageOutcome.DENIED


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_refused_call_changes_the_store_or_calls_the_gateway(
    rig: tuple[BillingEngine, str, str, str], data: st.DataObject
) -> None:
    """Property: a denied actor (any call), or a blocklisted or missing customer (any paying
    call), changes nothing in the store and never reaches the gateway."""
    engine, sub, tx, cert = rig
    if not engine.customer("c1").blocklisted:
        engine.blocklist_customer("c1", actor=ADMIN)
    calls = _write_calls(engine, sub, tx, cert)
    case = data.draw(st.sampled_from(["actor", "blocklisted", "missing"]), label="case")
    before = _snapshot(engine, sub)
    if case == "actor":
        role = data.draw(
            st.text(min_size=1, max_size=8).filter(
                lambda r: r not in ("admin", "support_agent", "system")
            )
        )
        name = data.draw(st.sampled_from(sorted(calls)), label="call")
        answer = calls[name](Actor(id="x", role=role))
        assert (answer.outcome, answer.reason) == ("denied", "permission_denied")
    elif case == "blocklisted":
        name = data.draw(st.sampled_from(sorted(guards.PAYING_METHODS - {"renew_due"})))
        if name == "reenable":
            engine.suspend(sub, actor=ADMIN)
            before = _snapshot(engine, sub)
        answer = calls[name](data.draw(st.sampled_from([ADMIN, AGENT])))
        assert (answer.outcome, answer.reason) == ("denied", "customer_blocklisted")
    else:
        missing = data.draw(st.sampled_from(["nobody", "c-404"]))
        refused: Callable[[], object] = (
            (lambda: engine.charge(missing, Money("1.00", USD), idempotency_key="m", actor=ADMIN))
            if data.draw(st.booleans())
            else lambda: engine.add_inventory(
                missing, certificate_type="dv", quantity=1, idempotency_key="m", actor=ADMIN
            )
        )
        with pytest.raises(NotFoundError):
            refused()
    assert _snapshot(engine, sub) == before


# -- observation 4 ---------------------------------------------------------------------------------
def _race_add(engine: BillingEngine, customer_id: str, *, callers: int) -> list[CustomerResult]:
    barrier = threading.Barrier(callers)
    results: list[CustomerResult] = []

    def add(i: int) -> None:
        barrier.wait()
        new = Customer(id=customer_id, company=f"Co {i}")
        results.append(engine.add_customer(new, actor=ADMIN))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


class TestObservation4Customers:
    def test_adding_an_existing_id_is_refused_and_keeps_the_blocklisting(
        self, engine: BillingEngine
    ) -> None:
        engine.blocklist_customer("c1", actor=ADMIN)
        again = engine.add_customer(Customer(id="c1", company="Other Co"), actor=AGENT)
        assert (again.outcome, again.reason) == (CustomerOutcome.DENIED, "customer_exists")
        assert not again.allowed
        assert "Customer c1 already exists (Acme)" in again.explanation
        stored = engine.customer("c1")
        assert (stored.company, stored.blocklisted) == ("Acme", True)

    def test_concurrent_adds_of_one_id_add_it_once(self, engine: BillingEngine) -> None:
        """Six callers add the same new id at once, ten times over: exactly one is added, the
        others are refused ``customer_exists`` and the stored record is the winner's (on
        PostgreSQL the read-then-write used to let two callers both "add" it, the second
        silently replacing the first)."""
        for round_ in range(10):
            results = _race_add(engine, f"race-{round_}", callers=6)
            outcomes = sorted(r.outcome.value for r in results)
            assert outcomes == ["added"] + ["denied"] * 5, outcomes
            (winner,) = [r for r in results if r.outcome is CustomerOutcome.ADDED]
            assert winner.customer is not None
            assert engine.customer(f"race-{round_}").company == winner.customer.company
            assert all(r.reason == "customer_exists" for r in results if r is not winner)

    def test_update_customer_changes_details_but_never_the_blocklisting(
        self, engine: BillingEngine
    ) -> None:
        engine.blocklist_customer("c1", actor=ADMIN)
        updated = engine.update_customer(
            Customer(id="c1", company="Acme Ltd", timezone="America/New_York"), actor=AGENT
        )
        assert updated.outcome is CustomerOutcome.UPDATED
        assert "stays blocklisted: only unblocklist_customer changes that" in updated.explanation
        stored = engine.customer("c1")
        assert (stored.company, stored.blocklisted) == ("Acme Ltd", True)
        assert updated.customer == stored
        with pytest.raises(NotFoundError):
            engine.update_customer(Customer(id="c404", company="X"), actor=AGENT)

    def test_a_new_customer_blocklisted_from_the_start_needs_an_admin(
        self, engine: BillingEngine
    ) -> None:
        fraud = Customer(id="c2", company="Fraud", blocklisted=True)
        refused = engine.add_customer(fraud, actor=AGENT)
        assert (refused.outcome, refused.reason) == (CustomerOutcome.DENIED, "permission_denied")
        with pytest.raises(NotFoundError):
            engine.customer("c2")
        assert engine.add_customer(fraud, actor=ADMIN).outcome is CustomerOutcome.ADDED
        assert engine.customer("c2").blocklisted


# -- observation 11 --------------------------------------------------------------------------------
class TestObservation11Limits:
    def test_a_zero_charge_is_bad_input(self, engine: BillingEngine) -> None:
        with pytest.raises(InvalidAmountError) as info:
            engine.charge("c1", Money("0.00", USD), idempotency_key="z", actor=ADMIN)
        assert str(info.value) == "must be positive @ $.amount"
        assert (_sales(engine), engine.transactions()) == (0, [])

    def test_a_trillion_certificate_order_is_bad_input(self, engine: BillingEngine) -> None:
        with pytest.raises(InvalidAmountError) as info:
            engine.add_subscription(
                "c1",
                term=Period.years(1),
                inventory={"dv": 10**12},
                unit_prices={"dv": Money("10.00", USD)},
                idempotency_key="huge",
                actor=ADMIN,
            )
        assert info.value.field == "$.inventory.dv"
        assert "must be at most 1,000,000 units" in str(info.value)
        assert _sales(engine) == 0

    def test_an_order_over_the_maximum_amount_is_bad_input(self, engine: BillingEngine) -> None:
        with pytest.raises(InvalidAmountError) as info:
            engine.add_subscription(
                "c1",
                term=Period.years(1),
                inventory={"dv": 1_000_000},
                unit_prices={"dv": Money("1000000.01", USD)},
                idempotency_key="dear",
                actor=ADMIN,
            )
        assert info.value.field == "$.inventory"
        assert str(info.value) == (
            "comes to 1,000,000,010,000.00 USD, more than the maximum of "
            "1,000,000,000,000 USD @ $.inventory"
        )

    def test_add_inventory_has_the_same_limits(self, engine: BillingEngine) -> None:
        sub = _subscribe(engine, "s")
        for quantity, message in [
            (10**30, "must be at most 1,000,000 units"),
            (0, "must be positive"),
            (1_000_000, "must be at most 1,000,000 units, not 1,000,001"),  # 1 already there
        ]:
            with pytest.raises(InvalidAmountError, match=message) as info:
                engine.add_inventory(
                    sub, certificate_type="dv", quantity=quantity, idempotency_key="i", actor=ADMIN
                )
            assert (info.value.field or "").startswith("$.quantity")
        with pytest.raises(InvalidAmountError) as renewal:
            engine.change_renewal_inventory(sub, inventory={"dv": 10**7}, actor=ADMIN)
        assert renewal.value.field == "$.inventory.dv"
        assert engine.invoice_lines(sub) == []
        assert dict(engine.subscription(sub).inventory) == {"dv": 1}
        added = engine.add_inventory(
            sub, certificate_type="dv", quantity=999_999, idempotency_key="i", actor=ADMIN
        )
        assert added.outcome is InventoryOutcome.CHANGED

    def test_a_float_quantity_names_its_field(self, engine: BillingEngine) -> None:
        sub = _subscribe(engine, "s")
        half: Any = 1.5
        with pytest.raises(InvalidTypeError) as info:
            engine.add_inventory(
                sub, certificate_type="dv", quantity=half, idempotency_key="f", actor=ADMIN
            )
        assert info.value.field == "$.quantity"


# -- observation 12 --------------------------------------------------------------------------------
class TestObservation12Results:
    def test_state_changes_answer_results(self, engine: BillingEngine) -> None:
        sub = _subscribe(engine, "s")
        suspended = engine.suspend(sub, actor=AGENT)
        assert (suspended.outcome, suspended.allowed) == (StateOutcome.SUSPENDED, True)
        assert suspended.subscription is not None
        assert suspended.subscription.suspended_on == date(2026, 11, 21)
        assert engine.suspend(sub, actor=AGENT).outcome is StateOutcome.UNCHANGED
        cancelled = engine.cancel(sub, actor=AGENT)
        assert cancelled.outcome is StateOutcome.CANCELLED
        refused = engine.reenable(sub, actor=AGENT)  # no exception
        assert (refused.outcome, refused.reason) == (
            StateOutcome.DENIED,
            "state_change_not_allowed",
        )
        assert refused.explanation == (
            f"Subscription {sub} is cancelled and cannot be re-enabled: a cancelled subscription "
            "stays cancelled: add a new subscription instead."
        )
        assert engine.subscription(sub).state is SubscriptionState.CANCELLED

    def test_customer_and_certificate_calls_answer_results(self, engine: BillingEngine) -> None:
        added = engine.add_customer(Customer(id="c2", company="Beta"), actor=AGENT)
        assert (added.outcome, added.customer_id, added.reason) == (
            CustomerOutcome.ADDED,
            "c2",
            None,
        )
        result = engine.add_subscription(
            "c2",
            term=Period.years(1),
            inventory={"dv": 1},
            unit_prices={"dv": Money("10.00", USD)},
            domains=["b.example"],
            idempotency_key="b",
            actor=AGENT,
        )
        [cert] = result.certificate_ids
        cancelled = engine.request_certificate_cancellation(cert, actor=AGENT)
        assert cancelled.outcome is CancellationOutcome.CANCELLED
        assert cancelled.explanation == f"Certificate {cert} for b.example was cancelled at once."

    def test_reenabling_after_95_days_bills_no_suspended_term(self, engine: BillingEngine) -> None:
        clock = _clock(engine)
        sub = _subscribe(engine, "s")  # monthly, 2026-11-21 to 2026-12-21 (New York dates)
        clock.advance(days=10)
        engine.suspend(sub, actor=AGENT)  # 2026-12-01, 20 days left
        clock.advance(days=95)
        back = engine.reenable(sub, actor=AGENT)  # 2027-03-06
        assert (back.outcome, back.paused_days) == (StateOutcome.REENABLED, 95)
        assert back.subscription is not None
        assert back.subscription.term_end == date(2027, 3, 26)  # 2026-12-21 + 95 days
        assert "resumes with the 20 days it had left and now ends 2027-03-26" in back.explanation
        for _ in range(4):  # before: three suspended terms were billed here
            assert engine.renew_due(actor=ADMIN).renewals == ()
        assert _sales(engine) == 1
        clock.advance(days=20)
        [renewed] = engine.renew_due(actor=ADMIN)
        assert (renewed.term_start, renewed.term_end) == (date(2027, 3, 26), date(2027, 4, 26))
        assert _sales(engine) == 2

    def test_reenabling_before_the_term_would_have_ended(self, engine: BillingEngine) -> None:
        clock = _clock(engine)
        sub = _subscribe(engine, "s")
        clock.advance(days=10)
        engine.suspend(sub, actor=AGENT)  # 2026-12-01
        clock.advance(days=5)
        back = engine.reenable(sub, actor=AGENT)  # 2026-12-06
        assert back.subscription is not None
        assert back.subscription.term_end == date(2026, 12, 26)
        clock.advance(days=15)  # 2026-12-21: the old term end, nothing renews
        assert engine.renew_due(actor=ADMIN).renewals == ()
        clock.advance(days=5)
        [renewed] = engine.renew_due(actor=ADMIN)
        assert renewed.term_start == date(2026, 12, 26)
        assert _sales(engine) == 2
        # the audit entry says how long it was paused
        [entry] = [e for e in engine.audit_log(subject_id=sub) if e.action == "subscription.active"]
        assert entry.detail["paused_days"] == 5

    def test_every_result_has_outcome_reason_and_explanation(self) -> None:
        from billing_core.engine import results

        for name in results.__all__:
            cls = getattr(results, name)
            if name.endswith("Result"):
                fields = {a.name for a in cls.__attrs_attrs__}
                assert {"outcome", "reason", "explanation"} <= fields, name


def test_limits_are_one_rule(engine: BillingEngine) -> None:
    """The documented maxima are the ones enforced."""
    assert limits.MAX_QUANTITY == 1_000_000
    assert str(limits.MAX_AMOUNT) == "1000000000000"
    assert (
        engine.charge(
            "c1", Money("1000000000000.00", USD), idempotency_key="max", actor=ADMIN
        ).outcome
        is ChargeOutcome.CHARGED
    )
    with pytest.raises(InvalidAmountError, match="more than the maximum") as info:
        engine.charge("c1", Money("1000000000000.01", USD), idempotency_key="over", actor=ADMIN)
    assert info.value.field == "$.amount"


def test_a_refused_actor_learns_nothing_about_missing_records(engine: BillingEngine) -> None:
    """The actor is checked before the records are looked up (guard order, docs/engine.md)."""
    answer = engine.add_inventory(
        "sub-404", certificate_type="dv", quantity=1, idempotency_key="k", actor=INTERN
    )
    assert (answer.outcome, answer.reason) == (InventoryOutcome.DENIED, "permission_denied")
    assert (
        engine.charge("nobody", Money("1.00", USD), idempotency_key="k", actor=INTERN).reason
        == "permission_denied"
    )
