"""Unpaid renewals are chased (issue 14): ``renew_due`` tries a declined renewal again on the
dunning schedule, gives up after the last try and cancels for delinquency, never charging a term
twice. On memory, a SQLite file and PostgreSQL (``store_url``), with a manual clock and the
sandbox gateway's books as the truth about money moved."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import attrs
import pytest

from billing_core import (
    BillingEngine,
    Customer,
    DunningPolicy,
    Money,
    PaymentInstrument,
    Period,
    SubscriptionState,
    TransactionKind,
)
from billing_core.engine import renewal_dunning
from billing_core.engine.renewal_claims import TermTaken
from billing_core.engine.results import RenewalOutcome
from billing_core.errors import InvalidTypeError, InvalidValueError
from billing_core.plugins import events
from billing_core.plugins.manager import Plugins
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock
from billing_core.testing.hooked_gateway import Crash, HookedGateway

ADMIN = Actor(id="ada", role="admin")
AGENT = Actor(id="sam", role="support_agent")
START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)  # the first term: 2026-01-01 to 2026-02-01
DAY0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)  # the renewal is due (and declined)
TEN = Money("10.00", "USD")


def build(store_url: str) -> tuple[BillingEngine, HookedGateway, SandboxGateway]:
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
    return eng, hooked, inner


@pytest.fixture
def rig(store_url: str) -> Iterator[tuple[BillingEngine, HookedGateway, SandboxGateway]]:
    eng, hooked, inner = build(store_url)
    yield eng, hooked, inner
    eng.store.close()


def subscribe(engine: BillingEngine) -> str:
    sub = engine.add_subscription(
        "c1",
        term=Period.months(1),
        inventory={"dv": 1},
        unit_prices={"dv": TEN},
        idempotency_key="s1",
        actor=ADMIN,
    )
    assert sub.subscription_id is not None
    return sub.subscription_id


def on(engine: BillingEngine, day: int) -> None:
    clock = engine.ctx.clock
    assert isinstance(clock, ManualClock)
    clock.set(DAY0 + timedelta(days=day))


def term_sales(engine: BillingEngine, sub_id: str, start: str) -> list[tuple[str, str]]:
    """(gateway key, status) of every sale of the renewal to the term starting ``start``."""
    prefix = f"renewal:{sub_id}:{start}:"
    return [
        (t.idempotency_key, t.status.value)
        for t in engine.transactions()
        if t.kind is TransactionKind.SALE
        and t.idempotency_key is not None
        and t.idempotency_key.startswith(prefix)
    ]


def run_days(engine: BillingEngine, days: range, **kw: object) -> list[tuple[int, str]]:
    acted = []
    for day in days:
        on(engine, day)
        acted += [(day, r.outcome.value) for r in engine.renew_due(actor=ADMIN, **kw)]  # type: ignore[arg-type]
    return acted


# -- the Kill Bill timeline ----------------------------------------------------------------------
def test_declined_renewal_is_retried_on_days_8_16_24_then_cancelled_on_day_30(
    rig: tuple[BillingEngine, HookedGateway, SandboxGateway],
) -> None:
    engine, _, inner = rig
    sub_id = subscribe(engine)
    inner.script("sale", ["decline"] * 4)
    on(engine, 0)
    (first,) = engine.renew_due(actor=ADMIN)
    assert first.outcome is RenewalOutcome.PAST_DUE
    assert first.next_attempt_on == date(2026, 2, 9)
    assert "the next try is on 2026-02-09" in first.explanation
    assert engine.subscription(sub_id).state is SubscriptionState.PAST_DUE

    acted = run_days(engine, range(0, 32))
    assert acted == [(8, "past_due"), (16, "past_due"), (24, "gave_up"), (30, "cancelled")]
    after = engine.subscription(sub_id)
    assert after.state is SubscriptionState.CANCELLED
    assert after.auto_renew is False
    assert after.start == date(2026, 1, 1)  # never renewed for free
    base = f"renewal:{sub_id}:2026-02-01"
    assert term_sales(engine, sub_id, "2026-02-01") == [
        (f"{base}:sale", "failed"),
        (f"{base}:retry-1:sale", "failed"),
        (f"{base}:retry-2:sale", "failed"),
        (f"{base}:retry-3:sale", "failed"),
    ]
    assert [e.action for e in engine.audit_log(subject_id=sub_id)] == [
        "subscription.added",
        "subscription.past_due",
        "subscription.renewal_retry_failed",
        "subscription.renewal_retry_failed",
        "subscription.renewal_retry_failed",
        "subscription.renewal_gave_up",
        "subscription.cancelled_for_delinquency",
    ]
    assert not any(isinstance(e, events.SubscriptionRenewed) for e in engine.events)
    (gave_up,) = [e for e in engine.events if isinstance(e, events.RenewalGaveUp)]
    assert (gave_up.subscription.id, gave_up.attempts) == (sub_id, 4)
    assert "the next try" not in gave_up.explanation
    assert "cancelled for delinquency on 2026-03-03" in gave_up.explanation
    (cancelled,) = [
        e for e in engine.events if isinstance(e, events.SubscriptionCancelledForDelinquency)
    ]
    assert cancelled.invoice is None and cancelled.subscription.state is SubscriptionState.CANCELLED
    assert cancelled.explanation.startswith(f"Subscription {sub_id} is cancelled for delinquency")
    assert len(inner.ledger()) == 1  # only the first term ever took money
    assert run_days(engine, range(32, 70)) == []  # cancelled: nothing more


def test_the_explanations_name_dates_and_amounts(
    rig: tuple[BillingEngine, HookedGateway, SandboxGateway],
) -> None:
    engine, _, inner = rig
    sub_id = subscribe(engine)
    inner.script("sale", ["decline"] * 4)
    texts = {}
    for day in range(0, 31):
        on(engine, day)
        for r in engine.renew_due(actor=ADMIN):
            texts[day] = r
    assert texts[8].explanation.startswith(
        f"Subscription {sub_id}: retry 1 of the renewal of 10.00 USD for 2026-02-01 to "
        "2026-03-01 was not paid on 2026-02-09:"
    )
    assert texts[8].attempt == 2 and texts[8].next_attempt_on == date(2026, 2, 17)
    assert texts[24].outcome is RenewalOutcome.GAVE_UP and texts[24].next_attempt_on is None
    assert texts[24].explanation.endswith(
        "It stays past due and is cancelled for delinquency on 2026-03-03 unless it is paid."
    )
    assert texts[30].explanation.startswith(
        f"Subscription {sub_id} is cancelled for delinquency: the renewal of 10.00 USD for "
        "2026-02-01 to 2026-03-01 was never paid."
    )
    assert texts[30].reason == "delinquent"


def test_a_retry_that_is_paid_renews_the_term_charged_once(
    rig: tuple[BillingEngine, HookedGateway, SandboxGateway],
) -> None:
    engine, _, inner = rig
    sub_id = subscribe(engine)
    inner.script("sale", ["decline", "decline"])  # day 0 and day 8; day 16 goes through
    acted = run_days(engine, range(0, 28))
    assert acted == [(0, "past_due"), (8, "past_due"), (16, "renewed")]
    after = engine.subscription(sub_id)
    assert after.state is SubscriptionState.ACTIVE
    assert (after.start, after.term_end) == (date(2026, 2, 1), date(2026, 3, 1))
    base = f"renewal:{sub_id}:2026-02-01"
    sales = term_sales(engine, sub_id, "2026-02-01")
    assert [k for k, status in sales if status == "completed"] == [f"{base}:retry-2:sale"]
    assert len(inner.ledger()) == 2  # the first term and the paid retry: once each
    assert inner.ledger()[-1].idempotency_key == f"{base}:retry-2:sale"
    renewed = [e for e in engine.events if isinstance(e, events.SubscriptionRenewed)]
    assert len(renewed) == 1 and renewed[0].subscription.state is SubscriptionState.ACTIVE
    # the next term renews as usual, on its own key
    on(engine, 28)  # 2026-03-01
    (next_term,) = engine.renew_due(actor=ADMIN)
    assert next_term.outcome is RenewalOutcome.RENEWED
    assert engine.subscription(sub_id).term_end == date(2026, 4, 1)
    assert len(inner.ledger()) == 3


def test_renew_due_twice_on_a_retry_day_charges_the_retry_once(
    rig: tuple[BillingEngine, HookedGateway, SandboxGateway],
) -> None:
    engine, _, inner = rig
    sub_id = subscribe(engine)
    inner.script("sale", ["decline", "decline"])
    on(engine, 0)
    engine.renew_due(actor=ADMIN)
    on(engine, 8)
    (retry,) = engine.renew_due(actor=ADMIN)
    assert retry.outcome is RenewalOutcome.PAST_DUE
    assert engine.renew_due(actor=ADMIN).renewals == ()  # replayed the same day: nothing
    keys = [k for k, _ in term_sales(engine, sub_id, "2026-02-01")]
    assert keys.count(f"renewal:{sub_id}:2026-02-01:retry-1:sale") == 1
    assert inner.calls["sale"] == 3  # the first term, the renewal, retry 1


def test_a_run_during_another_runs_retry_charges_nothing(
    rig: tuple[BillingEngine, HookedGateway, SandboxGateway],
) -> None:
    """A second renew_due while the first one's retry is at the gateway finds that retry's
    sale written ahead (in doubt) and leaves the subscription alone."""
    engine, hooked, inner = rig
    sub_id = subscribe(engine)
    inner.script("sale", ["decline"])
    on(engine, 0)
    engine.renew_due(actor=ADMIN)
    on(engine, 8)
    inside: list[object] = []
    hooked.before["sale"] = lambda: inside.append(engine.renew_due(actor=ADMIN).renewals)
    (retry,) = engine.renew_due(actor=ADMIN)
    assert inside == [()]
    assert retry.outcome is RenewalOutcome.RENEWED
    completed = [s for _, s in term_sales(engine, sub_id, "2026-02-01") if s == "completed"]
    assert completed == ["completed"]
    assert inner.calls["sale"] == 3


def test_two_runs_that_chose_the_same_retry_charge_it_once(
    rig: tuple[BillingEngine, HookedGateway, SandboxGateway],
) -> None:
    """The claim: a run that read the subscription before another run's retry was written
    ahead finds that sale in the claim and writes nothing."""
    engine, _, inner = rig
    sub_id = subscribe(engine)
    inner.script("sale", ["decline", "decline"])
    on(engine, 0)
    engine.renew_due(actor=ADMIN)
    stale = engine.subscription(sub_id)  # read before the retry, as a concurrent run would
    on(engine, 8)
    engine.renew_due(actor=ADMIN)
    base = f"renewal:{sub_id}:2026-02-01"
    with engine.store.session() as s, pytest.raises(TermTaken):
        renewal_dunning.claim_attempt(
            engine.ctx, s, stale, base, renewal_dunning.attempt_key(base, 2)
        )


def test_a_retry_that_died_after_the_charge_is_finished_without_charging_again(
    rig: tuple[BillingEngine, HookedGateway, SandboxGateway],
) -> None:
    engine, hooked, inner = rig
    sub_id = subscribe(engine)
    inner.script("sale", ["decline"])
    on(engine, 0)
    engine.renew_due(actor=ADMIN)
    on(engine, 8)

    def die(_: object) -> None:
        raise Crash

    hooked.after["sale"] = die
    with pytest.raises(Crash):
        engine.renew_due(actor=ADMIN)
    assert engine.subscription(sub_id).state is SubscriptionState.PAST_DUE
    assert engine.reconcile().resolved == 1  # the gateway took the money
    (finished,) = engine.renew_due(actor=ADMIN)
    assert finished.outcome is RenewalOutcome.RENEWED
    assert engine.subscription(sub_id).state is SubscriptionState.ACTIVE
    assert inner.calls["sale"] == 3  # never charged again
    assert len(inner.ledger()) == 2


def test_without_a_delinquency_period_it_gives_up_and_stays_past_due(
    rig: tuple[BillingEngine, HookedGateway, SandboxGateway],
) -> None:
    engine, _, inner = rig
    sub_id = subscribe(engine)
    inner.script("sale", ["decline"] * 3)
    policy = DunningPolicy(delays=(Period.days(3), Period.days(5)))
    acted = run_days(engine, range(0, 60), dunning=policy, delinquency_period=None)
    assert acted == [(0, "past_due"), (3, "past_due"), (8, "gave_up")]
    assert engine.subscription(sub_id).state is SubscriptionState.PAST_DUE


def test_a_policy_without_retries_gives_up_at_once(
    rig: tuple[BillingEngine, HookedGateway, SandboxGateway],
) -> None:
    engine, _, inner = rig
    subscribe(engine)
    inner.script("sale", ["decline"])
    acted = run_days(
        engine, range(0, 12), dunning=DunningPolicy(delays=()), delinquency_period=Period.days(10)
    )
    assert acted == [(0, "gave_up"), (10, "cancelled")]


def test_attempts_without_a_sale_are_counted_from_the_audit(
    rig: tuple[BillingEngine, HookedGateway, SandboxGateway],
) -> None:
    """No usable instrument: no sale is written, the failed attempts still count."""
    engine, _, inner = rig
    sub_id = subscribe(engine)
    engine.deactivate_instrument("c1", "pi-visa", actor=AGENT)
    assert run_days(engine, range(0, 10)) == [(0, "past_due"), (8, "past_due")]
    assert term_sales(engine, sub_id, "2026-02-01") == []
    engine.add_instrument("c1", PaymentInstrument(id="pi-amex"), primary=True, actor=AGENT)
    assert run_days(engine, range(10, 17)) == [(16, "renewed")]
    assert engine.subscription(sub_id).state is SubscriptionState.ACTIVE
    assert len(inner.ledger()) == 2


def test_bad_input_raises_like_collect_due(
    rig: tuple[BillingEngine, HookedGateway, SandboxGateway],
) -> None:
    engine, _, _ = rig
    with pytest.raises(InvalidTypeError) as err:
        engine.renew_due(actor=ADMIN, dunning="8 days")  # type: ignore[arg-type]
    assert err.value.field == "$.dunning"
    with pytest.raises(InvalidTypeError) as err:
        engine.renew_due(actor=ADMIN, delinquency_period=30)  # type: ignore[arg-type]
    assert err.value.field == "$.delinquency_period"
    with pytest.raises(InvalidValueError) as err2:
        engine.renew_due(actor=ADMIN, delinquency_period=timedelta(0))
    assert err2.value.field == "$.delinquency_period"
    assert engine.renew_due(actor=ADMIN, delinquency_period=timedelta(days=3)).renewals == ()


def test_a_blocklisted_customers_retries_are_counted_without_a_charge(
    rig: tuple[BillingEngine, HookedGateway, SandboxGateway],
) -> None:
    engine, _, inner = rig
    sub_id = subscribe(engine)
    inner.script("sale", ["decline"])
    on(engine, 0)
    engine.renew_due(actor=ADMIN)
    engine.blocklist_customer("c1", actor=ADMIN)
    acted = run_days(engine, range(1, 31))
    assert acted == [(8, "past_due"), (16, "past_due"), (24, "gave_up"), (30, "cancelled")]
    assert inner.calls["sale"] == 2  # the first term and the declined renewal: nothing more
    assert engine.subscription(sub_id).state is SubscriptionState.CANCELLED


def test_a_subscription_past_due_mid_term_is_left_to_collect_due(
    rig: tuple[BillingEngine, HookedGateway, SandboxGateway],
) -> None:
    """Past due on an unpaid invoice before its term ended: renew_due leaves it alone."""
    engine, _, inner = rig
    sub_id = subscribe(engine)
    with engine.store.session() as s:
        sub = s.get_subscription(sub_id)
        assert sub is not None
        s.put_subscription(attrs.evolve(sub, state=SubscriptionState.PAST_DUE))
    on(engine, -10)
    assert engine.renew_due(actor=ADMIN).renewals == ()
    assert inner.calls["sale"] == 1
