"""Trials in the engine (issue 14): ``add_subscription(trial=...)`` stores the subscription
``trialing`` and charges nothing; ``renew_due`` charges its first term when the trial ends
(once, however many runs), a declined one goes past due and is chased; a trial cancelled before
its end is never charged. On memory, a SQLite file and PostgreSQL (``store_url``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from billing_core import (
    BillingEngine,
    Customer,
    Money,
    PaymentInstrument,
    Period,
    SubscriptionState,
)
from billing_core.engine.results import ChargeOutcome, RenewalOutcome, StateOutcome
from billing_core.errors import InvalidTypeError, InvalidValueError
from billing_core.plugins import events
from billing_core.plugins.manager import Plugins
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock
from billing_core.testing.hooked_gateway import HookedGateway

ADMIN = Actor(id="ada", role="admin")
AGENT = Actor(id="sam", role="support_agent")
START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
TRIAL_END = date(2026, 1, 15)
TEN = Money("10.00", "USD")

Rig = tuple[BillingEngine, HookedGateway, SandboxGateway]


@pytest.fixture
def rig(store_url: str) -> Iterator[Rig]:
    clock = ManualClock(START)
    inner = SandboxGateway(clock=clock, settle_after=timedelta(days=1))
    hooked = HookedGateway(inner)
    eng = BillingEngine(
        store=store_url,
        clock=clock,
        gateway=hooked,
        plugins=Plugins(clock=clock, entry_points=False),
    )
    eng.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
    eng.add_instrument("c1", PaymentInstrument(id="pi-visa"), primary=True, actor=AGENT)
    yield eng, hooked, inner
    eng.store.close()


def trial(engine: BillingEngine, **kw: object) -> str:
    result = engine.add_subscription(
        "c1",
        term=Period.months(1),
        inventory={"dv": 2},
        unit_prices={"dv": TEN},
        idempotency_key="t1",
        actor=AGENT,
        trial=Period.days(14),
        **kw,  # type: ignore[arg-type]
    )
    assert result.outcome is ChargeOutcome.TRIALING, result.explanation
    assert result.subscription_id is not None
    return result.subscription_id


def at(engine: BillingEngine, day: date) -> None:
    clock = engine.ctx.clock
    assert isinstance(clock, ManualClock)
    clock.set(datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC))


def test_a_trial_is_stored_trialing_and_charges_nothing(rig: Rig) -> None:
    engine, _, inner = rig
    result = engine.add_subscription(
        "c1",
        term=Period.months(1),
        inventory={"dv": 2},
        unit_prices={"dv": TEN},
        idempotency_key="t1",
        actor=AGENT,
        trial=Period.days(14),
    )
    assert result.outcome is ChargeOutcome.TRIALING
    assert result.charge is None
    assert (result.trial_end, result.term_start, result.term_end) == (
        TRIAL_END,
        TRIAL_END,
        date(2026, 2, 15),
    )
    assert result.explanation == (
        f"Subscription {result.subscription_id} is trialing for 14 days, from 2026-01-01 to "
        "2026-01-15: nothing is charged now. Its first term, 2026-01-15 to 2026-02-15, is "
        "charged 20.00 USD when the trial ends."
    )
    assert result.subscription_id is not None
    sub = engine.subscription(result.subscription_id)
    assert sub.state is SubscriptionState.TRIALING
    assert (sub.start, sub.term_end) == (TRIAL_END, date(2026, 2, 15))
    assert inner.calls.get("sale", 0) == 0 and engine.transactions() == []
    (added,) = [e for e in engine.events if isinstance(e, events.SubscriptionAdded)]
    assert added.charge is None and added.subscription.state is SubscriptionState.TRIALING
    (audit,) = engine.audit_log(subject_id=result.subscription_id)
    assert audit.action == "subscription.trialing"
    assert audit.detail["trial_end"] == "2026-01-15"
    # a replay of the key answers the same, storing nothing more
    again = engine.add_subscription(
        "c1",
        term=Period.months(1),
        inventory={"dv": 2},
        unit_prices={"dv": TEN},
        idempotency_key="t1",
        actor=AGENT,
        trial=Period.days(14),
    )
    assert again == result


def test_the_trial_end_charges_the_first_term_once(rig: Rig) -> None:
    engine, _, inner = rig
    sub_id = trial(engine)
    at(engine, date(2026, 1, 14))
    assert engine.renew_due(actor=ADMIN).renewals == ()  # the trial still runs
    at(engine, TRIAL_END)
    (converted,) = engine.renew_due(actor=ADMIN)
    assert converted.outcome is RenewalOutcome.RENEWED
    assert converted.charge is not None and converted.charge.amount == Money("20.00", "USD")
    assert converted.explanation == (
        f"The trial of subscription {sub_id} ended on 2026-01-15: its first term, 2026-01-15 "
        "to 2026-02-15, is charged 20.00 USD and it is active."
    )
    assert engine.renew_due(actor=ADMIN).renewals == ()  # the same day again: nothing
    sub = engine.subscription(sub_id)
    assert sub.state is SubscriptionState.ACTIVE
    assert (sub.start, sub.term_end) == (TRIAL_END, date(2026, 2, 15))
    assert [e.idempotency_key for e in inner.ledger()] == [f"trial:{sub_id}:2026-01-15:sale"]
    assert "subscription.trial_paid" in [e.action for e in engine.audit_log(subject_id=sub_id)]
    # the next term renews as usual
    at(engine, date(2026, 2, 15))
    (renewed,) = engine.renew_due(actor=ADMIN)
    assert renewed.outcome is RenewalOutcome.RENEWED
    assert engine.subscription(sub_id).term_end == date(2026, 3, 15)
    assert len(inner.ledger()) == 2


def test_a_run_during_the_conversion_charges_nothing(rig: Rig) -> None:
    engine, hooked, inner = rig
    sub_id = trial(engine)
    at(engine, TRIAL_END)
    inside: list[object] = []
    hooked.before["sale"] = lambda: inside.append(engine.renew_due(actor=ADMIN).renewals)
    (converted,) = engine.renew_due(actor=ADMIN)
    assert inside == [()]
    assert converted.renewed
    assert inner.calls["sale"] == 1
    assert engine.subscription(sub_id).state is SubscriptionState.ACTIVE


def test_a_declined_trial_end_goes_past_due_and_is_chased(rig: Rig) -> None:
    engine, _, inner = rig
    sub_id = trial(engine)
    inner.script("sale", ["decline"])
    at(engine, TRIAL_END)
    (unpaid,) = engine.renew_due(actor=ADMIN)
    assert unpaid.outcome is RenewalOutcome.PAST_DUE
    assert unpaid.next_attempt_on == date(2026, 1, 23)
    assert unpaid.explanation.startswith(
        f"Subscription {sub_id} is past due: its first term after its trial, 2026-01-15 to "
        "2026-02-15, was not paid:"
    )
    assert engine.subscription(sub_id).state is SubscriptionState.PAST_DUE
    at(engine, date(2026, 1, 22))
    assert engine.renew_due(actor=ADMIN).renewals == ()
    at(engine, date(2026, 1, 23))
    (paid,) = engine.renew_due(actor=ADMIN)
    assert paid.outcome is RenewalOutcome.RENEWED
    sub = engine.subscription(sub_id)
    assert sub.state is SubscriptionState.ACTIVE
    assert (sub.start, sub.term_end) == (TRIAL_END, date(2026, 2, 15))  # the same first term
    assert [e.idempotency_key for e in inner.ledger()] == [
        f"trial:{sub_id}:2026-01-15:retry-1:sale"
    ]


def test_after_a_paid_trial_an_unpaid_renewal_is_chased_as_a_renewal(rig: Rig) -> None:
    """The first term was paid at the trial's end: its declined renewal is retried on the
    renewal's keys and renews to the next term (the trial's paid sale is not taken for it)."""
    engine, _, inner = rig
    sub_id = trial(engine)
    at(engine, TRIAL_END)
    engine.renew_due(actor=ADMIN)
    inner.script("sale", ["decline"])
    at(engine, date(2026, 2, 15))
    (unpaid,) = engine.renew_due(actor=ADMIN)
    assert unpaid.outcome is RenewalOutcome.PAST_DUE
    at(engine, date(2026, 2, 20))
    assert engine.renew_due(actor=ADMIN).renewals == ()  # not renewed for free on the trial
    assert engine.subscription(sub_id).state is SubscriptionState.PAST_DUE
    at(engine, date(2026, 2, 23))
    (paid,) = engine.renew_due(actor=ADMIN)
    assert paid.outcome is RenewalOutcome.RENEWED
    sub = engine.subscription(sub_id)
    assert (sub.state, sub.start, sub.term_end) == (
        SubscriptionState.ACTIVE,
        date(2026, 2, 15),
        date(2026, 3, 15),
    )
    assert [e.idempotency_key for e in inner.ledger()] == [
        f"trial:{sub_id}:2026-01-15:sale",
        f"renewal:{sub_id}:2026-02-15:retry-1:sale",
    ]


def test_an_unpaid_trial_is_cancelled_for_delinquency(rig: Rig) -> None:
    engine, _, inner = rig
    sub_id = trial(engine)
    inner.script("sale", ["decline"] * 4)
    acted = []
    for n in range(0, 32):
        at(engine, TRIAL_END + timedelta(days=n))
        acted += [(n, r.outcome.value) for r in engine.renew_due(actor=ADMIN)]
    assert acted == [
        (0, "past_due"),
        (8, "past_due"),
        (16, "past_due"),
        (24, "gave_up"),
        (30, "cancelled"),
    ]
    assert engine.subscription(sub_id).state is SubscriptionState.CANCELLED
    assert inner.ledger() == []


def test_a_trial_cancelled_before_its_end_is_never_charged(rig: Rig) -> None:
    engine, _, inner = rig
    sub_id = trial(engine)
    at(engine, date(2026, 1, 10))
    cancelled = engine.cancel(sub_id, actor=AGENT)
    assert cancelled.outcome is StateOutcome.CANCELLED, cancelled.explanation
    for day in (TRIAL_END, date(2026, 2, 15), date(2026, 3, 15)):
        at(engine, day)
        assert engine.renew_due(actor=ADMIN).renewals == ()
    assert engine.subscription(sub_id).state is SubscriptionState.CANCELLED
    assert inner.calls.get("sale", 0) == 0


def test_a_trial_cannot_be_suspended(rig: Rig) -> None:
    engine, _, _ = rig
    sub_id = trial(engine)
    refused = engine.suspend(sub_id, actor=AGENT)
    assert refused.outcome is StateOutcome.DENIED
    assert "a trial can only be cancelled" in refused.explanation


def test_a_later_start_runs_the_trial_from_it(rig: Rig) -> None:
    engine, _, _ = rig
    sub_id = trial(engine, start=date(2026, 1, 5))
    assert engine.subscription(sub_id).start == date(2026, 1, 19)


@pytest.mark.parametrize(
    ("kw", "error", "field"),
    [
        ({"trial": "14 days"}, InvalidTypeError, "trial"),
        ({"trial": Period.days(14), "pending": True}, InvalidValueError, "pending"),
        ({"trial": Period.days(14), "start": date(2025, 12, 20)}, InvalidValueError, "start"),
        ({"trial": Period.days(14), "domains": ["a.example"]}, InvalidValueError, "domains"),
    ],
)
def test_bad_trials_raise_naming_the_field(
    rig: Rig, kw: dict[str, object], error: type[Exception], field: str
) -> None:
    engine, _, _ = rig
    with pytest.raises(error) as err:
        engine.add_subscription(
            "c1",
            term=Period.months(1),
            inventory={"dv": 1},
            unit_prices={"dv": TEN},
            idempotency_key="bad",
            actor=AGENT,
            **kw,  # type: ignore[arg-type]
        )
    assert getattr(err.value, "field", None) in (field, f"$.{field}")
    assert engine.transactions() == []
