"""The sandbox gateway: the gateway contract, settlement timing and the fault matrix."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import InvalidValueError, Money, NotFoundError
from billing_core.plugins.protocols import (
    DECLINE_ALREADY_SETTLED,
    GatewayCapabilities,
    GatewayOperation,
    GatewayOutcome,
    GatewayRequest,
    OutcomeStatus,
    PaymentGateway,
)
from billing_core.plugins.sandbox_gateway import (
    DECLINE_EXCEEDS_REMAINING,
    DECLINE_IDEMPOTENCY_MISMATCH,
    DECLINE_INVALID_AMOUNT,
    DECLINE_NO_SUCH_CHARGE,
    DECLINE_NOT_SETTLED,
    DECLINE_SCRIPTED,
    DECLINE_UNSUPPORTED,
    Decline,
    Fault,
    SandboxGateway,
)
from billing_core.testing.clock import ManualClock
from billing_core.testing.gateway_contract import GatewayContract, Settle

START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
USD = "USD"


# -- the contract, on the default sandbox and on a restricted one --------------------------------
def _settler(gateway: SandboxGateway, clock: ManualClock) -> Settle:
    def settle(charge: GatewayOutcome) -> None:
        assert charge.reference is not None
        settles_at = gateway.charge(charge.reference).settles_at
        assert settles_at is not None
        clock.set(max(clock(), settles_at))

    return settle


class TestSandboxContract(GatewayContract):
    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock(START)

    @pytest.fixture
    def gateway(self, clock: ManualClock) -> PaymentGateway:
        return SandboxGateway(clock=clock)

    @pytest.fixture
    def settle(self, gateway: PaymentGateway, clock: ManualClock) -> Settle:
        assert isinstance(gateway, SandboxGateway)
        return _settler(gateway, clock)


class TestRestrictedSandboxContract(TestSandboxContract):
    """No authorizations, no partial refunds, no payouts, euros only: the refusals are checked."""

    currency = "EUR"

    @pytest.fixture
    def gateway(self, clock: ManualClock) -> PaymentGateway:
        capabilities = GatewayCapabilities(
            authorizations=False,
            partial_refunds=False,
            payouts=False,
            currencies=frozenset({"EUR"}),
        )
        return SandboxGateway(clock=clock, name="restricted", capabilities=capabilities)


# -- helpers ------------------------------------------------------------------------------------
@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def gateway(clock: ManualClock) -> SandboxGateway:
    return SandboxGateway(clock=clock, settle_after=timedelta(days=1))


def usd(amount: str) -> Money:
    return Money(amount, USD)


def request(
    operation: GatewayOperation,
    amount: str,
    *,
    tx: str,
    key: str | None = None,
    parent: GatewayOutcome | None = None,
) -> GatewayRequest:
    return GatewayRequest(
        operation=operation,
        transaction_id=tx,
        idempotency_key=key or f"key-{tx}",
        amount=usd(amount),
        parent_reference=parent.reference if parent else None,
    )


def sale(gateway: SandboxGateway, amount: str = "100.00", tx: str = "sale-1") -> GatewayOutcome:
    outcome = gateway.sale(request(GatewayOperation.SALE, amount, tx=tx))
    assert outcome.status is OutcomeStatus.SUCCEEDED
    return outcome


def refund_request(charge: GatewayOutcome, amount: str, tx: str = "refund-1") -> GatewayRequest:
    return request(GatewayOperation.REFUND, amount, tx=tx, parent=charge)


def settled_sale(gateway: SandboxGateway, clock: ManualClock) -> GatewayOutcome:
    charge = sale(gateway)
    clock.advance(timedelta(days=1))
    return charge


# -- settlement timing --------------------------------------------------------------------------
def test_a_sale_settles_exactly_settle_after_later(
    gateway: SandboxGateway, clock: ManualClock
) -> None:
    charge = sale(gateway)
    assert charge.reference == "ch_000001"
    state = gateway.charge("ch_000001")
    assert state.created_at == datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert state.settles_at == datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    clock.set(datetime(2026, 11, 22, 11, 59, 59, tzinfo=UTC))
    assert gateway.lookup("sale-1", "key-sale-1").settled is False
    early = gateway.refund(refund_request(charge, "10.00"))
    assert (early.status, early.decline_code) == (OutcomeStatus.DECLINED, DECLINE_NOT_SETTLED)
    clock.set(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
    assert gateway.lookup("sale-1", "key-sale-1").settled is True
    void = gateway.void(request(GatewayOperation.VOID, "100.00", tx="void-1", parent=charge))
    assert (void.status, void.decline_code) == (OutcomeStatus.DECLINED, DECLINE_ALREADY_SETTLED)
    assert "2026-11-22 12:00:00+00:00" in void.message
    assert gateway.refund(refund_request(charge, "10.00")).status is OutcomeStatus.SUCCEEDED


def test_a_void_one_second_before_settlement_goes_through(
    gateway: SandboxGateway, clock: ManualClock
) -> None:
    charge = sale(gateway)
    clock.set(datetime(2026, 11, 22, 11, 59, 59, tzinfo=UTC))
    void = gateway.void(request(GatewayOperation.VOID, "100.00", tx="void-1", parent=charge))
    assert void.status is OutcomeStatus.SUCCEEDED
    clock.set(datetime(2026, 11, 23, tzinfo=UTC))
    assert gateway.charge("ch_000001").voided
    assert not gateway.charge("ch_000001").settled, "a voided charge never settles"


def test_without_settle_after_a_charge_settles_only_when_told(clock: ManualClock) -> None:
    gateway = SandboxGateway(clock=clock, settle_after=None)
    charge = sale(gateway)
    clock.advance(timedelta(days=400))
    assert not gateway.charge("ch_000001").settled
    gateway.settle("ch_000001")
    assert gateway.charge("ch_000001").settles_at == START + timedelta(days=400)
    assert gateway.refund(refund_request(charge, "100.00")).status is OutcomeStatus.SUCCEEDED


def test_an_authorization_never_settles(gateway: SandboxGateway, clock: ManualClock) -> None:
    auth = gateway.authorize(request(GatewayOperation.AUTHORIZE, "50.00", tx="auth-1"))
    assert auth.reference == "au_000001"
    clock.advance(timedelta(days=30))
    assert gateway.charge("au_000001").settles_at is None
    with pytest.raises(InvalidValueError, match="never settles"):
        gateway.settle("au_000001")
    capture = gateway.capture(request(GatewayOperation.CAPTURE, "40.00", tx="cap-1", parent=auth))
    assert capture.reference == "ch_000002"
    assert gateway.charge("ch_000002").settles_at == START + timedelta(days=31)
    assert gateway.charge("au_000001").captured_by == "ch_000002"


# -- the ledger rules ---------------------------------------------------------------------------
def test_refunds_never_exceed_what_is_left(gateway: SandboxGateway, clock: ManualClock) -> None:
    charge = settled_sale(gateway, clock)
    assert (
        gateway.refund(refund_request(charge, "60.00", tx="r1")).status is OutcomeStatus.SUCCEEDED
    )
    over = gateway.refund(refund_request(charge, "40.01", tx="r2"))
    assert (over.status, over.decline_code) == (OutcomeStatus.DECLINED, DECLINE_EXCEEDS_REMAINING)
    assert "40.00 USD is left of 100.00 USD" in over.message
    assert gateway.charge("ch_000001").remaining == usd("40.00")
    assert [e.amount for e in gateway.ledger()] == [usd("100.00"), usd("60.00")]


def test_one_key_with_another_amount_is_declined(
    gateway: SandboxGateway, clock: ManualClock
) -> None:
    charge = settled_sale(gateway, clock)
    gateway.refund(request(GatewayOperation.REFUND, "60.00", tx="r1", key="k", parent=charge))
    other = gateway.refund(
        request(GatewayOperation.REFUND, "50.00", tx="r1", key="k", parent=charge)
    )
    assert other.decline_code == DECLINE_IDEMPOTENCY_MISMATCH
    assert gateway.charge("ch_000001").refunded == usd("60.00")


def test_unknown_parents_bad_amounts_and_payouts(gateway: SandboxGateway) -> None:
    ghost = GatewayOutcome(status=OutcomeStatus.SUCCEEDED, reference="ch_999999")
    assert gateway.refund(refund_request(ghost, "1.00")).decline_code == DECLINE_NO_SUCH_CHARGE
    fraction = gateway.sale(request(GatewayOperation.SALE, "1.005", tx="s"))
    assert fraction.decline_code == DECLINE_INVALID_AMOUNT
    payout = gateway.payout(request(GatewayOperation.PAYOUT, "25.00", tx="p"))
    assert (payout.status, payout.reference) == (OutcomeStatus.SUCCEEDED, "po_000001")
    no_payouts = SandboxGateway(capabilities=GatewayCapabilities(payouts=False))
    refused = no_payouts.payout(request(GatewayOperation.PAYOUT, "25.00", tx="p"))
    assert refused.decline_code == DECLINE_UNSUPPORTED


def test_a_parent_may_be_named_by_its_transaction_id(
    gateway: SandboxGateway, clock: ManualClock
) -> None:
    settled_sale(gateway, clock)
    by_id = GatewayRequest(
        operation=GatewayOperation.REFUND,
        transaction_id="r1",
        idempotency_key="k1",
        amount=usd("5.00"),
        parent_transaction_id="sale-1",
    )
    assert gateway.refund(by_id).status is OutcomeStatus.SUCCEEDED


def test_a_request_sent_to_the_wrong_method_raises(gateway: SandboxGateway) -> None:
    with pytest.raises(InvalidValueError, match=r"request\.operation"):
        gateway.refund(request(GatewayOperation.SALE, "1.00", tx="s"))
    with pytest.raises(NotFoundError):
        gateway.charge("ch_404")


# -- the fault matrix ---------------------------------------------------------------------------
def test_decline_moves_nothing_and_the_key_may_be_retried(
    gateway: SandboxGateway, clock: ManualClock
) -> None:
    charge = settled_sale(gateway, clock)
    gateway.script("refund", [Fault.DECLINE, Decline(code="do_not_honor", message="Bank says no")])
    first = gateway.refund(refund_request(charge, "30.00"))
    assert (first.status, first.decline_code) == (OutcomeStatus.DECLINED, DECLINE_SCRIPTED)
    assert gateway.lookup("refund-1", "key-refund-1").decline_code == DECLINE_SCRIPTED
    second = gateway.refund(refund_request(charge, "30.00"))
    assert (second.decline_code, second.message) == ("do_not_honor", "Bank says no")
    third = gateway.refund(refund_request(charge, "30.00"))
    assert third.status is OutcomeStatus.SUCCEEDED
    assert gateway.lookup("refund-1", "key-refund-1").reference == third.reference
    assert gateway.charge("ch_000001").refunded == usd("30.00")
    assert (gateway.calls["refund"], gateway.received["refund"]) == (3, 3)


def test_not_sent_records_nothing(gateway: SandboxGateway, clock: ManualClock) -> None:
    charge = settled_sale(gateway, clock)
    gateway.script("refund", [Fault.NOT_SENT])
    assert gateway.refund(refund_request(charge, "30.00")).status is OutcomeStatus.NOT_SENT
    assert gateway.lookup("refund-1", "key-refund-1").status is OutcomeStatus.NOT_SENT
    assert (gateway.calls["refund"], gateway.received["refund"]) == (1, 0)
    assert gateway.refund(refund_request(charge, "30.00")).status is OutcomeStatus.SUCCEEDED


def test_timeout_before_sending_is_unknown_but_nothing_happened(
    gateway: SandboxGateway, clock: ManualClock
) -> None:
    charge = settled_sale(gateway, clock)
    gateway.script("refund", [Fault.TIMEOUT_BEFORE_SEND])
    assert gateway.refund(refund_request(charge, "30.00")).status is OutcomeStatus.UNKNOWN
    assert gateway.lookup("refund-1", "key-refund-1").status is OutcomeStatus.NOT_SENT
    assert gateway.charge("ch_000001").refunded == usd("0.00")


def test_timeout_after_sending_is_unknown_but_it_happened(
    gateway: SandboxGateway, clock: ManualClock
) -> None:
    charge = settled_sale(gateway, clock)
    gateway.script("refund", [Fault.TIMEOUT_AFTER_SEND])
    assert gateway.refund(refund_request(charge, "30.00")).status is OutcomeStatus.UNKNOWN
    found = gateway.lookup("refund-1", "key-refund-1")
    assert (found.status, found.reference, found.amount) == (
        OutcomeStatus.SUCCEEDED,
        "re_000002",
        usd("30.00"),
    )
    retry = gateway.refund(refund_request(charge, "30.00"))
    assert (retry.status, retry.reference) == (OutcomeStatus.SUCCEEDED, "re_000002")
    assert gateway.charge("ch_000001").refunded == usd("30.00"), "the retry refunded nothing"
    assert len(gateway.ledger()) == 2


def test_duplicate_response_moves_money_once(gateway: SandboxGateway, clock: ManualClock) -> None:
    charge = settled_sale(gateway, clock)
    gateway.script("refund", [Fault.DUPLICATE_RESPONSE])
    outcome = gateway.refund(refund_request(charge, "30.00"))
    assert (outcome.status, outcome.reference) == (OutcomeStatus.SUCCEEDED, "re_000002")
    assert (gateway.calls["refund"], gateway.received["refund"]) == (1, 2)
    assert gateway.charge("ch_000001").refunded == usd("30.00")


def test_slow_advances_a_manual_clock_and_loses_the_race_with_settlement(
    clock: ManualClock,
) -> None:
    gateway = SandboxGateway(clock=clock, settle_after=timedelta(seconds=10))
    charge = sale(gateway)
    gateway.script("void", [Fault.SLOW])
    void = gateway.void(request(GatewayOperation.VOID, "100.00", tx="void-1", parent=charge))
    assert clock() == datetime(2026, 11, 21, 12, 0, 30, tzinfo=UTC)
    assert void.decline_code == DECLINE_ALREADY_SETTLED


def test_slow_sleeps_on_a_clock_that_cannot_be_advanced() -> None:
    naps: list[float] = []
    gateway = SandboxGateway(clock=lambda: START, slow_sleep=0.25, sleep=naps.append)
    gateway.script("sale", [Fault.SLOW])
    assert sale(gateway).status is OutcomeStatus.SUCCEEDED
    assert naps == [0.25]


def test_pending_is_answered_but_lookup_knows_it_succeeded(gateway: SandboxGateway) -> None:
    gateway.script("payout", [Fault.PENDING])
    outcome = gateway.payout(request(GatewayOperation.PAYOUT, "25.00", tx="p1"))
    assert (outcome.status, outcome.reference) == (OutcomeStatus.PENDING, "po_000001")
    assert gateway.lookup("p1", "key-p1").status is OutcomeStatus.SUCCEEDED


def test_lookup_faults_answer_unknown(gateway: SandboxGateway) -> None:
    sale(gateway)
    gateway.script("lookup", [Fault.TIMEOUT_AFTER_SEND, None])
    assert gateway.lookup("sale-1", "key-sale-1").status is OutcomeStatus.UNKNOWN
    assert gateway.lookup("sale-1", "key-sale-1").status is OutcomeStatus.SUCCEEDED
    assert gateway.calls["lookup"] == 2


def test_scripts_run_in_order_and_can_be_cleared(gateway: SandboxGateway) -> None:
    gateway.script("sale", [None, Fault.NOT_SENT])
    gateway.script("sale", ["decline"])  # a Fault's value is accepted too
    assert gateway.scripted("sale") == (None, Fault.NOT_SENT, Fault.DECLINE)
    assert sale(gateway, tx="s1").status is OutcomeStatus.SUCCEEDED
    assert gateway.scripted("sale") == (Fault.NOT_SENT, Fault.DECLINE)
    gateway.clear_faults()
    assert sale(gateway, tx="s2").status is OutcomeStatus.SUCCEEDED
    with pytest.raises(InvalidValueError, match="operation"):
        gateway.script("teleport", [None])
    with pytest.raises(InvalidValueError, match="step"):
        gateway.script("sale", ["explode"])


def test_fault_rates_are_seeded(clock: ManualClock) -> None:
    def statuses(seed: int) -> list[OutcomeStatus]:
        gateway = SandboxGateway(clock=clock, seed=seed)
        gateway.fault_rates("sale", {Fault.NOT_SENT: 0.3, Fault.TIMEOUT_AFTER_SEND: 0.2})
        return [sale_status(gateway, f"s{i}") for i in range(200)]

    first, again = statuses(7), statuses(7)
    assert first == again
    assert 30 < first.count(OutcomeStatus.NOT_SENT) < 90
    assert 15 < first.count(OutcomeStatus.UNKNOWN) < 65
    with pytest.raises(InvalidValueError, match="at most 1"):
        SandboxGateway().fault_rates("sale", {Fault.NOT_SENT: 0.6, Fault.DECLINE: 0.6})
    with pytest.raises(InvalidValueError, match="between 0 and 1"):
        SandboxGateway().fault_rates("sale", {Fault.NOT_SENT: 1.5})


def sale_status(gateway: SandboxGateway, tx: str) -> OutcomeStatus:
    return gateway.sale(request(GatewayOperation.SALE, "1.00", tx=tx)).status


def test_calls_count_what_the_gateway_saw(gateway: SandboxGateway, clock: ManualClock) -> None:
    charge = settled_sale(gateway, clock)
    for i in range(14):
        gateway.refund(refund_request(charge, "1.00", tx=f"r{i}"))
    assert gateway.calls["refund"] == 14
    assert gateway.calls["sale"] == 1
    assert gateway.calls["void"] == 0


# -- threads and a property ---------------------------------------------------------------------
def test_many_threads_never_refund_more_than_the_charge(
    gateway: SandboxGateway, clock: ManualClock
) -> None:
    charge = settled_sale(gateway, clock)
    gateway.fault_rates("refund", {Fault.TIMEOUT_AFTER_SEND: 0.2, Fault.DUPLICATE_RESPONSE: 0.2})

    def worker(n: int) -> None:
        for i in range(60):
            gateway.refund(refund_request(charge, "0.50", tx=f"w{n}-{i % 40}"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refunds = [e for e in gateway.ledger() if e.operation is GatewayOperation.REFUND]
    assert len(refunds) == 200, "100.00 in 0.50 refunds: exactly 200 went through"
    assert gateway.charge("ch_000001").refunded == usd("100.00")
    assert gateway.calls["refund"] == 480


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=4000),
            st.integers(min_value=0, max_value=5),
            st.sampled_from([None, *Fault]),
        ),
        max_size=25,
    )
)
def test_refunds_with_any_faults_and_replays_never_exceed_the_charge(
    calls: list[tuple[int, int, Fault | None]],
) -> None:
    clock = ManualClock(START)
    gateway = SandboxGateway(clock=clock, slow=timedelta(0))
    charge = sale(gateway, "100.00")
    clock.advance(timedelta(days=1))
    for cents, key, fault in calls:
        gateway.script("refund", [fault])
        gateway.refund(
            GatewayRequest(
                operation=GatewayOperation.REFUND,
                transaction_id=f"r{key}-{cents}",
                idempotency_key=f"k{key}-{cents}",
                amount=Money.from_minor_units(cents, USD),
                parent_reference=charge.reference,
            )
        )
    refunds = [e.amount for e in gateway.ledger() if e.operation is GatewayOperation.REFUND]
    total = sum(refunds, usd("0"))
    assert total == gateway.charge("ch_000001").refunded
    assert total <= usd("100.00")
    assert len({e.idempotency_key for e in gateway.ledger()}) == len(gateway.ledger())


def test_zero_settlement_delay_settles_at_once() -> None:
    from datetime import UTC, datetime, timedelta

    from billing_core import Money
    from billing_core.plugins.protocols import GatewayOperation, GatewayRequest
    from billing_core.plugins.sandbox_gateway import SandboxGateway
    from billing_core.testing.clock import ManualClock

    clock = ManualClock(datetime(2026, 11, 21, tzinfo=UTC))
    gateway = SandboxGateway(clock=clock, settle_after=timedelta(0))
    outcome = gateway.sale(
        GatewayRequest(
            operation=GatewayOperation.SALE,
            transaction_id="t",
            idempotency_key="k",
            amount=Money("1.00", "USD"),
        )
    )
    assert gateway.lookup("t", "k").settled
    assert outcome.reference is not None
