"""collect_due, dunning, delinquency and outside payments (issue 14), on memory, a SQLite file
and PostgreSQL (``store_url``), with a manual clock and the sandbox gateway's ledger as the
truth about money moved."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from billing_core import (
    BillingEngine,
    DunningPolicy,
    InvoiceLine,
    InvoiceStatus,
    Money,
    PaymentInstrument,
    Period,
    SubscriptionState,
)
from billing_core.engine.collect import CollectOutcome, collection_key
from billing_core.engine.invoice_results import InvoiceOutcome
from billing_core.errors import InvalidTypeError, InvalidValueError
from billing_core.plugins.events import (
    CollectionGaveUp,
    InvoiceMarkedUncollectible,
    SubscriptionCancelledForDelinquency,
    SubscriptionPastDue,
)
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.rules.dunning import next_attempt
from billing_core.rules.permissions import Actor
from billing_core.rules.retry import RetryPolicy
from billing_core.testing.clock import ManualClock
from billing_core.testing.events import EventRecorder
from conftest import collecting_engine

ADMIN = Actor(id="ada", role="admin")
AGENT = Actor(id="sam", role="support_agent")
START = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)  # issued 2026-02-01, due 30 days later
DUE = date(2026, 3, 3)
AMOUNT = Money("99.00", "USD")


Recorder = EventRecorder


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def build(store_url: str, recorder: Recorder) -> BillingEngine:
    """An engine on ``store_url`` with customer c1 and its card pi-visa, events to ``recorder``."""
    return collecting_engine(store_url, recorder, START)


@pytest.fixture
def engine(store_url: str, recorder: Recorder) -> Iterator[BillingEngine]:
    eng = build(store_url, recorder)
    yield eng
    eng.store.close()


def clock_of(engine: BillingEngine) -> ManualClock:
    clock = engine.ctx.clock
    assert isinstance(clock, ManualClock)
    return clock


def sandbox(engine: BillingEngine) -> SandboxGateway:
    assert isinstance(engine.gateway, SandboxGateway)
    return engine.gateway


def subscribe(engine: BillingEngine, key: str = "s1") -> str:
    sub = engine.add_subscription(
        "c1",
        term=Period.years(1),  # mid-term all along: renewals are not in these tests
        inventory={"dv": 1},
        unit_prices={"dv": Money("10.00", "USD")},
        idempotency_key=key,
        actor=ADMIN,
    )
    assert sub.subscription_id is not None
    return sub.subscription_id


def issue(engine: BillingEngine, sub: str, amount: Money = AMOUNT) -> str:
    with engine.store.session() as s:
        s.add_invoice_lines(sub, [InvoiceLine(description="Team plan", amount=amount)])
    run = engine.issue_due_invoices()
    (invoice,) = [i for i in engine.invoices("c1") if i.status is InvoiceStatus.OPEN]
    assert run.explanation
    return invoice.id


def collected(engine: BillingEngine, invoice_id: str) -> list[Money]:
    """What the gateway really took for the invoice (its ledger, not the engine's records)."""
    prefix = f"collect:{invoice_id}:"
    return [
        e.amount
        for e in sandbox(engine).ledger()
        if e.idempotency_key.startswith(prefix) and e.operation == "sale"
    ]


def on(engine: BillingEngine, day: date) -> None:
    clock = clock_of(engine)
    clock.advance(datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC) - clock())


# -- the Kill Bill overdue timeline --------------------------------------------------------------
def test_kill_bill_overdue_timeline(engine: BillingEngine, recorder: Recorder) -> None:
    """Declined on the due date, retried on days 8, 16 and 24, past due from the first failure,
    given up after the last retry (merchant notified), cancelled at the 30-day delinquency."""
    sub = subscribe(engine)
    inv = issue(engine, sub)
    assert engine.invoice(inv).due_on == DUE
    sandbox(engine).script("sale", ["decline"] * 4)
    before = sandbox(engine).calls["sale"]
    seen: list[tuple[int, str, int, date | None]] = []
    for day in range(-2, 32):
        on(engine, DUE + timedelta(days=day))
        for c in engine.collect_due().collections:
            seen.append((day, c.outcome.value, c.attempt, c.next_collection_on))
    assert seen == [
        (0, "declined", 1, date(2026, 3, 11)),
        (8, "declined", 2, date(2026, 3, 19)),
        (16, "declined", 3, date(2026, 3, 27)),
        (24, "gave_up", 4, None),
        (30, "cancelled", 4, None),
    ]
    assert sandbox(engine).calls["sale"] - before == 4  # one try each time, nothing else
    assert collected(engine, inv) == []
    assert engine.subscription(sub).state is SubscriptionState.CANCELLED
    stored = engine.invoice(inv)
    assert (stored.status, stored.collection_attempts, stored.collection_stopped) == (
        InvoiceStatus.UNCOLLECTIBLE,  # written off, still payable
        4,
        "delinquent",
    )
    assert stored.amount_remaining == AMOUNT
    (written_off,) = recorder.of(InvoiceMarkedUncollectible)
    assert isinstance(written_off, InvoiceMarkedUncollectible)
    assert written_off.invoice.status is InvoiceStatus.UNCOLLECTIBLE
    assert "99.00 USD unpaid, written off as uncollectible" in written_off.explanation
    (past_due,) = recorder.of(SubscriptionPastDue)  # once: it stays past due meanwhile
    assert "INV-000001 (99.00 USD due on 2026-03-03) was not collected" in str(past_due)
    (gave_up,) = recorder.of(CollectionGaveUp)
    assert isinstance(gave_up, CollectionGaveUp)
    assert gave_up.attempts == 4 and gave_up.notify_emails == ("billing@example.com",)
    assert "99.00 USD due on 2026-03-03 could not be collected" in gave_up.explanation
    assert "the last on 2026-03-27" in gave_up.explanation
    (cancelled,) = recorder.of(SubscriptionCancelledForDelinquency)
    assert isinstance(cancelled, SubscriptionCancelledForDelinquency)
    assert "delinquent since 2026-04-02" in cancelled.explanation
    actions = [e.action for e in engine.audit_log(subject_id=inv)]
    assert actions.count("invoice.dunning") == 3
    assert actions.count("invoice.collection_gave_up") == 1
    assert actions.count("invoice.marked_uncollectible") == 1
    on(engine, DUE + timedelta(days=40))
    assert engine.collect_due().collections == ()  # nothing more, ever


def test_paid_on_a_retry_returns_the_subscription_to_active(engine: BillingEngine) -> None:
    sub = subscribe(engine)
    inv = issue(engine, sub)
    sandbox(engine).script("sale", ["decline"])
    on(engine, DUE)
    (first,) = engine.collect_due().collections
    assert first.outcome is CollectOutcome.DECLINED
    assert engine.subscription(sub).state is SubscriptionState.PAST_DUE
    on(engine, DUE + timedelta(days=7))
    assert engine.collect_due().collections == ()  # waits for the schedule
    on(engine, DUE + timedelta(days=8))
    (second,) = engine.collect_due().collections
    assert (second.outcome, second.attempt, second.key) == (
        CollectOutcome.COLLECTED,
        2,
        collection_key(inv, 2),
    )
    assert second.explanation == (
        "Paid 99.00 USD of invoice INV-000001; 0.00 USD left to pay (pay rest makes it paid)."
    )
    assert engine.subscription(sub).state is SubscriptionState.ACTIVE
    assert engine.invoice(inv).status is InvoiceStatus.PAID
    assert collected(engine, inv) == [AMOUNT]
    assert engine.collect_due().collections == ()


def test_collects_on_the_due_date_only_and_once(engine: BillingEngine) -> None:
    sub = subscribe(engine)
    inv = issue(engine, sub)
    on(engine, DUE - timedelta(days=1))
    assert engine.collect_due().collections == ()
    on(engine, DUE)
    run = engine.collect_due()
    assert run.count(CollectOutcome.COLLECTED) == 1
    assert run.explanation == "Acted on 1 due invoice: 1 collected."
    assert engine.collect_due().collections == ()
    assert collected(engine, inv) == [AMOUNT]


def test_backup_instrument_after_a_decline(engine: BillingEngine) -> None:
    engine.add_instrument("c1", PaymentInstrument(id="pi-amex"), backup=True, actor=AGENT)
    inv = issue(engine, subscribe(engine))
    sandbox(engine).script("sale", ["decline"])
    on(engine, DUE)
    (c,) = engine.collect_due().collections
    assert c.outcome is CollectOutcome.COLLECTED
    moved = [e for e in sandbox(engine).ledger() if e.idempotency_key.startswith("collect")]
    assert [(e.instrument_id, e.idempotency_key) for e in moved] == [
        ("pi-amex", f"{collection_key(inv, 1)}:sale:2")
    ]
    assert collected(engine, inv) == [AMOUNT]


def test_autopay_off_is_not_collected_but_still_cancelled(engine: BillingEngine) -> None:
    sub = subscribe(engine)
    inv = issue(engine, sub)
    assert engine.set_autopay(sub, False, actor=AGENT).outcome == "set"
    assert engine.set_autopay(sub, False, actor=AGENT).outcome == "unchanged"
    assert engine.subscription(sub).autopay is False
    on(engine, DUE + timedelta(days=29))
    assert engine.collect_due().collections == ()
    assert sandbox(engine).calls["sale"] == 1  # the subscription's own first charge only
    on(engine, DUE + timedelta(days=30))
    (c,) = engine.collect_due().collections
    assert c.outcome is CollectOutcome.CANCELLED
    assert engine.subscription(sub).state is SubscriptionState.CANCELLED
    assert collected(engine, inv) == []


def test_no_delinquency_period_never_cancels(engine: BillingEngine) -> None:
    sub = subscribe(engine)
    issue(engine, sub)
    sandbox(engine).script("sale", ["decline"] * 2)
    policy = DunningPolicy.every(RetryPolicy(retries=1, every=Period.days(2)))
    on(engine, DUE)
    engine.collect_due(dunning=policy, delinquency_period=None)
    on(engine, DUE + timedelta(days=2))
    (c,) = engine.collect_due(dunning=policy, delinquency_period=None).collections
    assert c.outcome is CollectOutcome.GAVE_UP
    on(engine, DUE + timedelta(days=400))
    assert engine.collect_due(dunning=policy, delinquency_period=None).collections == ()
    assert engine.subscription(sub).state is SubscriptionState.PAST_DUE


def test_paid_and_void_invoices_are_denied(engine: BillingEngine) -> None:
    sub = subscribe(engine)
    inv = issue(engine, sub)
    on(engine, DUE)
    engine.collect_due()
    calls = sandbox(engine).calls["sale"]
    (paid,) = engine.collect_due(invoice_ids=[inv]).collections
    assert (paid.outcome, paid.reason) == (CollectOutcome.DENIED, "already_paid")
    void = issue(engine, sub, Money("5.00", "USD"))
    assert engine.void_invoice(void, actor=ADMIN).outcome is InvoiceOutcome.VOIDED
    (voided,) = engine.collect_due(invoice_ids=[void]).collections
    assert (voided.outcome, voided.reason) == (CollectOutcome.DENIED, "invoice_void")
    assert voided.explanation
    assert sandbox(engine).calls["sale"] == calls  # nothing charged


@pytest.mark.parametrize("how", ["flag", "entry"])
def test_a_blocklisted_customer_is_not_charged(engine: BillingEngine, how: str) -> None:
    sub = subscribe(engine)
    inv = issue(engine, sub)
    if how == "flag":
        engine.blocklist_customer("c1", actor=ADMIN)
    else:
        engine.add_blocklist_entry("customer_id", "c1", actor=ADMIN, reason="chargebacks")
    calls = sandbox(engine).calls["sale"]
    on(engine, DUE)
    (c,) = engine.collect_due().collections
    assert c.outcome is CollectOutcome.DECLINED
    assert c.reason == ("customer_blocklisted" if how == "flag" else "blocklisted_customer_id")
    assert "blocklisted" in c.explanation and c.next_collection_on == date(2026, 3, 11)
    assert sandbox(engine).calls["sale"] == calls  # no gateway call
    assert engine.subscription(sub).state is SubscriptionState.PAST_DUE
    assert collected(engine, inv) == []


def test_collect_due_is_a_job(engine: BillingEngine) -> None:
    denied = engine.collect_due(actor=AGENT)
    assert (denied.outcome, denied.reason) == ("denied", "permission_denied")
    assert engine.collect_due(actor=ADMIN).outcome == "done"


def test_bad_input_raises_naming_the_field(engine: BillingEngine) -> None:
    with pytest.raises(InvalidTypeError, match=r"\$\.dunning"):
        engine.collect_due(dunning=RetryPolicy())  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match=r"\$\.delinquency_period"):
        engine.collect_due(delinquency_period=timedelta(0))
    with pytest.raises(InvalidTypeError, match=r"\$\.delinquency_period"):
        engine.collect_due(delinquency_period=30)  # type: ignore[arg-type]
    with pytest.raises(InvalidTypeError, match=r"\$\.enabled"):
        engine.set_autopay(subscribe(engine), "no", actor=AGENT)  # type: ignore[arg-type]


# -- outside payments ------------------------------------------------------------------------
def test_outside_payment_adds_up_without_a_gateway_call(engine: BillingEngine) -> None:
    sub = subscribe(engine)
    inv = issue(engine, sub)
    calls = sandbox(engine).calls["sale"]
    part = engine.record_outside_payment(
        inv, amount=Money("40.00", "USD"), reference="cheque-17", idempotency_key="o1", actor=AGENT
    )
    assert part.outcome is InvoiceOutcome.PARTIALLY_PAID
    assert part.explanation.startswith(
        "Recorded 40.00 USD received outside the gateway (cheque-17) on invoice INV-000001; "
        "59.00 USD left to pay"
    )
    again = engine.record_outside_payment(
        inv, amount=Money("40.00", "USD"), reference="cheque-17", idempotency_key="o1", actor=AGENT
    )
    assert again == part  # a replay: recorded once
    dup = engine.record_outside_payment(
        inv, amount=Money("1.00", "USD"), reference="cheque-17", idempotency_key="o2", actor=AGENT
    )
    assert (dup.outcome, dup.reason) == (InvoiceOutcome.DENIED, "duplicate_reference")
    over = engine.record_outside_payment(
        inv, amount=Money("60.00", "USD"), reference="wire-1", idempotency_key="o3", actor=AGENT
    )
    assert (over.outcome, over.reason) == (InvoiceOutcome.DENIED, "exceeds_amount_due")
    rest = engine.record_outside_payment(inv, reference="wire-1", idempotency_key="o4", actor=AGENT)
    assert rest.outcome is InvoiceOutcome.PAID and rest.amount == Money("59.00", "USD")
    stored = engine.invoice(inv)
    assert stored.amount_paid == AMOUNT and not stored.amount_remaining
    assert stored.outside_payments == (
        ("cheque-17", Money("40.00", "USD")),
        ("wire-1", Money("59.00", "USD")),
    )
    assert sandbox(engine).calls["sale"] == calls
    assert [e.action for e in engine.audit_log(subject_id=inv)].count(
        "invoice.outside_payment"
    ) == 2
    on(engine, DUE)
    assert engine.collect_due().collections == ()  # nothing left to collect


def test_outside_payment_of_a_past_due_subscription_reactivates_it(
    engine: BillingEngine,
) -> None:
    sub = subscribe(engine)
    inv = issue(engine, sub)
    sandbox(engine).script("sale", ["decline"])
    on(engine, DUE)
    engine.collect_due()
    assert engine.subscription(sub).state is SubscriptionState.PAST_DUE
    engine.record_outside_payment(inv, reference="wire-9", idempotency_key="w9", actor=ADMIN)
    assert engine.subscription(sub).state is SubscriptionState.ACTIVE


def test_pay_invoice_of_a_past_due_subscription_reactivates_it(engine: BillingEngine) -> None:
    sub = subscribe(engine)
    inv = issue(engine, sub)
    sandbox(engine).script("sale", ["decline"])
    on(engine, DUE)
    engine.collect_due()
    assert engine.pay_invoice(inv, idempotency_key="p1", actor=AGENT).outcome == "paid"
    assert engine.subscription(sub).state is SubscriptionState.ACTIVE


def test_outside_payment_bad_input(engine: BillingEngine) -> None:
    inv = issue(engine, subscribe(engine))
    with pytest.raises(InvalidTypeError, match=r"\$\.amount"):
        engine.record_outside_payment(
            inv,
            amount="10",  # type: ignore[arg-type]
            reference="r",
            idempotency_key="k",
            actor=AGENT,
        )
    with pytest.raises(BaseException, match=r"\$\.reference"):
        engine.record_outside_payment(inv, reference="", idempotency_key="k", actor=AGENT)


# -- the dunning rule --------------------------------------------------------------------------
def test_dunning_schedule_worked_example() -> None:
    step = next_attempt(1, date(2026, 3, 3))
    assert step.on == date(2026, 3, 11)
    assert step.explanation == (
        "After 1 failed collection (the last on 2026-03-03) the next try is on 2026-03-11, "
        "8 days later (retry 1 of 3)."
    )
    assert next_attempt(4, date(2026, 3, 27)).give_up
    assert DunningPolicy.every(RetryPolicy()).delays == (Period.days(1),) * 3
    with pytest.raises(InvalidTypeError, match=r"\$\.delays\[0\]"):
        DunningPolicy(delays=[8])
