"""The BillingEngine's flows end to end, on the memory store, a SQLite file and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from billing_core import (
    BillingEngine,
    Customer,
    IdempotencyError,
    Money,
    Period,
    TransactionStatus,
    UsageEvent,
)
from billing_core.engine import ChargeOutcome, RefundOutcome
from billing_core.plugins.events import (
    OutcomeReconciled,
    OutcomeUnknown,
    RefundFailed,
    RefundGaveUp,
    RefundIssued,
    VoidIssued,
)
from billing_core.plugins.protocols import DECLINE_ALREADY_SETTLED
from billing_core.plugins.records import QueueState
from billing_core.plugins.sandbox_gateway import Decline, Fault, SandboxGateway
from billing_core.rules import metering, pricing
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock

ADMIN = Actor(id="ada", role="admin")
AGENT = Actor(id="sam", role="support_agent")
START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    else:
        yield request.getfixturevalue("postgres_schema_url")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def engine(store_url: str, clock: ManualClock) -> Iterator[BillingEngine]:
    gateway = SandboxGateway(clock=clock, settle_after=timedelta(days=1))
    eng = BillingEngine(
        store=store_url, clock=clock, gateway=gateway, notify_emails=["billing@example.com"]
    )
    eng.add_customer(Customer(id="c1", company="Acme", timezone="America/New_York"), actor=ADMIN)
    yield eng
    eng.store.close()


def _sandbox(engine: BillingEngine) -> SandboxGateway:
    gateway = engine.gateway
    assert isinstance(gateway, SandboxGateway)
    return gateway


def _subscribe(engine: BillingEngine, key: str = "sub-1", **kwargs: object) -> str:
    params: dict[str, object] = {
        "term": Period.years(1),
        "inventory": {"dv": 2},
        "unit_prices": {"dv": Money("100.00", "USD")},
        "idempotency_key": key,
        "actor": ADMIN,
    }
    params.update(kwargs)
    result = engine.add_subscription("c1", **params)  # type: ignore[arg-type]
    assert result.outcome is ChargeOutcome.CHARGED, result.explanation
    assert result.charge is not None and result.charge.transaction_id is not None
    return result.charge.transaction_id


class TestSubscriptions:
    def test_backdated_subscription_charges_the_remaining_part(self, engine: BillingEngine) -> None:
        result = engine.add_subscription(
            "c1",
            term=Period.years(1),
            inventory={"dv": 2},
            unit_prices={"dv": Money("100.00", "USD")},
            start=date(2026, 5, 21),
            idempotency_key="sub-back",
            actor=ADMIN,
        )
        # 181/365 of 100.00 = 49.589... -> 49.59 per certificate, 2 certificates
        assert result.charge is not None
        assert result.charge.amount == Money("99.18", "USD")
        assert result.term_end == date(2027, 5, 21)
        assert "181/365" in result.explanation

    def test_backdate_too_far_is_denied_without_a_charge(self, engine: BillingEngine) -> None:
        result = engine.add_subscription(
            "c1",
            term=Period.years(1),
            inventory={"dv": 1},
            unit_prices={"dv": Money("100.00", "USD")},
            start=date(2025, 11, 21),
            idempotency_key="sub-early",
            actor=ADMIN,
        )
        assert result.outcome is ChargeOutcome.DENIED
        assert result.reason == "backdate_limit_exceeded"
        assert "2025-11-22" in result.explanation
        assert _sandbox(engine).calls["sale"] == 0

    def test_inventory_added_mid_term_is_a_prorated_line(self, engine: BillingEngine) -> None:
        sub = engine.add_subscription(
            "c1",
            term=Period.years(1),
            inventory={"dv": 1},
            unit_prices={"dv": Money("100.00", "USD")},
            idempotency_key="s",
            actor=ADMIN,
        )
        assert sub.subscription_id is not None
        engine.clock.advance(days=184)  # type: ignore[attr-defined]
        added = engine.add_inventory(
            sub.subscription_id,
            certificate_type="dv",
            quantity=3,
            idempotency_key="inv",
            actor=ADMIN,
        )
        # 2026-11-21 + 184 days = 2027-05-24 (New York date); 181 of 365 days remain
        line = added.lines[0]
        assert line.amount == Money("148.77", "USD")
        assert engine.invoice_lines(sub.subscription_id) == [line]
        assert engine.subscription(sub.subscription_id).inventory["dv"] == 4
        assert _sandbox(engine).calls["sale"] == 1  # billed on the next invoice, not now

    def test_renewal_charges_once_per_term(self, engine: BillingEngine, clock: ManualClock) -> None:
        sub = engine.add_subscription(
            "c1",
            term=Period.months(1),
            inventory={"dv": 1},
            unit_prices={"dv": Money("10.00", "USD")},
            idempotency_key="m",
            actor=ADMIN,
        )
        assert sub.subscription_id is not None
        engine.change_renewal_inventory(sub.subscription_id, inventory={"dv": 3}, actor=ADMIN)
        clock.advance(days=31)
        first = engine.renew_due(actor=ADMIN)
        again = engine.renew_due(actor=ADMIN)
        assert [r.renewed for r in first] == [True]
        assert again.renewals == ()  # renew_due answers a RenewalRunResult
        assert first[0].charge is not None
        assert first[0].charge.amount == Money("30.00", "USD")
        assert _sandbox(engine).calls["sale"] == 2


class TestRefunds:
    def test_refund_inside_the_window(self, engine: BillingEngine, clock: ManualClock) -> None:
        tx = _subscribe(engine)
        clock.advance(days=2)  # settled after 1 day
        result = engine.refund_transaction(
            tx, amount=Money("10.00", "USD"), idempotency_key="r1", actor=AGENT
        )
        assert result.outcome is RefundOutcome.REFUNDED
        stored = engine.transaction(tx)
        assert stored.refunded == Money("10.00", "USD")
        assert stored.status is TransactionStatus.PARTIALLY_REFUNDED
        assert stored.settled
        refund = engine.transaction(result.refund_transaction_id or "")
        assert refund.parent_id == tx
        assert refund.status is TransactionStatus.COMPLETED
        assert any(isinstance(e, RefundIssued) for e in engine.events)

    def test_refund_outside_the_window_is_explained(
        self, engine: BillingEngine, clock: ManualClock
    ) -> None:
        tx = _subscribe(engine)
        clock.advance(days=31)
        result = engine.refund_transaction(tx, idempotency_key="late", actor=AGENT)
        assert result.outcome is RefundOutcome.DENIED
        assert result.reason == "window_expired"
        assert "31 days ago" in result.explanation
        assert "cancel" in result.explanation
        assert _sandbox(engine).calls["refund"] == 0

    def test_unsettled_charge_is_voided_whole(self, engine: BillingEngine) -> None:
        tx = _subscribe(engine)
        partial = engine.refund_transaction(
            tx, amount=Money("1.00", "USD"), idempotency_key="p", actor=AGENT
        )
        assert partial.reason == "partial_void_not_allowed"
        whole = engine.refund_order(tx, idempotency_key="o", actor=AGENT)
        assert whole.outcome is RefundOutcome.VOIDED
        assert whole.amount == Money("200.00", "USD")
        assert engine.transaction(tx).status is TransactionStatus.VOIDED
        assert any(isinstance(e, VoidIssued) for e in engine.events)

    def test_void_first_falls_back_to_refund_when_settled_meanwhile(
        self, engine: BillingEngine
    ) -> None:
        tx = _subscribe(engine)
        gateway = _sandbox(engine)
        gateway.script("void", [Decline(code=DECLINE_ALREADY_SETTLED, message="settled")])
        gateway.settle(engine.transaction(tx).gateway_reference or "")
        # our record still says unsettled if the lookup is not consulted: force the void path
        gateway.script("lookup", [])
        result = engine.refund_order(tx, idempotency_key="order", actor=AGENT)
        assert result.outcome is RefundOutcome.REFUNDED
        assert engine.transaction(tx).status is TransactionStatus.REFUNDED
        assert engine.transaction(tx).refunded == Money("200.00", "USD")

    def test_issued_certificate_blocks_until_cancelled(
        self, engine: BillingEngine, clock: ManualClock
    ) -> None:
        sub = engine.add_subscription(
            "c1",
            term=Period.years(1),
            inventory={"dv": 1},
            unit_prices={"dv": Money("100.00", "USD")},
            domains=["example.com"],
            idempotency_key="cert",
            actor=ADMIN,
        )
        assert sub.charge is not None and sub.charge.transaction_id
        provider = engine.certificate_provider
        provider.issue(sub.certificate_ids[0])  # type: ignore[attr-defined]
        clock.advance(days=3)
        denied = engine.refund_transaction(
            sub.charge.transaction_id, idempotency_key="r-a", actor=AGENT
        )
        assert denied.reason == "certificate_issued"
        assert "portal" in denied.explanation
        engine.request_certificate_cancellation(sub.certificate_ids[0], actor=AGENT)
        provider.customer_confirms_cancellation(sub.certificate_ids[0])  # type: ignore[attr-defined]
        allowed = engine.refund_transaction(
            sub.charge.transaction_id, idempotency_key="r-b", actor=AGENT
        )
        assert allowed.outcome is RefundOutcome.REFUNDED

    def test_one_live_certificate_per_domain(self, engine: BillingEngine) -> None:
        engine.add_subscription(
            "c1",
            term=Period.years(1),
            inventory={"dv": 1},
            unit_prices={"dv": Money("100.00", "USD")},
            domains=["example.com"],
            idempotency_key="first",
            actor=ADMIN,
        )
        second = engine.add_subscription(
            "c1",
            term=Period.years(1),
            inventory={"dv": 1},
            unit_prices={"dv": Money("100.00", "USD")},
            domains=["example.com"],
            idempotency_key="second",
            actor=ADMIN,
        )
        assert second.outcome is ChargeOutcome.DENIED
        assert second.reason == "domain_has_live_certificate"
        assert _sandbox(engine).calls["sale"] == 1


class TestRetryQueue:
    def test_failing_refund_is_retried_daily_then_given_up(
        self, engine: BillingEngine, clock: ManualClock
    ) -> None:
        tx = _subscribe(engine)
        clock.advance(days=2)
        gateway = _sandbox(engine)
        gateway.script("refund", [Fault.DECLINE] * 4)
        first = engine.refund_transaction(
            tx, amount=Money("50.00", "USD"), idempotency_key="rq", actor=AGENT
        )
        assert first.outcome is RefundOutcome.QUEUED
        assert engine.transaction(tx).reserved == Money("50.00", "USD")
        runs = []
        for _ in range(3):
            assert engine.process_refund_queue().claimed == 0  # not due yet
            clock.advance(days=1)
            runs.append(engine.process_refund_queue())
        assert [r.retry_later for r in runs] == [1, 1, 0]
        assert runs[-1].gave_up == 1
        assert gateway.calls["refund"] == 4  # the first try and 3 retries
        [entry] = engine.refund_queue()
        assert entry.state is QueueState.GAVE_UP
        assert len(entry.attempts) == 4
        assert {a.idempotency_key for a in [entry]} == {"rq:refund"}
        gave_up = [e for e in engine.events if isinstance(e, RefundGaveUp)]
        assert len(gave_up) == 1
        assert gave_up[0].notify_emails == ("billing@example.com",)
        assert "50.00 USD" in gave_up[0].message
        assert len([e for e in engine.events if isinstance(e, RefundFailed)]) == 3
        stored = engine.transaction(tx)
        assert stored.reserved == Money("0.00", "USD")
        assert stored.refunded == Money("0.00", "USD")

    def test_retry_that_succeeds_refunds_once(
        self, engine: BillingEngine, clock: ManualClock
    ) -> None:
        tx = _subscribe(engine)
        clock.advance(days=2)
        gateway = _sandbox(engine)
        gateway.script("refund", [Fault.NOT_SENT])
        engine.refund_transaction(
            tx, amount=Money("50.00", "USD"), idempotency_key="rq", actor=AGENT
        )
        clock.advance(days=1)
        run = engine.process_refund_queue()
        assert run.succeeded == 1
        assert engine.transaction(tx).refunded == Money("50.00", "USD")
        assert engine.transaction(tx).reserved == Money("0.00", "USD")
        clock.advance(days=1)
        assert engine.process_refund_queue().claimed == 0
        assert sum(e.amount.amount for e in gateway.ledger() if e.operation == "refund") == Decimal(
            "50.00"
        )


class TestUnknownOutcomes:
    def test_timeout_after_send_blocks_then_reconciles(
        self, engine: BillingEngine, clock: ManualClock
    ) -> None:
        tx = _subscribe(engine)
        clock.advance(days=2)
        _sandbox(engine).script("refund", [Fault.TIMEOUT_AFTER_SEND])
        lost = engine.refund_transaction(
            tx, amount=Money("20.00", "USD"), idempotency_key="t1", actor=AGENT
        )
        assert lost.outcome is RefundOutcome.UNKNOWN
        assert any(isinstance(e, OutcomeUnknown) for e in engine.events)
        blocked = engine.refund_transaction(
            tx, amount=Money("1.00", "USD"), idempotency_key="t2", actor=AGENT
        )
        assert blocked.reason == "outcome_unknown"
        report = engine.reconcile()
        assert (report.checked, report.resolved, report.still_unknown) == (1, 1, ())
        assert engine.transaction(tx).refunded == Money("20.00", "USD")
        assert any(isinstance(e, OutcomeReconciled) for e in engine.events)
        after = engine.refund_transaction(
            tx, amount=Money("1.00", "USD"), idempotency_key="t3", actor=AGENT
        )
        assert after.outcome is RefundOutcome.REFUNDED

    def test_timeout_before_send_reconciles_into_the_retry_queue(
        self, engine: BillingEngine, clock: ManualClock
    ) -> None:
        tx = _subscribe(engine)
        clock.advance(days=2)
        _sandbox(engine).script("refund", [Fault.TIMEOUT_BEFORE_SEND])
        lost = engine.refund_transaction(
            tx, amount=Money("20.00", "USD"), idempotency_key="t1", actor=AGENT
        )
        assert lost.outcome is RefundOutcome.UNKNOWN
        engine.reconcile()
        [entry] = engine.refund_queue()
        assert entry.state is QueueState.QUEUED
        clock.advance(days=1)
        assert engine.process_refund_queue().succeeded == 1
        assert engine.transaction(tx).refunded == Money("20.00", "USD")


class TestIdempotency:
    def test_every_call_replayed_calls_the_gateway_once(
        self, engine: BillingEngine, clock: ManualClock
    ) -> None:
        calls = []
        for _ in range(2):
            tx = _subscribe(engine, key="k-sub")
            calls.append(dict(_sandbox(engine).calls))
        clock.advance(days=2)
        results = [
            engine.refund_transaction(
                tx, amount=Money("5.00", "USD"), idempotency_key="k-ref", actor=AGENT
            )
            for _ in range(3)
        ]
        assert results[0] == results[1] == results[2]
        charge = [
            engine.charge("c1", Money("3.00", "USD"), idempotency_key="k-ch", actor=ADMIN)
            for _ in range(2)
        ]
        assert charge[0] == charge[1]
        gateway = _sandbox(engine)
        assert gateway.calls["sale"] == 2  # one subscription, one charge
        assert gateway.calls["refund"] == 1
        assert engine.transaction(tx).refunded == Money("5.00", "USD")

    def test_same_key_other_parameters_raises(self, engine: BillingEngine) -> None:
        engine.charge("c1", Money("3.00", "USD"), idempotency_key="k", actor=ADMIN)
        with pytest.raises(IdempotencyError, match="other parameters") as info:
            engine.charge("c1", Money("4.00", "USD"), idempotency_key="k", actor=ADMIN)
        assert info.value.field == "$.idempotency_key"


class TestPermissionsAndUsage:
    def test_blocklisting_is_for_admins(self, engine: BillingEngine) -> None:
        denied = engine.blocklist_customer("c1", actor=AGENT)
        assert not denied.allowed
        assert denied.reason == "permission_denied"
        assert engine.blocklist_customer("c1", actor=ADMIN).allowed

    def test_metered_period_closes_into_lines(self, engine: BillingEngine) -> None:
        sub = engine.add_subscription(
            "c1",
            term=Period.months(1),
            inventory={"dv": 1},
            unit_prices={"dv": Money("10.00", "USD")},
            idempotency_key="m",
            actor=ADMIN,
        )
        assert sub.subscription_id is not None
        events = [
            UsageEvent(
                id=f"e{i}",
                quantity=100,
                at=START + timedelta(hours=i),
                subscription_id=sub.subscription_id,
            )
            for i in range(12)
        ]
        usage = engine.record_usage(events + events[:3])
        assert (usage.recorded, usage.duplicates) == (12, 3)
        price = metering.MeteredPrice(model=pricing.PerUnit(unit_price=Money("0.0015", "USD")))
        engine.clock.advance(days=30)  # type: ignore[attr-defined]  # a period closes once ended
        closed = engine.close_metered_period(
            sub.subscription_id,
            price=price,
            start=START,
            end=START + timedelta(days=30),
            idempotency_key="close-1",
            actor=ADMIN,
        )
        # 1,200 units × 0.0015 = 1.80
        assert [line.amount for line in closed.lines] == [Money("1.80", "USD")]
        assert engine.invoice_lines(sub.subscription_id) == list(closed.lines)
