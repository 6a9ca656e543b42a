"""Promise 6: a Hypothesis state machine drives the engine through any order of charges,
settlements, partial and full refunds, voids, duplicate submits, gateway faults, clock moves,
retry-queue runs and reconciliations, and checks after every step:

* refunded never exceeds captured (refunded + reserved <= amount, none negative);
* every payment's status matches its totals (refunded / partially_refunded / voided);
* the store matches a simple model: the payments charged are the ones stored, each stored total
  equals the sum of its completed refunds, and the store never claims a refund the gateway did
  not make, nor forgets one it made (``store refunded <= gateway refunded <= refunded + reserved``);
* a replayed idempotency key returns the stored result and calls no gateway;
* the audit log is append-only: every earlier entry is still there, unchanged, in order.

On the memory store and a SQLite file in CI; on PostgreSQL through ``postgres_url``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from billing_core import BillingEngine, Customer, Money, TransactionKind, TransactionStatus
from billing_core.plugins.manager import Plugins
from billing_core.plugins.records import AuditEntry
from billing_core.plugins.sandbox_gateway import Fault, SandboxGateway
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock

SOAK = os.environ.get("BILLING_CORE_SOAK") == "1"
ADMIN = Actor(id="ada", role="admin")
START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
USD = "USD"
S = TransactionStatus
Figure = Callable[[str], None]
_steps: dict[str, int] = {}


class EngineMachine(RuleBasedStateMachine):
    @staticmethod
    def store_url() -> str:
        return "memory://"

    payments = Bundle("payments")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(START)
        self.gateway = SandboxGateway(clock=self.clock, settle_after=timedelta(days=1))
        url = self.store_url()
        self.engine = BillingEngine(
            store=url,
            clock=self.clock,
            gateway=self.gateway,
            plugins=Plugins(clock=self.clock, entry_points=False),
            notify_emails=["billing@example.com"],
        )
        self.engine.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
        self.charged: dict[str, Money] = {}  # the model: every payment the engine took
        self.audit: list[AuditEntry] = []
        self.calls: list[tuple[str, dict[str, Any], Any]] = []  # replayable (key, kwargs, answer)
        self.n = 0

    def teardown(self) -> None:
        _steps["runs"] = _steps.get("runs", 0) + 1
        _steps["steps"] = _steps.get("steps", 0) + self.n
        self.engine.store.close()

    def _key(self) -> str:
        self.n += 1
        return f"k{self.n}-{uuid.uuid4().hex[:6]}"

    # -- rules ------------------------------------------------------------------------------------
    @rule(target=payments, cents=st.integers(100, 50_000))
    def charge(self, cents: int) -> str:
        key = self._key()
        amount = Money.from_minor_units(cents, USD)
        result = self.engine.charge("c1", amount, idempotency_key=key, actor=ADMIN)
        self.calls.append(("charge", {"customer_id": "c1", "amount": amount, "key": key}, result))
        if result.transaction_id is not None:
            self.charged[result.transaction_id] = amount
        return result.transaction_id or "none"

    @rule(tx=payments)
    def settle(self, tx: str) -> None:
        self.n += 1
        if tx in self.charged:
            reference = self.engine.transaction(tx).gateway_reference
            if reference is not None:
                self.gateway.settle(reference)

    @rule(tx=payments, percent=st.integers(1, 100))
    def partial_refund(self, tx: str, percent: int) -> None:
        if tx not in self.charged:
            return
        amount = self.charged[tx].scale(Decimal(percent) / 100)
        if amount.amount <= 0:
            return
        key = self._key()
        result = self.engine.refund_transaction(tx, amount=amount, idempotency_key=key, actor=ADMIN)
        self.calls.append(("refund", {"tx": tx, "amount": amount, "key": key}, result))

    @rule(tx=payments)
    def full_refund(self, tx: str) -> None:
        if tx not in self.charged:
            return
        key = self._key()
        result = self.engine.refund_transaction(tx, idempotency_key=key, actor=ADMIN)
        self.calls.append(("refund", {"tx": tx, "amount": None, "key": key}, result))

    @rule(tx=payments)
    def void_or_refund_order(self, tx: str) -> None:
        if tx not in self.charged:
            return
        key = self._key()
        result = self.engine.refund_order(tx, idempotency_key=key, actor=ADMIN)
        self.calls.append(("order", {"tx": tx, "key": key}, result))

    @rule(data=st.data())
    def duplicate_submit(self, data: st.DataObject) -> None:
        if not self.calls:
            return
        self.n += 1
        kind, kw, answer = data.draw(st.sampled_from(self.calls))
        before = dict(self.gateway.calls)
        if kind == "charge":
            again: Any = self.engine.charge(
                kw["customer_id"], kw["amount"], idempotency_key=kw["key"], actor=ADMIN
            )
        elif kind == "refund":
            again = self.engine.refund_transaction(
                kw["tx"], amount=kw["amount"], idempotency_key=kw["key"], actor=ADMIN
            )
        else:
            again = self.engine.refund_order(kw["tx"], idempotency_key=kw["key"], actor=ADMIN)
        assert again == answer, "a replay returns the stored result"
        assert dict(self.gateway.calls) == before, "a replay calls no gateway"

    @rule(
        operation=st.sampled_from(["sale", "refund", "void", "lookup"]),
        fault=st.sampled_from(list(Fault)),
    )
    def gateway_fault(self, operation: str, fault: Fault) -> None:
        self.n += 1
        self.gateway.script(operation, [fault])

    @rule(hours=st.integers(1, 24 * 5))
    def advance_clock(self, hours: int) -> None:
        self.n += 1
        self.clock.advance(hours=hours)

    @rule()
    def process_queue(self) -> None:
        self.n += 1
        self.engine.process_refund_queue()

    @rule()
    def reconcile(self) -> None:
        self.n += 1
        report = self.engine.reconcile()
        assert report.resolved + len(report.still_unknown) == report.checked

    # -- invariants -------------------------------------------------------------------------------
    @invariant()
    def money_and_statuses_add_up(self) -> None:
        stored = {t.id: t for t in self.engine.transactions()}
        sales = {i: t for i, t in stored.items() if t.kind is TransactionKind.SALE}
        assert set(sales) == set(self.charged), "the store holds exactly the payments charged"
        gateway_refunded = self._gateway_refunds()
        for tx, sale in sales.items():
            assert sale.amount == self.charged[tx]
            zero = Money.zero(USD)
            assert sale.refunded >= zero and sale.reserved >= zero
            assert sale.refunded + sale.reserved <= sale.amount, "refunded never exceeds captured"
            children = [c for c in stored.values() if c.parent_id == tx]
            done = sum((c.amount for c in children if c.status is S.COMPLETED), zero)
            assert sale.refunded == done, "the total is the sum of its completed refunds"
            if sale.refunded == zero:
                assert sale.status in (S.COMPLETED, S.PENDING, S.UNKNOWN, S.FAILED)
            elif sale.refunded < sale.amount:
                assert sale.status is S.PARTIALLY_REFUNDED
            else:
                assert sale.status in (S.REFUNDED, S.VOIDED)
            at_gateway = gateway_refunded.get(sale.gateway_reference or "", zero)
            assert sale.refunded <= at_gateway <= sale.refunded + sale.reserved, (
                f"{tx}: store {sale.refunded} (+{sale.reserved} reserved), gateway {at_gateway}"
            )

    @invariant()
    def audit_log_is_append_only(self) -> None:
        log = self.engine.audit_log()
        assert log[: len(self.audit)] == self.audit, "an audit entry changed or disappeared"
        ids = [int(e.id or 0) for e in log]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        self.audit = log

    def _gateway_refunds(self) -> dict[str, Money]:
        """Money given back per charge at the gateway: refunds, or the whole charge if voided."""
        moved: dict[str, Money] = {}
        for entry in self.gateway.ledger():
            if entry.operation in ("refund", "void") and entry.parent_reference:
                prior = moved.get(entry.parent_reference, Money.zero(USD))
                moved[entry.parent_reference] = prior + entry.amount
        return moved


def _run(url: Callable[[], str], examples: int, steps: int) -> None:
    machine = type("Machine", (EngineMachine,), {"store_url": staticmethod(url)})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres"])
def test_engine_state_machine(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, figure: Figure
) -> None:
    _steps.clear()
    url: Callable[[], str]
    if backend == "memory":

        def url() -> str:
            return "memory://"

        examples = 1000 if SOAK else 150
    elif backend == "sqlite":

        def url() -> str:
            return f"sqlite:///{tmp_path / uuid.uuid4().hex}.sqlite3"

        examples = 400 if SOAK else 40
    else:
        from conftest import fresh_postgres_schema

        base = request.getfixturevalue("postgres_url")

        def url() -> str:
            return str(fresh_postgres_schema(base))

        examples = 200 if SOAK else 20
    _run(url, examples, 25)
    figure(
        f"state machine on {backend}: {_steps.get('runs', 0)} runs, "
        f"{_steps.get('steps', 0)} steps, every invariant checked after each step"
    )
