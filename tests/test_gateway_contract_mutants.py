"""The gateway contract kit rejects gateways that get the subtle things wrong.

Each mutant is the sandbox with one defect a real plugin could have; the contract test named for
that defect must fail on it (and pass on the sandbox itself, which ``test_sandbox_gateway.py``
runs). A kit that let these through would certify gateways that refund twice, or never.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import attrs
import pytest

from billing_core.plugins.protocols import (
    GatewayOperation,
    GatewayOutcome,
    GatewayRequest,
    OutcomeStatus,
)
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.testing.clock import ManualClock
from billing_core.testing.gateway_contract import GatewayContract, Settle

START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class CachesDeclines(SandboxGateway):
    """Remembers a declined answer per key and replays it to every later call with that key."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.declined: dict[str, GatewayOutcome] = {}

    def refund(self, request: GatewayRequest) -> GatewayOutcome:
        if request.idempotency_key in self.declined:
            return self.declined[request.idempotency_key]
        outcome = super().refund(request)
        if outcome.status is OutcomeStatus.DECLINED:
            self.declined[request.idempotency_key] = outcome
        return outcome


class ForgetsDeclines(SandboxGateway):
    """Its lookup says ``not_sent`` for a call that reached it and was declined."""

    def lookup(self, transaction_id: str, idempotency_key: str) -> GatewayOutcome:
        found = super().lookup(transaction_id, idempotency_key)
        if found.status is OutcomeStatus.DECLINED:
            return GatewayOutcome(status=OutcomeStatus.NOT_SENT, message="no such call")
        return found


class RefundsWithoutAmount(SandboxGateway):
    """Answers a successful refund without saying how much it refunded."""

    def refund(self, request: GatewayRequest) -> GatewayOutcome:
        return attrs.evolve(super().refund(request), amount=None)


class IgnoresInstruments(SandboxGateway):
    """Charges whatever instrument it is given, expired or inactive ones too."""

    def sale(self, request: GatewayRequest) -> GatewayOutcome:
        return super().sale(attrs.evolve(request, instrument=None))


def _settler(gateway: SandboxGateway, clock: ManualClock) -> Settle:
    def settle(charge: GatewayOutcome) -> None:
        assert charge.reference is not None
        settles_at = gateway.charge(charge.reference).settles_at
        assert settles_at is not None
        clock.set(max(clock(), settles_at))

    return settle


MUTANTS: list[tuple[Callable[..., SandboxGateway], str]] = [
    (CachesDeclines, "test_a_declined_call_is_decided_afresh_when_its_key_is_retried"),
    (ForgetsDeclines, "test_lookup_of_a_declined_call_is_declined"),
    (RefundsWithoutAmount, "test_refund_of_a_settled_sale"),
    (RefundsWithoutAmount, "test_partial_refunds_up_to_what_is_left"),
    (IgnoresInstruments, "test_a_sale_on_an_expired_instrument_is_declined"),
    (IgnoresInstruments, "test_a_sale_on_an_inactive_instrument_is_declined"),
]


def _run(factory: Callable[..., SandboxGateway], test_name: str) -> None:
    clock = ManualClock(START)
    gateway = factory(clock=clock)
    getattr(GatewayContract(), test_name)(gateway, _settler(gateway, clock))


@pytest.mark.parametrize(
    ("factory", "test_name"), MUTANTS, ids=[f"{f.__name__}-{t}" for f, t in MUTANTS]
)
def test_the_contract_rejects_the_mutant(
    factory: Callable[..., SandboxGateway], test_name: str
) -> None:
    with pytest.raises(AssertionError):
        _run(factory, test_name)


@pytest.mark.parametrize("test_name", sorted({t for _, t in MUTANTS}))
def test_the_same_contract_tests_pass_on_the_sandbox(test_name: str) -> None:
    _run(SandboxGateway, test_name)


def test_the_mutants_only_differ_where_they_say() -> None:
    """Each mutant still passes the rest of the contract: the kit names the defect precisely."""
    clock = ManualClock(START)
    gateway = CachesDeclines(clock=clock)
    GatewayContract().test_refund_of_a_settled_sale(gateway, _settler(gateway, clock))
    request = GatewayRequest(
        operation=GatewayOperation.SALE,
        transaction_id="tx-1",
        idempotency_key="k-1",
        amount=GatewayContract().money("1.00"),
    )
    assert RefundsWithoutAmount(clock=clock).sale(request).amount is not None
