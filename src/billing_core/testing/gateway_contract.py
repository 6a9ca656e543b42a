"""The gateway contract suite: what every payment gateway plugin must do, as pytest tests.

A gateway plugin's test module subclasses ``GatewayContract`` and provides two fixtures:
``gateway`` (a gateway in test mode) and ``settle`` (a callable that makes a given charge
settle: for the sandbox, moving its clock past the settlement time)::

    class TestAcmeGateway(GatewayContract):
        @pytest.fixture
        def gateway(self) -> PaymentGateway:
            return AcmeGateway(api_key=os.environ["ACME_TEST_KEY"])

        @pytest.fixture
        def settle(self, gateway: PaymentGateway) -> Settle:
            return lambda charge: acme_test_api.force_settlement(charge.reference)

The suite checks every operation the gateway declares in its ``capabilities`` (and that it
refuses the ones it does not), partial refunds, a refund above what is left being declined, a
void after settlement being declined with ``DECLINE_ALREADY_SETTLED``, idempotent replays that
return the same outcome and move money once, and ``lookup`` of a call never sent answering
``not_sent`` (and of a declined call answering ``declined``), a declined call being decided
afresh when its key is tried again (a decline is never cached and replayed), and every
successful money movement carrying the amount it moved. Set the class attribute ``currency`` when the gateway does not take US dollars.

Faults (timeouts, lost answers) cannot be forced on a real gateway, so they are not part of the
contract; the sandbox's own tests cover them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from ..currencies import MINOR_UNITS
from ..instruments import InstrumentKind, PaymentInstrument
from ..money import Money
from ..plugins.protocols import (
    DECLINE_ALREADY_SETTLED,
    GatewayCapabilities,
    GatewayOperation,
    GatewayOutcome,
    GatewayRequest,
    OutcomeStatus,
    PaymentGateway,
)

__all__ = ["GatewayContract", "Settle"]

Settle = Callable[[GatewayOutcome], None]
"""Makes the charge (a sale's or a capture's outcome) settle at the gateway."""

OK = OutcomeStatus.SUCCEEDED
NOTHING_HAPPENED = (OutcomeStatus.DECLINED, OutcomeStatus.NOT_SENT)


class GatewayContract:
    """The contract tests. Subclass it (as ``Test...``) and override ``gateway`` and ``settle``."""

    currency: str = "USD"

    # -- fixtures a subclass provides ----------------------------------------------------------
    @pytest.fixture
    def gateway(self) -> PaymentGateway:
        """The gateway under test. Override this fixture."""
        raise NotImplementedError("a GatewayContract subclass must provide the gateway fixture")

    @pytest.fixture
    def settle(self, gateway: PaymentGateway) -> Settle:
        """Makes a charge settle. Override this fixture."""
        raise NotImplementedError("a GatewayContract subclass must provide the settle fixture")

    # -- helpers -------------------------------------------------------------------------------
    def money(self, amount: str) -> Money:
        return Money(amount, self.currency)

    def request(
        self,
        operation: GatewayOperation,
        amount: str | Money,
        *,
        parent: tuple[GatewayRequest, GatewayOutcome] | None = None,
        key: str | None = None,
        transaction_id: str | None = None,
        instrument: PaymentInstrument | None = None,
    ) -> GatewayRequest:
        """A request with fresh ids (or the given ones), acting on ``parent`` if given."""
        return GatewayRequest(
            operation=operation,
            transaction_id=transaction_id or f"tx-{uuid.uuid4().hex}",
            idempotency_key=key or f"key-{uuid.uuid4().hex}",
            amount=amount if isinstance(amount, Money) else self.money(amount),
            parent_transaction_id=parent[0].transaction_id if parent else None,
            parent_reference=parent[1].reference if parent else None,
            description="billing_core gateway contract",
            instrument=instrument,
        )

    def instrument(self, **changes: Any) -> PaymentInstrument:
        """A payment card the gateway can charge, changed by ``changes`` (``expires_on=``,
        ``active=``). Override for a gateway that needs real tokens: the instrument's ``id``
        is the token it charges."""
        fields: dict[str, Any] = {
            "id": f"pi-{uuid.uuid4().hex[:12]}",
            "kind": InstrumentKind.PAYMENT_CARD,
            "fingerprint": "fp-contract",
        }
        return PaymentInstrument(**(fields | changes))

    def call(self, gateway: PaymentGateway, request: GatewayRequest) -> GatewayOutcome:
        """Send ``request`` to the gateway method of its operation; check it answered an outcome."""
        outcome = getattr(gateway, request.operation.value)(request)
        assert isinstance(outcome, GatewayOutcome), f"{request.operation} returned {outcome!r}"
        return outcome

    def charge(
        self, gateway: PaymentGateway, amount: str = "10.00"
    ) -> tuple[GatewayRequest, GatewayOutcome]:
        """A successful sale of ``amount``."""
        request = self.request(GatewayOperation.SALE, amount)
        outcome = self.call(gateway, request)
        assert outcome.status is OK, outcome
        return request, outcome

    def settled_charge(
        self, gateway: PaymentGateway, settle: Settle, amount: str = "10.00"
    ) -> tuple[GatewayRequest, GatewayOutcome]:
        request, outcome = self.charge(gateway, amount)
        settle(outcome)
        return request, outcome

    def refund(
        self,
        gateway: PaymentGateway,
        charge: tuple[GatewayRequest, GatewayOutcome],
        amount: str,
        key: str | None = None,
    ) -> GatewayOutcome:
        return self.call(
            gateway, self.request(GatewayOperation.REFUND, amount, parent=charge, key=key)
        )

    @staticmethod
    def require(capabilities: GatewayCapabilities, *names: str) -> None:
        missing = [name for name in names if not getattr(capabilities, name)]
        if missing:
            pytest.skip(f"the gateway does not declare {', '.join(missing)}")

    # -- shape ---------------------------------------------------------------------------------
    def test_satisfies_the_protocol(self, gateway: PaymentGateway) -> None:
        assert isinstance(gateway, PaymentGateway)
        assert isinstance(gateway.name, str)
        assert gateway.name
        assert isinstance(gateway.capabilities, GatewayCapabilities)

    # -- sales and settlement ------------------------------------------------------------------
    def test_sale_succeeds_with_a_reference_and_the_amount(self, gateway: PaymentGateway) -> None:
        _, outcome = self.charge(gateway, "12.34")
        assert outcome.reference
        assert outcome.amount == self.money("12.34")

    def test_lookup_reports_a_sale_and_its_settlement(
        self, gateway: PaymentGateway, settle: Settle
    ) -> None:
        request, outcome = self.charge(gateway)
        found = gateway.lookup(request.transaction_id, request.idempotency_key)
        assert (found.status, found.reference) == (OK, outcome.reference)
        settle(outcome)
        found = gateway.lookup(request.transaction_id, request.idempotency_key)
        assert (found.status, found.reference, found.settled) == (OK, outcome.reference, True)

    def test_lookup_of_a_call_never_sent_is_not_sent(self, gateway: PaymentGateway) -> None:
        found = gateway.lookup(f"tx-{uuid.uuid4().hex}", f"key-{uuid.uuid4().hex}")
        assert found.status is OutcomeStatus.NOT_SENT

    def test_lookup_of_a_declined_call_is_declined(
        self, gateway: PaymentGateway, settle: Settle
    ) -> None:
        """A call that reached the gateway and was declined is reported as declined, never as
        ``not_sent``: reconciliation must be able to tell "refused" from "never arrived"."""
        self.require(gateway.capabilities, "refunds")
        sale = self.settled_charge(gateway, settle)
        request = self.request(GatewayOperation.REFUND, "10.01", parent=sale)
        assert self.call(gateway, request).status is OutcomeStatus.DECLINED
        found = gateway.lookup(request.transaction_id, request.idempotency_key)
        assert found.status is OutcomeStatus.DECLINED, found

    # -- instruments ---------------------------------------------------------------------------
    def test_a_sale_on_a_usable_instrument_succeeds(
        self, gateway: PaymentGateway, settle: Settle
    ) -> None:
        request = self.request(GatewayOperation.SALE, "10.00", instrument=self.instrument())
        outcome = self.call(gateway, request)
        assert outcome.status is OK, outcome
        assert outcome.amount == request.amount

    def test_a_sale_on_an_expired_instrument_is_declined(
        self, gateway: PaymentGateway, settle: Settle
    ) -> None:
        """A card past its last valid date is refused like a card network refuses it, and the
        refusal is reported as declined by ``lookup`` (it reached the gateway; nothing moved)."""
        expired = self.instrument(expires_on=date(2000, 1, 31))
        request = self.request(GatewayOperation.SALE, "10.00", instrument=expired)
        assert self.call(gateway, request).status is OutcomeStatus.DECLINED
        found = gateway.lookup(request.transaction_id, request.idempotency_key)
        assert found.status in NOTHING_HAPPENED, found

    def test_a_sale_on_an_inactive_instrument_is_declined(
        self, gateway: PaymentGateway, settle: Settle
    ) -> None:
        inactive = self.instrument(active=False)
        request = self.request(GatewayOperation.SALE, "10.00", instrument=inactive)
        assert self.call(gateway, request).status is OutcomeStatus.DECLINED

    # -- voids ---------------------------------------------------------------------------------
    def test_void_of_an_unsettled_sale(self, gateway: PaymentGateway) -> None:
        self.require(gateway.capabilities, "voids")
        sale = self.charge(gateway)
        void = self.call(gateway, self.request(GatewayOperation.VOID, "10.00", parent=sale))
        assert void.status is OK, void
        again = self.call(gateway, self.request(GatewayOperation.VOID, "10.00", parent=sale))
        assert again.status in NOTHING_HAPPENED, "a charge is voided once"

    def test_void_after_settlement_is_declined_already_settled(
        self, gateway: PaymentGateway, settle: Settle
    ) -> None:
        self.require(gateway.capabilities, "voids")
        sale = self.settled_charge(gateway, settle)
        void = self.call(gateway, self.request(GatewayOperation.VOID, "10.00", parent=sale))
        assert (void.status, void.decline_code) == (OutcomeStatus.DECLINED, DECLINE_ALREADY_SETTLED)

    def test_a_voided_sale_cannot_be_refunded(
        self, gateway: PaymentGateway, settle: Settle
    ) -> None:
        self.require(gateway.capabilities, "voids", "refunds")
        sale = self.charge(gateway)
        assert self.call(gateway, self.request(GatewayOperation.VOID, "10.00", parent=sale)).final
        assert self.refund(gateway, sale, "10.00").status in NOTHING_HAPPENED

    # -- refunds -------------------------------------------------------------------------------
    def test_refund_of_a_settled_sale(self, gateway: PaymentGateway, settle: Settle) -> None:
        self.require(gateway.capabilities, "refunds")
        sale = self.settled_charge(gateway, settle)
        refund = self.refund(gateway, sale, "10.00")
        assert refund.status is OK, refund
        assert refund.amount == self.money("10.00"), "a refund outcome carries the amount moved"
        assert refund.reference
        assert refund.reference != sale[1].reference
        assert self.refund(gateway, sale, "0.01").status in NOTHING_HAPPENED

    def test_partial_refunds_up_to_what_is_left(
        self, gateway: PaymentGateway, settle: Settle
    ) -> None:
        self.require(gateway.capabilities, "refunds", "partial_refunds")
        sale = self.settled_charge(gateway, settle)
        first = self.refund(gateway, sale, "3.00")
        assert (first.status, first.amount) == (OK, self.money("3.00")), first
        assert self.refund(gateway, sale, "2.50").status is OK
        above = self.refund(gateway, sale, "4.51")
        assert above.status is OutcomeStatus.DECLINED, "4.50 is left: 4.51 is too much"
        assert self.refund(gateway, sale, "4.50").status is OK
        assert self.refund(gateway, sale, "0.01").status is OutcomeStatus.DECLINED

    def test_refund_above_the_amount_is_declined_and_moves_nothing(
        self, gateway: PaymentGateway, settle: Settle
    ) -> None:
        self.require(gateway.capabilities, "refunds")
        sale = self.settled_charge(gateway, settle)
        assert self.refund(gateway, sale, "10.01").status is OutcomeStatus.DECLINED
        assert self.refund(gateway, sale, "10.00").status is OK

    def test_a_declined_call_is_decided_afresh_when_its_key_is_retried(
        self, gateway: PaymentGateway, settle: Settle
    ) -> None:
        """The refund retry queue tries a declined refund again with the same key: the gateway
        must decide it again, not replay the cached decline. Checked on a refund declined because
        its charge had not settled (skipped for a gateway that refunds unsettled charges)."""
        self.require(gateway.capabilities, "refunds")
        sale = self.charge(gateway)
        request = self.request(GatewayOperation.REFUND, "10.00", parent=sale)
        first = self.call(gateway, request)
        if first.status is OK:
            pytest.skip("the gateway refunds unsettled charges")
        assert first.status in NOTHING_HAPPENED, first
        settle(sale[1])
        again = self.call(gateway, request)
        assert again.status is OK, f"the retry with the same key replayed the decline: {again}"
        assert again.amount == self.money("10.00")

    def test_whole_refunds_only_without_partial_refunds(
        self, gateway: PaymentGateway, settle: Settle
    ) -> None:
        self.require(gateway.capabilities, "refunds")
        if gateway.capabilities.partial_refunds:
            pytest.skip("the gateway declares partial refunds")
        sale = self.settled_charge(gateway, settle)
        assert self.refund(gateway, sale, "4.00").status in NOTHING_HAPPENED
        assert self.refund(gateway, sale, "10.00").status is OK

    # -- authorizations ------------------------------------------------------------------------
    def test_authorize_capture_and_refund_the_capture(
        self, gateway: PaymentGateway, settle: Settle
    ) -> None:
        self.require(gateway.capabilities, "authorizations", "refunds")
        auth_request = self.request(GatewayOperation.AUTHORIZE, "10.00")
        auth = self.call(gateway, auth_request)
        assert auth.status is OK, auth
        capture_request = self.request(
            GatewayOperation.CAPTURE, "10.00", parent=(auth_request, auth)
        )
        capture = self.call(gateway, capture_request)
        assert capture.status is OK, capture
        again = self.call(
            gateway, self.request(GatewayOperation.CAPTURE, "10.00", parent=(auth_request, auth))
        )
        assert again.status in NOTHING_HAPPENED, "an authorization is captured once"
        settle(capture)
        assert self.refund(gateway, (capture_request, capture), "10.00").status is OK

    def test_void_of_an_authorization_releases_it(self, gateway: PaymentGateway) -> None:
        self.require(gateway.capabilities, "authorizations", "voids")
        auth_request = self.request(GatewayOperation.AUTHORIZE, "10.00")
        auth = self.call(gateway, auth_request)
        parent = (auth_request, auth)
        assert self.call(gateway, self.request(GatewayOperation.VOID, "10.00", parent=parent)).final
        capture = self.call(gateway, self.request(GatewayOperation.CAPTURE, "10.00", parent=parent))
        assert capture.status in NOTHING_HAPPENED, "a released authorization cannot be captured"

    # -- idempotency ---------------------------------------------------------------------------
    def test_a_replayed_sale_returns_the_same_outcome(self, gateway: PaymentGateway) -> None:
        request, first = self.charge(gateway)
        replay = self.call(gateway, request)
        assert (replay.status, replay.reference, replay.amount) == (
            first.status,
            first.reference,
            first.amount,
        )

    def test_a_replayed_refund_moves_money_once(
        self, gateway: PaymentGateway, settle: Settle
    ) -> None:
        self.require(gateway.capabilities, "refunds", "partial_refunds")
        sale = self.settled_charge(gateway, settle)
        request = self.request(GatewayOperation.REFUND, "6.00", parent=sale)
        first, replay = self.call(gateway, request), self.call(gateway, request)
        assert (replay.status, replay.reference) == (OK, first.reference)
        assert self.refund(gateway, sale, "4.00").status is OK, "4.00 is left after one refund"
        assert self.refund(gateway, sale, "0.01").status is OutcomeStatus.DECLINED

    def test_one_key_with_another_amount_moves_nothing(
        self, gateway: PaymentGateway, settle: Settle
    ) -> None:
        self.require(gateway.capabilities, "refunds", "partial_refunds")
        sale = self.settled_charge(gateway, settle)
        key = f"key-{uuid.uuid4().hex}"
        request = self.request(GatewayOperation.REFUND, "6.00", parent=sale, key=key)
        assert self.call(gateway, request).status is OK
        other = self.call(
            gateway, self.request(GatewayOperation.REFUND, "5.00", parent=sale, key=key)
        )
        assert other.status in NOTHING_HAPPENED
        assert self.refund(gateway, sale, "4.00").status is OK, "only the first refund moved money"

    # -- capabilities --------------------------------------------------------------------------
    def test_payouts_follow_the_capability(self, gateway: PaymentGateway) -> None:
        outcome = self.call(gateway, self.request(GatewayOperation.PAYOUT, "5.00"))
        if gateway.capabilities.payouts:
            assert outcome.status is OK, outcome
        else:
            assert outcome.status in NOTHING_HAPPENED, "payouts are not declared"

    def test_currencies_follow_the_capability(self, gateway: PaymentGateway) -> None:
        currencies = gateway.capabilities.currencies
        if currencies is None:
            pytest.skip("the gateway takes every currency")
        other = next(c for c in sorted(MINOR_UNITS) if c not in currencies)
        exponent = MINOR_UNITS[other]
        amount = Money(10 ** max(exponent, 0), other)
        outcome = self.call(gateway, self.request(GatewayOperation.SALE, amount))
        assert outcome.status in NOTHING_HAPPENED, f"{other} is not declared"
