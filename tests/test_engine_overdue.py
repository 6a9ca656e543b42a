"""Overdue invoices in the engine (issues 13 and 14): the past-due reading, writing off
(``uncollectible``, by hand or at delinquency), what AutoPay leaves alone (suspended
subscriptions), the outside-payment event, and when a past-due subscription is active again.

The figures: an invoice of 99.00 USD issued 2026-02-01, due 2026-03-03 (30 days), delinquent
30 days later on 2026-04-02 (``collect_due``'s default delinquency period)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from billing_core import (
    BillingEngine,
    Customer,
    InvoiceLine,
    InvoiceStatus,
    Money,
    Period,
    SubscriptionState,
)
from billing_core.engine.collect import CollectOutcome
from billing_core.engine.invoice_results import InvoiceOutcome
from billing_core.errors import InvalidTypeError, NotFoundError, PermissionDeniedError
from billing_core.plugins.events import (
    InvoiceMarkedUncollectible,
    OutsidePaymentRecorded,
    SubscriptionCancelledForDelinquency,
)
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.rules.collection import UnpaidState
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock
from billing_core.testing.events import EventRecorder
from conftest import collecting_engine

ADMIN = Actor(id="ada", role="admin")
AGENT = Actor(id="sam", role="support_agent")
START = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
DUE = date(2026, 3, 3)
AMOUNT = Money("99.00", "USD")


@pytest.fixture
def recorder() -> EventRecorder:
    return EventRecorder()


@pytest.fixture
def engine(store_url: str, recorder: EventRecorder) -> Iterator[BillingEngine]:
    eng = collecting_engine(store_url, recorder, START)
    yield eng
    eng.store.close()


def sandbox(engine: BillingEngine) -> SandboxGateway:
    assert isinstance(engine.gateway, SandboxGateway)
    return engine.gateway


def on(engine: BillingEngine, day: date) -> None:
    clock = engine.ctx.clock
    assert isinstance(clock, ManualClock)
    clock.set(datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC))


def subscribe(
    engine: BillingEngine, key: str = "s1", term: Period | None = None, *, pending: bool = False
) -> str:
    sub = engine.add_subscription(
        "c1",
        term=term or Period.months(1),
        pending=pending,
        inventory={"dv": 1},
        unit_prices={"dv": Money("10.00", "USD")},
        idempotency_key=key,
        actor=ADMIN,
    )
    assert sub.subscription_id is not None
    return sub.subscription_id


def issue(engine: BillingEngine, owner: str, amount: Money = AMOUNT) -> str:
    """Bill ``amount`` to subscription ``owner`` today and issue it; the new invoice's id."""
    before = {i.id for i in engine.invoices("c1")}
    with engine.store.session() as s:
        s.add_invoice_lines(owner, [InvoiceLine(description="Team plan", amount=amount)])
    engine.issue_due_invoices()
    (new,) = [i for i in engine.invoices("c1") if i.id not in before]
    return new.id


def sales(engine: BillingEngine) -> int:
    return sandbox(engine).calls["sale"]


# -- past due: a reading -------------------------------------------------------------------------
def test_past_due_invoices_is_a_reading_of_the_day(engine: BillingEngine) -> None:
    sub = subscribe(engine)
    inv = issue(engine, sub)
    assert engine.past_due_invoices(datetime(2026, 3, 3, 23, 0, tzinfo=UTC)) == []  # due today
    (late,) = engine.past_due_invoices(datetime(2026, 3, 13, 9, 0, tzinfo=UTC))
    assert (late.invoice.id, late.days, late.state, late.cancel_on) == (
        inv,
        10,
        UnpaidState.PAST_DUE,
        date(2026, 4, 2),
    )
    assert late.explanation == (
        "Invoice INV-000001: 99.00 USD unpaid. Due on 2026-03-03: past due by 10 days. Unless "
        "paid, the subscription is cancelled on 2026-04-02 (in 20 days)."
    )
    (gone,) = engine.past_due_invoices(
        datetime(2026, 4, 2, 9, 0, tzinfo=UTC), delinquency_period=Period.days(15)
    )
    assert (gone.state, gone.cancel_on) == (UnpaidState.DELINQUENT, date(2026, 3, 18))
    assert engine.past_due_invoices(datetime(2026, 4, 2, 9, 0, tzinfo=UTC), customer_id="c2") == []
    assert engine.invoice(inv).status is InvoiceStatus.OPEN  # nothing stored by a reading


def test_past_due_invoices_on_the_customers_local_date(store_url: str) -> None:
    clock = ManualClock(START)
    eng = BillingEngine(store=store_url, clock=clock, gateway="sandbox")
    try:
        eng.add_customer(
            Customer(id="c1", company="Kiwi", timezone="Pacific/Auckland"), actor=ADMIN
        )
        sub = subscribe(eng)
        inv = issue(eng, sub)
        due = eng.invoice(inv).due_on
        assert due is not None
        # 11:00 UTC on the due date is already the next day in Auckland (UTC+13 in March)
        at = datetime(due.year, due.month, due.day, 11, 30, tzinfo=UTC)
        (late,) = eng.past_due_invoices(at)
        assert (late.today, late.days) == (due + timedelta(days=1), 1)
        assert eng.past_due_invoices(at - timedelta(hours=1)) == []
    finally:
        eng.store.close()


def test_past_due_invoices_bad_input_and_permissions(engine: BillingEngine) -> None:
    with pytest.raises(InvalidTypeError, match="delinquency_period"):
        engine.past_due_invoices(delinquency_period=30)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="now"):
        engine.past_due_invoices(datetime(2026, 3, 13))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(InvalidTypeError, match="customer_id"):
        engine.past_due_invoices(customer_id="")
    assert engine.past_due_invoices(actor=AGENT) == []  # agents read billing records
    with pytest.raises(PermissionDeniedError):
        engine.past_due_invoices(actor=Actor(id="x", role="nobody"))


# -- writing off ---------------------------------------------------------------------------------
def test_a_delinquent_invoice_of_no_subscription_is_written_off(
    engine: BillingEngine, recorder: EventRecorder
) -> None:
    """An invoice of several subscriptions (``subscription_id`` None): at delinquency it is
    ``uncollectible`` (no one subscription to cancel), not ``cancelled``; a late payment is still
    taken."""
    one, two = subscribe(engine, "s1"), subscribe(engine, "s2")
    with engine.store.session() as s:
        s.add_invoice_lines(one, [InvoiceLine(description="Team plan", amount=AMOUNT)])
        s.add_invoice_lines(two, [InvoiceLine(description="Add-on", amount=Money("1.00", "USD"))])
    engine.issue_due_invoices()
    (inv,) = [i.id for i in engine.invoices("c1") if i.receipt_for is None]
    assert engine.invoice(inv).subscription_id is None
    sandbox(engine).script("sale", ["decline"] * 4)
    outcomes = []
    for day in range(32):
        on(engine, DUE + timedelta(days=day))
        outcomes += [(day, c.outcome) for c in engine.collect_due().collections]
    assert outcomes == [
        (0, CollectOutcome.DECLINED),
        (8, CollectOutcome.DECLINED),
        (16, CollectOutcome.DECLINED),
        (24, CollectOutcome.GAVE_UP),
        (30, CollectOutcome.UNCOLLECTIBLE),  # once
    ]
    stored = engine.invoice(inv)
    assert (stored.status, stored.collection_stopped) == (InvoiceStatus.UNCOLLECTIBLE, "delinquent")
    (event,) = recorder.of(InvoiceMarkedUncollectible)
    assert isinstance(event, InvoiceMarkedUncollectible)
    assert event.explanation == (
        "Invoice INV-000001: due on 2026-03-03 and unpaid 30 days later, past the end of its "
        "delinquency period on 2026-04-02: 100.00 USD unpaid, written off as uncollectible (a "
        "late payment is still taken)."
    )
    assert recorder.of(SubscriptionCancelledForDelinquency) == []
    assert engine.subscription(one).state is SubscriptionState.ACTIVE
    paid = engine.pay_invoice(inv, idempotency_key="late", actor=AGENT)  # a late payment
    assert paid.outcome is InvoiceOutcome.PAID
    assert engine.invoice(inv).status is InvoiceStatus.PAID


def test_mark_uncollectible_by_hand(engine: BillingEngine, recorder: EventRecorder) -> None:
    sub = subscribe(engine)
    inv = issue(engine, sub)
    result = engine.mark_uncollectible(inv, actor=ADMIN, why="customer went bust")
    assert result.outcome is InvoiceOutcome.UNCOLLECTIBLE
    assert result.explanation == (
        "Invoice INV-000001 is written off as uncollectible (customer went bust): 99.00 USD is "
        "not collected any more; a late payment is still taken."
    )
    assert engine.invoice(inv).status is InvoiceStatus.UNCOLLECTIBLE
    again = engine.mark_uncollectible(inv, actor=ADMIN)
    assert (again.outcome, again.reason) == (InvoiceOutcome.DENIED, "already_uncollectible")
    assert len(recorder.of(InvoiceMarkedUncollectible)) == 1
    on(engine, DUE + timedelta(days=1))
    before = sales(engine)
    assert engine.collect_due().collections == ()  # nothing collects it any more
    assert sales(engine) == before
    audit = [e.action for e in engine.audit_log(subject_id=inv)]
    assert audit.count("invoice.marked_uncollectible") == 1
    detail = [e.detail for e in engine.audit_log(subject_id=inv) if e.action.endswith("ible")]
    assert detail == [{"amount_remaining": "99.00 USD", "why": "customer went bust"}]
    # it can still be voided (nothing paid) or paid late; here: paid by cheque
    late = engine.record_outside_payment(
        inv, reference="cheque 7", idempotency_key="cheque-7", actor=AGENT
    )
    assert late.outcome is InvoiceOutcome.PAID


def test_mark_uncollectible_denials_and_bad_input(engine: BillingEngine) -> None:
    sub = subscribe(engine)
    inv = issue(engine, sub)
    assert engine.pay_invoice(inv, idempotency_key="p", actor=AGENT).outcome is InvoiceOutcome.PAID
    paid = engine.mark_uncollectible(inv, actor=ADMIN)
    assert (paid.outcome, paid.reason) == (InvoiceOutcome.DENIED, "already_paid")
    other = issue(engine, sub, Money("5.00", "USD"))
    assert engine.void_invoice(other, actor=ADMIN).outcome is InvoiceOutcome.VOIDED
    void = engine.mark_uncollectible(other, actor=ADMIN)
    assert (void.outcome, void.reason) == (InvoiceOutcome.DENIED, "invoice_void")
    with pytest.raises(NotFoundError, match="invoice_id"):
        engine.mark_uncollectible("nope", actor=ADMIN)
    with pytest.raises(InvalidTypeError, match="why"):
        engine.mark_uncollectible(inv, actor=ADMIN, why=3)  # type: ignore[arg-type]
    third = issue(engine, sub, Money("6.00", "USD"))
    refused = engine.mark_uncollectible(third, actor=AGENT)  # admins only write off
    assert (refused.outcome, refused.reason) == (InvoiceOutcome.DENIED, "permission_denied")
    assert engine.invoice(third).status is InvoiceStatus.OPEN


# -- what AutoPay leaves alone -------------------------------------------------------------------
def test_a_suspended_subscription_is_not_collected_yet_still_goes_delinquent(
    engine: BillingEngine, recorder: EventRecorder
) -> None:
    sub = subscribe(engine)
    inv = issue(engine, sub)
    engine.suspend(sub, actor=ADMIN)
    before = sales(engine)
    for day in range(30):
        on(engine, DUE + timedelta(days=day))
        assert engine.collect_due().collections == ()
    assert sales(engine) == before  # no charge while suspended
    on(engine, DUE + timedelta(days=30))
    (c,) = engine.collect_due().collections
    assert (c.outcome, c.reason) == (CollectOutcome.CANCELLED, "delinquent")
    assert engine.subscription(sub).state is SubscriptionState.CANCELLED
    assert engine.invoice(inv).status is InvoiceStatus.UNCOLLECTIBLE
    assert len(recorder.of(SubscriptionCancelledForDelinquency)) == 1


def test_a_reenabled_subscription_is_collected_again(engine: BillingEngine) -> None:
    sub = subscribe(engine)
    inv = issue(engine, sub)
    engine.suspend(sub, actor=ADMIN)
    on(engine, DUE)
    assert engine.collect_due().collections == ()
    engine.reenable(sub, actor=ADMIN)
    (c,) = engine.collect_due().collections
    assert c.outcome is CollectOutcome.COLLECTED
    assert engine.invoice(inv).status is InvoiceStatus.PAID


# -- outside payments are events -----------------------------------------------------------------
def test_an_outside_payment_is_emitted(engine: BillingEngine, recorder: EventRecorder) -> None:
    sub = subscribe(engine)
    inv = issue(engine, sub)
    part = engine.record_outside_payment(
        inv, reference="wire 1", amount=Money("40.00", "USD"), idempotency_key="w1", actor=AGENT
    )
    assert part.outcome is InvoiceOutcome.PARTIALLY_PAID
    rest = engine.record_outside_payment(inv, reference="wire 2", idempotency_key="w2", actor=AGENT)
    assert rest.outcome is InvoiceOutcome.PAID
    replay = engine.record_outside_payment(
        inv, reference="wire 2", idempotency_key="w2", actor=AGENT
    )
    assert replay == rest
    first, second = recorder.of(OutsidePaymentRecorded)  # twice, not three times
    assert isinstance(first, OutsidePaymentRecorded) and isinstance(second, OutsidePaymentRecorded)
    assert (first.reference, first.amount, first.invoice.status) == (
        "wire 1",
        Money("40.00", "USD"),
        InvoiceStatus.OPEN,
    )
    assert (second.reference, second.amount, second.invoice.status) == (
        "wire 2",
        Money("59.00", "USD"),
        InvoiceStatus.PAID,
    )


# -- back to active only when nothing failed is left ---------------------------------------------
def test_past_due_until_every_failed_invoice_is_paid(engine: BillingEngine) -> None:
    sub = subscribe(engine, term=Period.years(1))  # mid-term all along
    first = issue(engine, sub)
    on(engine, date(2026, 2, 15))
    second = issue(engine, sub, Money("20.00", "USD"))
    on(engine, date(2026, 3, 20))  # both due: 2026-03-03 and 2026-03-17
    sandbox(engine).script("sale", ["decline", "decline"])
    run = engine.collect_due()
    assert [c.outcome for c in run.collections] == [CollectOutcome.DECLINED] * 2
    assert engine.subscription(sub).state is SubscriptionState.PAST_DUE
    paid = engine.record_outside_payment(first, reference="r1", idempotency_key="r1", actor=AGENT)
    assert paid.outcome is InvoiceOutcome.PAID
    assert engine.subscription(sub).state is SubscriptionState.PAST_DUE  # the second is unpaid
    engine.record_outside_payment(second, reference="r2", idempotency_key="r2", actor=AGENT)
    assert engine.subscription(sub).state is SubscriptionState.ACTIVE
    actions = [e.action for e in engine.audit_log(subject_id=sub)]
    assert actions.count("subscription.reactivated") == 1


# -- invoices and renewals: each past due waits for its own money --------------------------------
def test_a_paid_invoice_does_not_reactivate_an_unpaid_renewal(engine: BillingEngine) -> None:
    """Past due because its renewal was declined: paying some invoice of it does not make it
    active (the renewal is still unpaid; ``renew_due`` chases it)."""
    sub = subscribe(engine)
    on(engine, date(2026, 3, 1))  # the term 2026-02-01 .. 2026-03-01 ends
    sandbox(engine).script("sale", ["decline"])
    (renewal,) = engine.renew_due(actor=ADMIN).renewals
    assert renewal.outcome.value == "past_due"
    inv = issue(engine, sub, Money("7.00", "USD"))
    paid = engine.record_outside_payment(inv, reference="r1", idempotency_key="r1", actor=AGENT)
    assert paid.outcome is InvoiceOutcome.PAID
    assert engine.subscription(sub).state is SubscriptionState.PAST_DUE
    assert "subscription.reactivated" not in [e.action for e in engine.audit_log(subject_id=sub)]


def test_a_paid_renewal_does_not_reactivate_an_unpaid_invoice(engine: BillingEngine) -> None:
    """Past due because an invoice's collection failed: its renewal, paid, renews the term but
    leaves it past due until the invoice is paid too."""
    sub = subscribe(engine)
    inv = issue(engine, sub)
    on(engine, DUE)  # 2026-03-03: the invoice is due, the term ended on 2026-03-01
    sandbox(engine).script("sale", ["decline"])
    (c,) = engine.collect_due().collections
    assert c.outcome is CollectOutcome.DECLINED
    assert engine.subscription(sub).state is SubscriptionState.PAST_DUE
    (renewal,) = engine.renew_due(actor=ADMIN).renewals
    assert renewal.renewed, renewal.explanation
    assert renewal.explanation.endswith("It stays past due: invoice INV-000001 still unpaid.")
    renewed = engine.subscription(sub)
    assert (renewed.state, renewed.start) == (SubscriptionState.PAST_DUE, date(2026, 3, 1))
    engine.record_outside_payment(inv, reference="r1", idempotency_key="r1", actor=AGENT)
    assert engine.subscription(sub).state is SubscriptionState.ACTIVE


def test_a_past_due_subscription_can_be_cancelled_and_the_worker_counts_it(
    engine: BillingEngine,
) -> None:
    from billing_core.cli.steps import Renewals, StepContext

    sub = subscribe(engine)
    on(engine, date(2026, 3, 1))
    sandbox(engine).script("sale", ["decline"])
    step = StepContext(engine=engine, actor=ADMIN, stopping=lambda: False, progress=lambda _: None)
    assert Renewals().run(step) == {"renewed": 0, "expired": 0, "past_due": 1}
    assert engine.subscription(sub).state is SubscriptionState.PAST_DUE
    cancelled = engine.cancel(sub, actor=AGENT)
    assert cancelled.outcome.value == "cancelled", cancelled.explanation
    assert engine.subscription(sub).state is SubscriptionState.CANCELLED
    on(engine, date(2026, 3, 9))  # the first retry's day: nothing is chased any more
    before = sales(engine)
    assert Renewals().run(step) == {"renewed": 0, "expired": 0}
    assert sales(engine) == before


def test_a_pending_order_is_not_cancelled_under_its_activation(store_url: str) -> None:
    """Cancelling a pending order while its activation's charge is at the gateway is refused
    (the activation would overwrite it with ``active`` after taking the money); before the
    activation, or with none, it is cancelled and charges nothing."""
    from billing_core.testing.hooked_gateway import HookedGateway

    clock = ManualClock(START)
    gateway = HookedGateway(SandboxGateway(clock=clock, settle_after=timedelta(days=1)))
    eng = BillingEngine(store=store_url, clock=clock, gateway=gateway)
    try:
        eng.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
        order = subscribe(eng, "o1", pending=True)
        seen = []
        gateway.before["sale"] = lambda: seen.append(eng.cancel(order, actor=AGENT))
        activated = eng.activate(order, idempotency_key="go", actor=AGENT)
        assert activated.outcome.value == "charged"
        (refused,) = seen
        assert (refused.outcome.value, refused.reason) == ("denied", "state_change_not_allowed")
        assert "another activation charged it" in refused.explanation
        assert eng.subscription(order).state is SubscriptionState.ACTIVE
        other = subscribe(eng, "o2", pending=True)
        assert eng.cancel(other, actor=AGENT).outcome.value == "cancelled"
        late = eng.activate(other, idempotency_key="go-2", actor=AGENT)
        assert late.outcome.value == "denied"
        assert len([e for e in gateway.inner.ledger() if e.operation == "sale"]) == 1  # type: ignore[attr-defined]
    finally:
        eng.store.close()
