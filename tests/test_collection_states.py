"""Subscription states (pending, trialing, past_due) as data, cell by cell; pending orders
abandoned at ``abandon_on``; segments (leads until the first approved payment). Issue 14."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date, timedelta

import attrs
import pytest

from billing_core import BillingEngine, Customer, InvalidValueError, Period, Subscription
from billing_core import SubscriptionState as S
from billing_core.engine.results import ChargeOutcome
from billing_core.plugins.events import SubscriptionAbandoned
from billing_core.plugins.sandbox_gateway import Fault
from billing_core.rules.subscription_states import (
    TRANSITIONS,
    StateEvent,
    StateReason,
    next_state,
)
from test_engine import ADMIN, AGENT, START
from test_engine_instruments import TEN, make_engine, sandbox

E = StateEvent

# Written out again by hand, so a change to the table must be made twice (here and in the rule).
EXPECTED = {
    (S.PENDING, E.ACTIVATE): S.ACTIVE,
    (S.PENDING, E.START_TRIAL): S.TRIALING,
    (S.PENDING, E.ABANDON): S.CANCELLED,
    (S.PENDING, E.CANCEL): S.CANCELLED,
    (S.TRIALING, E.TRIAL_PAID): S.ACTIVE,
    (S.TRIALING, E.RENEWAL_UNPAID): S.PAST_DUE,
    (S.TRIALING, E.CANCEL): S.CANCELLED,
    (S.ACTIVE, E.RENEWAL_PAID): S.ACTIVE,
    (S.ACTIVE, E.RENEWAL_UNPAID): S.PAST_DUE,
    (S.ACTIVE, E.SUSPEND): S.SUSPENDED,
    (S.ACTIVE, E.CANCEL): S.CANCELLED,
    (S.ACTIVE, E.EXPIRE): S.EXPIRED,
    (S.PAST_DUE, E.RENEWAL_PAID): S.ACTIVE,
    (S.PAST_DUE, E.DELINQUENT): S.CANCELLED,
    (S.PAST_DUE, E.CANCEL): S.CANCELLED,
    (S.SUSPENDED, E.REENABLE): S.ACTIVE,
    (S.SUSPENDED, E.CANCEL): S.CANCELLED,
}
CELLS = list(itertools.product(S, E))


@pytest.mark.parametrize(("state", "event"), CELLS, ids=[f"{s}-{e}" for s, e in CELLS])
def test_every_cell(state: S, event: StateEvent) -> None:
    move = next_state(state, event)
    if (state, event) in EXPECTED:
        assert move.allowed and move.state is EXPECTED[(state, event)]
        label = event.value.replace("_", " ").capitalize()
        assert move.explanation == f"{label}: {state.value} -> {move.state.value}."
    else:
        assert move.denied and move.reason is StateReason.TRANSITION_NOT_ALLOWED
        assert move.state is state
        article = "An" if state in (S.ACTIVE, S.EXPIRED) else "A"
        assert move.explanation.startswith(
            f"{article} {state.value.replace('_', ' ')} subscription cannot "
            f"{event.value.replace('_', ' ')}; allowed: "
        )


def test_the_table_is_exactly_the_expected_one() -> None:
    assert dict(TRANSITIONS) == EXPECTED


def test_final_states_have_no_way_out() -> None:
    for state in (S.CANCELLED, S.EXPIRED):
        move = next_state(state, E.CANCEL)
        assert move.explanation.endswith("allowed: nothing (it is final).")


def test_a_past_due_subscription_never_renews_without_the_money() -> None:
    """Only a paid renewal leads from past_due back to active."""
    ways_back = [
        e for (s, e), after in TRANSITIONS.items() if s is S.PAST_DUE and after is S.ACTIVE
    ]
    assert ways_back == [E.RENEWAL_PAID]


# -- pending orders ----------------------------------------------------------------------------------
@pytest.fixture
def engine(store_url: str) -> Iterator[BillingEngine]:
    eng = make_engine(store_url)
    yield eng
    eng.store.close()


def _pending(engine: BillingEngine, sub_id: str, start: date) -> Subscription:
    sub = Subscription(
        id=sub_id,
        customer_id="c1",
        term=Period.months(1),
        start=start,
        inventory={"dv": 1},
        unit_prices={"dv": TEN},
        state=S.PENDING,
    )
    with engine.store.session() as s:  # the host stored an order awaiting activation
        s.put_subscription(sub)
    return sub


def test_a_pending_order_is_abandoned_on_abandon_on(engine: BillingEngine) -> None:
    _pending(engine, "sub-old", date(2026, 11, 7))  # abandoned on 2026-11-21 (today)
    _pending(engine, "sub-new", date(2026, 11, 8))  # abandoned on 2026-11-22
    result = engine.abandon_pending_orders(START, abandon_after=Period.days(14))
    assert result.abandoned == ("sub-old",)
    assert result.explanations == (
        "Subscription sub-old: Created 2026-11-07 and not activated within 14 days: "
        "abandoned on 2026-11-21.",
    )
    old = engine.subscription("sub-old")
    assert (old.state, old.auto_renew) == (S.CANCELLED, False)
    assert engine.subscription("sub-new").state is S.PENDING
    assert [e.action for e in engine.audit_log(subject_id="sub-old")] == ["subscription.abandoned"]
    (event,) = [e for e in engine.events if isinstance(e, SubscriptionAbandoned)]
    assert event.subscription.id == "sub-old" and event.subscription.state is S.CANCELLED
    assert event.explanation == result.explanations[0]
    later = engine.abandon_pending_orders(START + timedelta(days=1), abandon_after=Period.days(14))
    assert later.abandoned == ("sub-new",)
    assert (
        engine.abandon_pending_orders(
            START + timedelta(days=2), abandon_after=Period.days(14)
        ).abandoned
        == ()
    )
    assert sandbox(engine).calls["sale"] == 0


def test_abandoning_is_a_job(engine: BillingEngine) -> None:
    refused = engine.abandon_pending_orders(START, abandon_after=Period.days(1), actor=AGENT)
    assert refused.abandoned == () and refused.explanations[0].startswith("Only ")
    with pytest.raises(InvalidValueError, match=r"\$\.now"):
        engine.abandon_pending_orders(START.replace(tzinfo=None), abandon_after=Period.days(1))


# -- segments ----------------------------------------------------------------------------------------
def test_a_customer_is_a_lead_until_its_first_approved_payment(engine: BillingEngine) -> None:
    engine.add_customer(Customer(id="c2", company="Beta"), actor=ADMIN)
    assert engine.segment("c1") == "lead"
    assert [c.id for c in engine.leads()] == ["c1", "c2"]
    sandbox(engine).script("sale", [Fault.DECLINE])
    declined = engine.charge("c1", TEN, idempotency_key="d", actor=AGENT)
    assert declined.outcome is ChargeOutcome.DECLINED
    assert engine.segment("c1") == "lead"  # a declined payment is not an approved one
    assert engine.charge("c1", TEN, idempotency_key="p", actor=AGENT).outcome is (
        ChargeOutcome.CHARGED
    )
    assert engine.segment("c1") == "customer"
    assert [c.id for c in engine.leads()] == ["c2"]
    assert [c.id for c in engine.customers(segment="customer")] == ["c1"]
    assert [c.id for c in engine.customers()] == ["c1", "c2"]
    with pytest.raises(InvalidValueError, match=r"\$\.segment"):
        engine.customers(segment="prospect")


def test_an_unknown_answer_is_not_an_approved_payment(engine: BillingEngine) -> None:
    sandbox(engine).script("sale", [Fault.TIMEOUT_AFTER_SEND])
    engine.charge("c1", TEN, idempotency_key="u", actor=AGENT)
    assert engine.segment("c1") == "lead"
    engine.reconcile()  # the gateway did charge it: now it is approved
    assert engine.segment("c1") == "customer"


def test_past_due_is_stored_by_every_store(engine: BillingEngine) -> None:
    sub = _pending(engine, "sub-1", date(2026, 11, 1))
    with engine.store.session() as s:
        s.put_subscription(attrs.evolve(sub, state=S.PAST_DUE))
    with engine.store.session() as s:
        assert [x.id for x in s.list_subscriptions(states=[S.PAST_DUE])] == ["sub-1"]


# -- activation --------------------------------------------------------------------------------------
def _order(engine: BillingEngine, key: str) -> str:
    order = engine.add_subscription(
        "c1",
        term=Period.months(1),
        inventory={"dv": 1},
        unit_prices={"dv": TEN},
        idempotency_key=key,
        actor=AGENT,
        pending=True,
    )
    assert (order.outcome, order.charge) == (ChargeOutcome.PENDING, None)
    assert order.subscription_id is not None
    return order.subscription_id


def test_a_pending_order_is_charged_when_activated(engine: BillingEngine) -> None:
    sub_id = _order(engine, "o1")
    assert engine.subscription(sub_id).state is S.PENDING
    assert sandbox(engine).calls["sale"] == 0
    engine.clock.advance(timedelta(days=3))  # type: ignore[attr-defined]
    done = engine.activate(sub_id, idempotency_key="a1", actor=AGENT)
    assert done.outcome is ChargeOutcome.CHARGED and done.subscription_id == sub_id
    active = engine.subscription(sub_id)
    assert (active.state, active.start) == (S.ACTIVE, date(2026, 11, 24))  # from activation
    assert engine.activate(sub_id, idempotency_key="a1", actor=AGENT) == done  # a replay
    again = engine.activate(sub_id, idempotency_key="a2", actor=AGENT)
    assert (again.outcome, again.reason) == (ChargeOutcome.DENIED, "not_pending")
    assert again.explanation == (
        "An active subscription cannot activate; allowed: cancel, expire, renewal_paid, "
        "renewal_unpaid, suspend."
    )
    assert sandbox(engine).calls["sale"] == 1
    assert engine.abandon_pending_orders(START + timedelta(days=60)).abandoned == ()


def test_a_declined_activation_stays_pending(engine: BillingEngine) -> None:
    sub_id = _order(engine, "o2")
    sandbox(engine).script("sale", [Fault.DECLINE])
    declined = engine.activate(sub_id, idempotency_key="a1", actor=AGENT)
    assert declined.outcome is ChargeOutcome.DECLINED
    assert engine.subscription(sub_id).state is S.PENDING
    paid = engine.activate(sub_id, idempotency_key="a2", actor=AGENT)
    assert paid.outcome is ChargeOutcome.CHARGED
    assert engine.subscription(sub_id).state is S.ACTIVE


def test_an_activation_in_doubt_blocks_a_second_one(engine: BillingEngine) -> None:
    """Two activations never both charge: while the first one's sale may have taken the
    money, a second activation (another key) is refused and nothing is sent."""
    sub_id = _order(engine, "o3")
    sandbox(engine).script("sale", [Fault.TIMEOUT_AFTER_SEND])
    lost = engine.activate(sub_id, idempotency_key="a1", actor=AGENT)
    assert lost.outcome is ChargeOutcome.UNKNOWN
    second = engine.activate(sub_id, idempotency_key="a2", actor=AGENT)
    assert (second.outcome, second.reason) == (ChargeOutcome.DENIED, "not_pending")
    assert "another activation charged it" in second.explanation
    later = START + timedelta(days=31)
    assert engine.abandon_pending_orders(later).abandoned == ()  # in doubt: not abandoned
    assert sandbox(engine).calls["sale"] == 1


def test_a_pending_order_names_no_domains(engine: BillingEngine) -> None:
    with pytest.raises(InvalidValueError, match=r"\$\.domains"):
        engine.add_subscription(
            "c1",
            term=Period.months(1),
            inventory={"dv": 1},
            unit_prices={"dv": TEN},
            domains=["a.example"],
            idempotency_key="o4",
            actor=AGENT,
            pending=True,
        )


def test_an_order_never_activated_is_abandoned(engine: BillingEngine) -> None:
    sub_id = _order(engine, "o5")
    assert engine.abandon_pending_orders(START + timedelta(days=29)).abandoned == ()
    assert engine.abandon_pending_orders(START + timedelta(days=30)).abandoned == (sub_id,)
    refused = engine.activate(sub_id, idempotency_key="late", actor=AGENT)
    assert refused.reason == "not_pending"
    assert sandbox(engine).calls["sale"] == 0
