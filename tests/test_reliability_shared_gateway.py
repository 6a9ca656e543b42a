"""``SharedGateway`` (the multi-process sandbox the reliability tests use) passes the gateway
contract suite on a SQLite file and on PostgreSQL, and shares its books across instances."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from billing_core import Money, PaymentInstrument
from billing_core.plugins.protocols import (
    GatewayOperation,
    GatewayOutcome,
    GatewayRequest,
    OutcomeStatus,
    PaymentGateway,
)
from billing_core.plugins.sandbox_gateway import Fault, SandboxGateway
from billing_core.testing.clock import ManualClock
from billing_core.testing.gateway_contract import GatewayContract, Settle
from billing_core.testing.shared_gateway import SharedGateway

START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def gateway_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.sqlite3'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


class TestSharedGatewayContract(GatewayContract):
    @pytest.fixture
    def gateway(self, gateway_url: str) -> Iterator[PaymentGateway]:
        gateway = SharedGateway(gateway_url, clock=ManualClock(START))
        yield gateway
        gateway.close()

    @pytest.fixture
    def settle(self, gateway: PaymentGateway) -> Settle:
        assert isinstance(gateway, SharedGateway)

        def settle(charge: GatewayOutcome) -> None:
            assert charge.reference is not None
            gateway.settle(charge.reference)

        return settle


def _request(op: GatewayOperation, amount: str, key: str, **kw: Any) -> GatewayRequest:
    return GatewayRequest(
        operation=op,
        transaction_id=f"tx-{key}",
        idempotency_key=key,
        amount=Money(amount, "USD"),
        **kw,
    )


def test_two_instances_share_books_scripts_and_counts(gateway_url: str) -> None:
    clock = ManualClock(START)
    a = SharedGateway(gateway_url, clock=clock, settle_after=timedelta(0))
    b = SharedGateway(gateway_url, clock=clock, create=False)
    try:
        sale = a.sale(_request(GatewayOperation.SALE, "10.00", "s"))
        assert sale.reference is not None
        b.script("refund", [Fault.DECLINE, Fault.TIMEOUT_AFTER_SEND])
        refund = _request(GatewayOperation.REFUND, "4.00", "r", parent_reference=sale.reference)
        assert a.refund(refund).status is OutcomeStatus.DECLINED  # b's script, a's call
        assert a.refund(refund).status is OutcomeStatus.UNKNOWN  # happened, answer lost
        found = b.lookup("tx-r", "r")
        assert found.status is OutcomeStatus.SUCCEEDED
        assert b.refund(refund).reference == found.reference  # a replay moves nothing
        assert b.charge(sale.reference).refunded == Money("4.00", "USD")
        assert (a.calls["refund"], b.received["refund"], b.calls["lookup"]) == (3, 3, 1)
        assert [e.operation for e in b.ledger()] == ["sale", "refund"]
        b.script("refund", [Fault.DECLINE])
        assert a.refund(refund).reference == found.reference, "a done key is never declined"
    finally:
        a.close()
        b.close()


def test_the_ledger_records_the_instrument_charged(gateway_url: str) -> None:
    """Both sandboxes record the instrument a sale was charged on (None: the card on file)."""
    card = PaymentInstrument(id="pi-1", fingerprint="fp-1")
    clock = ManualClock(START)
    shared = SharedGateway(gateway_url, clock=clock)
    local = SandboxGateway(clock=clock)
    try:
        for gateway in (shared, local):
            gateway.sale(_request(GatewayOperation.SALE, "10.00", "with", instrument=card))
            gateway.sale(_request(GatewayOperation.SALE, "5.00", "without"))
            assert [(e.idempotency_key, e.instrument_id) for e in gateway.ledger()] == [
                ("with", "pi-1"),
                ("without", None),
            ]
    finally:
        shared.close()
