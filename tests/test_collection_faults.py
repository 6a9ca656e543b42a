"""The fault matrix of docs/reliability.md for a charge with a backup card (issue 14): each
gateway fault on the primary card ends in its documented state on memory, SQLite and
PostgreSQL, and after reconciliation and a replay nothing is ever charged twice."""

from __future__ import annotations

import pytest

from billing_core import PaymentInstrument, TransactionKind, TransactionStatus
from billing_core.engine.results import ChargeOutcome
from billing_core.plugins.sandbox_gateway import Fault
from test_engine import AGENT
from test_engine_instruments import TEN, make_engine, sandbox

C, F, U = TransactionStatus.COMPLETED, TransactionStatus.FAILED, TransactionStatus.UNKNOWN

# fault on the primary -> (answer, attempts, the sales as stored after reconcile, the card charged)
MATRIX = {
    Fault.DECLINE: (ChargeOutcome.CHARGED, 2, [F, C], "pi-backup"),
    Fault.TIMEOUT_BEFORE_SEND: (ChargeOutcome.UNKNOWN, 1, [F], None),
    Fault.TIMEOUT_AFTER_SEND: (ChargeOutcome.UNKNOWN, 1, [C], "pi-primary"),
    Fault.PENDING: (ChargeOutcome.UNKNOWN, 1, [C], "pi-primary"),
    Fault.DUPLICATE_RESPONSE: (ChargeOutcome.CHARGED, 1, [C], "pi-primary"),
    Fault.NOT_SENT: (ChargeOutcome.FAILED, 1, [F], None),
}


@pytest.mark.parametrize("fault", list(MATRIX), ids=str)
def test_fault_on_the_primary_card(store_url: str, fault: Fault) -> None:
    outcome, attempts, statuses, charged = MATRIX[fault]
    engine = make_engine(store_url)
    try:
        engine.add_instrument("c1", PaymentInstrument(id="pi-primary"), primary=True, actor=AGENT)
        engine.add_instrument("c1", PaymentInstrument(id="pi-backup"), backup=True, actor=AGENT)
        sandbox(engine).script("sale", [fault])
        result = engine.charge("c1", TEN, idempotency_key="inv-1", actor=AGENT)
        assert (result.outcome, result.attempts) == (outcome, attempts)
        engine.reconcile()
        replay = engine.charge("c1", TEN, idempotency_key="inv-1", actor=AGENT)
        assert replay == result  # the stored answer; the gateway is not called again
        sales = sorted(
            (t for t in engine.transactions(customer_id="c1") if t.kind is TransactionKind.SALE),
            key=lambda t: t.idempotency_key or "",
        )
        assert [t.status for t in sales] == statuses
        assert U not in [t.status for t in sales]  # reconcile resolved every doubt
        moved = sandbox(engine).ledger()
        assert [e.instrument_id for e in moved] == ([charged] if charged else [])
        assert len({e.transaction_id for e in moved}) == len(moved) <= 1  # never twice
    finally:
        engine.store.close()
