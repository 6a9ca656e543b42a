"""The fault matrix of docs/reliability.md extended to ``collect_due`` (issue 14): each gateway
fault on an invoice's first collection ends in its documented state on memory, SQLite and
PostgreSQL, and after ``reconcile()``, the next run and the dunning schedule's retry the gateway
has taken the invoice's amount exactly once. A Hypothesis property: whatever the sequence of
runs, faults, reconciliations and days, an invoice is never charged twice nor more than due."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_core import BillingEngine, InvoiceStatus, PaymentInstrument, SubscriptionState
from billing_core.engine.collect import CollectOutcome
from billing_core.plugins.sandbox_gateway import Fault
from test_engine_collect import (
    AGENT,
    AMOUNT,
    DUE,
    Recorder,
    build,
    collected,
    issue,
    on,
    sandbox,
    subscribe,
)
from test_engine_collect import engine as engine
from test_engine_collect import recorder as recorder

CO = CollectOutcome
# fault on the first try -> (answer, invoice status, in flight, after reconcile + same-day run)
MATRIX: dict[Fault | None, tuple[CollectOutcome, InvoiceStatus, bool, InvoiceStatus]] = {
    None: (CO.COLLECTED, InvoiceStatus.PAID, False, InvoiceStatus.PAID),
    Fault.DECLINE: (CO.DECLINED, InvoiceStatus.OPEN, False, InvoiceStatus.OPEN),
    Fault.TIMEOUT_BEFORE_SEND: (CO.UNKNOWN, InvoiceStatus.OPEN, True, InvoiceStatus.PAID),
    Fault.TIMEOUT_AFTER_SEND: (CO.UNKNOWN, InvoiceStatus.OPEN, True, InvoiceStatus.PAID),
    Fault.PENDING: (CO.UNKNOWN, InvoiceStatus.OPEN, True, InvoiceStatus.PAID),
    Fault.DUPLICATE_RESPONSE: (CO.COLLECTED, InvoiceStatus.PAID, False, InvoiceStatus.PAID),
    Fault.NOT_SENT: (CO.FAILED, InvoiceStatus.OPEN, False, InvoiceStatus.PAID),
}


@pytest.mark.parametrize("fault", list(MATRIX), ids=str)
def test_fault_on_a_collection(engine: BillingEngine, fault: Fault | None) -> None:
    answer, status, in_flight, after = MATRIX[fault]
    sub = subscribe(engine)
    inv = issue(engine, sub)
    if fault is not None:
        sandbox(engine).script("sale", [fault])
    on(engine, DUE)
    (first,) = engine.collect_due().collections
    assert first.outcome is answer, first.explanation
    stored = engine.invoice(inv)
    assert stored.status is status
    assert bool(stored.payments_in_flight) is in_flight
    if in_flight:  # left alone until reconcile() knows the sale
        assert engine.collect_due().collections == ()
    engine.reconcile()
    engine.collect_due()  # the same day: a released payment is tried again, same key
    assert engine.invoice(inv).status is after
    assert len(collected(engine, inv)) <= 1
    if fault is Fault.DECLINE:
        assert engine.subscription(sub).state is SubscriptionState.PAST_DUE
        on(engine, DUE + timedelta(days=8))  # the dunning schedule's first retry
        assert engine.collect_due().count(CollectOutcome.COLLECTED) == 1
        assert engine.subscription(sub).state is SubscriptionState.ACTIVE
    engine.reconcile()
    on(engine, DUE + timedelta(days=9))
    assert engine.collect_due().collections == ()
    final = engine.invoice(inv)
    assert final.status is InvoiceStatus.PAID and not final.payments_in_flight
    assert collected(engine, inv) == [AMOUNT]  # taken exactly once, whatever happened
    assert final.amount_paid == AMOUNT


STEPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("run"),
            st.sampled_from(
                [
                    None,
                    Fault.DECLINE,
                    Fault.TIMEOUT_BEFORE_SEND,
                    Fault.TIMEOUT_AFTER_SEND,
                    Fault.PENDING,
                    Fault.DUPLICATE_RESPONSE,
                    Fault.NOT_SENT,
                ]
            ),
        ),
        st.tuples(st.just("reconcile"), st.none()),
        st.tuples(st.just("days"), st.integers(min_value=1, max_value=10)),
    ),
    max_size=14,
)


@settings(max_examples=60, deadline=None)
@given(steps=STEPS)
def test_never_charged_twice(steps: list[tuple[str, object]]) -> None:
    engine = build("memory://", Recorder())
    try:
        _run(engine, steps)
    finally:
        engine.store.close()


def _run(engine: BillingEngine, steps: list[tuple[str, object]]) -> None:
    sub = subscribe(engine)
    inv = issue(engine, sub)
    day = 0
    on(engine, DUE)
    for kind, arg in steps:
        if kind == "run":
            sandbox(engine).clear_faults()
            if isinstance(arg, Fault):
                sandbox(engine).script("sale", [arg])
            engine.collect_due()
        elif kind == "reconcile":
            engine.reconcile()
        else:
            assert isinstance(arg, int)
            day += arg
            on(engine, DUE + timedelta(days=day))
        taken = collected(engine, inv)
        assert len(taken) <= 1, taken  # never twice
        stored = engine.invoice(inv)
        assert stored.amount_paid <= AMOUNT
        if stored.status is InvoiceStatus.PAID:
            assert taken == [AMOUNT]
    engine.reconcile()
    stored = engine.invoice(inv)
    assert not stored.payments_in_flight
    assert stored.amount_paid == sum(collected(engine, inv), AMOUNT * 0)  # the figures add up


@pytest.mark.parametrize("fault", [Fault.TIMEOUT_AFTER_SEND, Fault.TIMEOUT_BEFORE_SEND])
def test_a_lost_answer_on_the_backup_card_is_settled_by_reconcile(
    engine: BillingEngine, fault: Fault
) -> None:
    """The primary card declines, the backup's answer is lost: the invoice's amount is reserved
    for the payment in doubt, and ``reconcile()`` settles it from the backup's sale
    (``<key>:sale:2``), not only the first card's: paid when the gateway took the money, released
    (and collected again, once) when it did not. Before, only ``<key>:sale`` was looked at and the
    amount stayed reserved for good."""
    engine.add_instrument("c1", PaymentInstrument(id="pi-amex"), backup=True, actor=AGENT)
    inv = issue(engine, subscribe(engine))
    sandbox(engine).script("sale", [Fault.DECLINE, fault])
    on(engine, DUE)
    (first,) = engine.collect_due().collections
    assert first.outcome is CO.UNKNOWN, first.explanation
    assert engine.invoice(inv).payments_in_flight
    engine.reconcile()
    stored = engine.invoice(inv)
    assert not stored.payments_in_flight, "settled from the backup card's sale"
    if fault is Fault.TIMEOUT_AFTER_SEND:  # the gateway took it: paid, nothing more to collect
        assert stored.status is InvoiceStatus.PAID
    else:  # never sent: released, and the next run collects it
        assert stored.status is InvoiceStatus.OPEN
        engine.collect_due()
    final = engine.invoice(inv)
    assert final.status is InvoiceStatus.PAID and final.amount_paid == AMOUNT
    assert collected(engine, inv) == [AMOUNT]  # taken exactly once
