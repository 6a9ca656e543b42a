"""Payment instruments in the engine (issue 14): wallets, charging with fallback in payment order,
the gateway request carrying the instrument, ``billing_core_choose_gateway`` consulted, and a
declined renewal going past due. On memory, SQLite and PostgreSQL (``store_url``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_core import (
    BillingEngine,
    Customer,
    InstrumentKind,
    InvalidValueError,
    Money,
    PaymentInstrument,
    Period,
    SubscriptionState,
    TransactionKind,
    TransactionStatus,
)
from billing_core.engine.collection_results import InstrumentOutcome
from billing_core.engine.results import ChargeOutcome, RenewalOutcome
from billing_core.errors import NotFoundError, PluginError
from billing_core.plugins import events
from billing_core.plugins.hookspecs import hookimpl
from billing_core.plugins.manager import Plugins
from billing_core.plugins.memory_store import MemoryStore
from billing_core.plugins.protocols import GatewayRequest, PaymentGateway
from billing_core.plugins.sandbox_gateway import Decline, Fault, SandboxGateway
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock
from billing_core.testing.hooked_gateway import Crash, HookedGateway
from test_engine import ADMIN, AGENT, START

USD = "USD"
TEN = Money("10.00", USD)
VISA = PaymentInstrument(
    id="pi-visa",
    kind=InstrumentKind.PAYMENT_CARD,
    fingerprint="fp-visa",
    expires_on=date(2027, 12, 31),
)
AMEX = PaymentInstrument(id="pi-amex", kind="payment_card", fingerprint="fp-amex")
BANK = PaymentInstrument(id="pi-bank", kind="bank_account")


def make_engine(url: str, *, plugins: Iterable[object] = ()) -> BillingEngine:
    clock = ManualClock(START)
    gateway = SandboxGateway(clock=clock, settle_after=timedelta(days=1))
    eng = BillingEngine(
        store=url,
        clock=clock,
        gateway=gateway,
        plugins=Plugins(clock=clock, entry_points=False, plugins=list(plugins)),
    )
    eng.add_customer(
        Customer(id="c1", company="Acme", email="ap@acme.example", country="US"), actor=ADMIN
    )
    return eng


@pytest.fixture
def engine(store_url: str) -> Iterator[BillingEngine]:
    eng = make_engine(store_url)
    yield eng
    eng.store.close()


def sandbox(engine: BillingEngine) -> SandboxGateway:
    gateway = engine.gateway
    assert isinstance(gateway, SandboxGateway)
    return gateway


def wallet_of_three(engine: BillingEngine) -> None:
    assert engine.add_instrument("c1", VISA, primary=True, actor=AGENT).outcome is (
        InstrumentOutcome.ADDED
    )
    engine.add_instrument("c1", AMEX, backup=True, actor=AGENT)
    engine.add_instrument("c1", BANK, backup=True, actor=AGENT)


def sales(engine: BillingEngine) -> list[tuple[str, str | None]]:
    """(instrument id, gateway key) of every movement the sandbox made."""
    return [(e.instrument_id or "-", e.idempotency_key) for e in sandbox(engine).ledger()]


# -- the wallet ---------------------------------------------------------------------------------
class TestWallet:
    def test_instruments_are_stored_with_their_order(self, engine: BillingEngine) -> None:
        wallet_of_three(engine)
        wallet = engine.wallet("c1")
        assert wallet.instruments == (VISA, AMEX, BANK)
        assert wallet.primary == VISA
        assert wallet.backups == (AMEX, BANK)
        assert wallet.fingerprints() == ("fp-visa", "fp-amex")

    def test_update_deactivate_and_reorder(self, engine: BillingEngine) -> None:
        wallet_of_three(engine)
        renewed = PaymentInstrument(
            id="pi-visa", kind="payment_card", fingerprint="fp-visa", expires_on=date(2030, 1, 31)
        )
        assert engine.update_instrument("c1", renewed, actor=AGENT).outcome is (
            InstrumentOutcome.UPDATED
        )
        assert engine.wallet("c1").primary == renewed
        result = engine.deactivate_instrument("c1", "pi-visa", actor=AGENT)
        assert result.outcome is InstrumentOutcome.DEACTIVATED
        wallet = engine.wallet("c1")
        assert wallet.primary is not None and wallet.primary.active is False
        engine.set_payment_order("c1", primary_id="pi-bank", backup_ids=["pi-amex"], actor=AGENT)
        assert engine.wallet("c1").backup_ids == ("pi-amex",)
        assert [e.action for e in engine.audit_log(subject_id="pi-visa")] == [
            "instrument.added",
            "instrument.updated",
            "instrument.deactivated",
        ]

    def test_a_backup_naming_the_primary_is_bad_input_and_changes_nothing(
        self, engine: BillingEngine
    ) -> None:
        wallet_of_three(engine)
        before = engine.wallet("c1")
        with pytest.raises(
            InvalidValueError, match=r"primary instrument pi-visa.*\$\.backups\[1\]"
        ):
            engine.set_payment_order(
                "c1", primary_id="pi-visa", backup_ids=["pi-amex", "pi-visa"], actor=AGENT
            )
        assert engine.wallet("c1") == before

    def test_an_expired_or_inactive_default_is_bad_input_and_nothing_is_charged(
        self, engine: BillingEngine
    ) -> None:
        sub = _subscription(engine)
        expired = PaymentInstrument(id="pi-old", expires_on=date(2026, 10, 31))
        engine.add_instrument("c1", expired, actor=AGENT)
        engine.add_instrument("c1", PaymentInstrument(id="pi-off", active=False), actor=AGENT)
        for bad in ("pi-old", "pi-off"):
            with pytest.raises(InvalidValueError, match=r"\$\.order_default"):
                engine.set_default_instrument(sub, bad, actor=AGENT)
            with pytest.raises(InvalidValueError, match=r"\$\.order_default"):
                engine.charge("c1", TEN, instrument_id=bad, idempotency_key=f"k-{bad}", actor=AGENT)
        with pytest.raises(InvalidValueError, match=r"expired on 2026-10-31.*\$\.primary_id"):
            engine.set_payment_order("c1", primary_id="pi-old", actor=AGENT)
        assert engine.wallet("c1").order_defaults == {}
        assert sandbox(engine).calls["sale"] == 1  # the subscription's own charge only

    def test_an_unknown_instrument_is_not_found(self, engine: BillingEngine) -> None:
        with pytest.raises(NotFoundError, match=r"\$\.instrument_id"):
            engine.charge("c1", TEN, instrument_id="pi-x", idempotency_key="k", actor=AGENT)
        assert sandbox(engine).calls["sale"] == 0

    def test_only_staff_manage_instruments(self, engine: BillingEngine) -> None:
        intern = Actor(id="ivy", role="intern")
        result = engine.add_instrument("c1", VISA, actor=intern)
        assert result.outcome is InstrumentOutcome.DENIED
        assert engine.wallet("c1").instruments == ()


def _subscription(engine: BillingEngine, *, term: Period | None = None) -> str:
    result = engine.add_subscription(
        "c1",
        term=term or Period.months(1),
        inventory={"dv": 1},
        unit_prices={"dv": TEN},
        idempotency_key=f"sub-{len(engine.transactions())}",
        actor=AGENT,
    )
    assert result.outcome is ChargeOutcome.CHARGED, result.explanation
    assert result.subscription_id is not None
    return result.subscription_id


# -- charging with fallback -------------------------------------------------------------------------
class TestFallback:
    def test_a_declined_primary_falls_back_to_the_first_backup(self, engine: BillingEngine) -> None:
        wallet_of_three(engine)
        sandbox(engine).script(
            "sale", [Decline(code="card_declined", message="insufficient funds")]
        )
        result = engine.charge("c1", TEN, idempotency_key="order-1", actor=AGENT)
        assert result.outcome is ChargeOutcome.CHARGED
        assert (result.instrument_id, result.attempts) == ("pi-amex", 2)
        assert result.explanation == (
            "Instrument pi-visa was declined. Charged 10.00 USD on instrument pi-amex."
        )
        assert sales(engine) == [("pi-amex", "order-1:sale:2")]
        stored = sorted(
            (t.idempotency_key, t.status)
            for t in engine.transactions(customer_id="c1")
            if t.kind is TransactionKind.SALE
        )
        assert stored == [
            ("order-1:sale", TransactionStatus.FAILED),
            ("order-1:sale:2", TransactionStatus.COMPLETED),
        ]
        kinds = [type(e).__name__ for e in engine.events if type(e).__name__.startswith("Coll")]
        assert kinds == [
            "CollectionAttempted",
            "CollectionDeclined",
            "CollectionAttempted",
            "CollectionSucceeded",
        ]
        declined = next(e for e in engine.events if isinstance(e, events.CollectionDeclined))
        assert (declined.decline_code, declined.next_instrument_id) == ("card_declined", "pi-amex")

    def test_every_instrument_declined_is_a_decline_after_trying_all(
        self, engine: BillingEngine
    ) -> None:
        wallet_of_three(engine)
        sandbox(engine).script("sale", [Fault.DECLINE, Fault.DECLINE, Fault.DECLINE])
        result = engine.charge("c1", TEN, idempotency_key="order-2", actor=AGENT)
        assert result.outcome is ChargeOutcome.DECLINED
        assert (result.instrument_id, result.attempts) == ("pi-bank", 3)
        assert sales(engine) == []
        assert sandbox(engine).calls["sale"] == 3

    @pytest.mark.parametrize(
        "fault", [Fault.TIMEOUT_AFTER_SEND, Fault.TIMEOUT_BEFORE_SEND, Fault.PENDING]
    )
    def test_an_unknown_answer_is_never_retried_on_another_card(
        self, engine: BillingEngine, fault: Fault
    ) -> None:
        """The first card may have been charged: trying the backup could charge twice."""
        wallet_of_three(engine)
        sandbox(engine).script("sale", [fault])
        result = engine.charge("c1", TEN, idempotency_key="order-3", actor=AGENT)
        assert result.outcome is ChargeOutcome.UNKNOWN
        assert (result.instrument_id, result.attempts) == ("pi-visa", 1)
        assert sandbox(engine).calls["sale"] == 1
        engine.reconcile()
        charged = [i for i, _ in sales(engine)]
        assert charged == ([] if fault is Fault.TIMEOUT_BEFORE_SEND else ["pi-visa"])

    def test_not_sent_stops_too(self, engine: BillingEngine) -> None:
        wallet_of_three(engine)
        sandbox(engine).script("sale", [Fault.NOT_SENT])
        result = engine.charge("c1", TEN, idempotency_key="order-4", actor=AGENT)
        assert (result.outcome, result.attempts) == (ChargeOutcome.FAILED, 1)

    def test_a_replay_answers_the_stored_result_and_calls_nothing(
        self, engine: BillingEngine
    ) -> None:
        wallet_of_three(engine)
        sandbox(engine).script("sale", [Fault.DECLINE])
        first = engine.charge("c1", TEN, idempotency_key="order-5", actor=AGENT)
        again = engine.charge("c1", TEN, idempotency_key="order-5", actor=AGENT)
        assert again == first
        assert sandbox(engine).calls["sale"] == 2

    def test_an_expired_primary_is_left_out_and_the_order_default_comes_first(
        self, engine: BillingEngine
    ) -> None:
        wallet_of_three(engine)
        engine.clock.advance(timedelta(days=800))  # type: ignore[attr-defined]  # VISA expired
        result = engine.charge("c1", TEN, idempotency_key="order-6", actor=AGENT)
        assert result.instrument_id == "pi-amex"
        result = engine.charge(
            "c1", TEN, instrument_id="pi-bank", idempotency_key="order-7", actor=AGENT
        )
        assert result.instrument_id == "pi-bank"
        assert [i for i, _ in sales(engine)] == ["pi-amex", "pi-bank"]

    def test_no_usable_instrument_fails_before_the_gateway(self, engine: BillingEngine) -> None:
        engine.add_instrument("c1", VISA, primary=True, actor=AGENT)
        engine.deactivate_instrument("c1", "pi-visa", actor=AGENT)
        result = engine.charge("c1", TEN, idempotency_key="order-8", actor=AGENT)
        assert (result.outcome, result.reason) == (ChargeOutcome.FAILED, "no_usable_instrument")
        assert result.explanation == (
            "No usable payment instrument, so nothing was charged: No usable instrument to "
            "try. Left out: primary pi-visa is inactive."
        )
        assert sandbox(engine).calls["sale"] == 0

    def test_without_a_wallet_one_attempt_on_the_gateway_default(
        self, engine: BillingEngine
    ) -> None:
        result = engine.charge("c1", TEN, idempotency_key="order-9", actor=AGENT)
        assert (result.outcome, result.instrument_id, result.attempts) == (
            ChargeOutcome.CHARGED,
            None,
            1,
        )
        assert sales(engine) == [("-", "order-9:sale")]


# -- choosing the gateway ----------------------------------------------------------------------------
class Router:
    """Sends every euro payment, and every payment of customer c1, to the gateway "second"."""

    def __init__(self, second: SandboxGateway) -> None:
        self.second = second
        self.asked: list[tuple[str | None, str | None]] = []

    @hookimpl
    def billing_core_payment_gateways(self) -> Iterable[PaymentGateway]:
        return [self.second]

    @hookimpl
    def billing_core_choose_gateway(
        self,
        request: GatewayRequest,
        customer: Customer | None,
        gateways: Mapping[str, PaymentGateway],
    ) -> str | None:
        assert {"sandbox", "second"} <= set(gateways)
        instrument = request.instrument.id if request.instrument else None
        self.asked.append((customer.id if customer else None, instrument))
        return "second" if customer is not None and customer.id == "c1" else None


def test_choose_gateway_is_consulted_when_charging(store_url: str) -> None:
    router = Router(SandboxGateway(name="second", settle_after=None))
    engine = make_engine(store_url, plugins=[router])
    try:
        engine.add_instrument("c1", VISA, primary=True, actor=AGENT)
        result = engine.charge("c1", TEN, idempotency_key="routed", actor=AGENT)
        assert result.outcome is ChargeOutcome.CHARGED
        assert router.asked == [("c1", "pi-visa")]
        assert engine.transaction(result.transaction_id or "").gateway == "second"
        assert [e.instrument_id for e in router.second.ledger()] == ["pi-visa"]
        assert sandbox(engine).ledger() == []
        # a sticky gateway wins over the hook: the card's token lives there
        sticky = PaymentInstrument(id="pi-sticky", gateway="sandbox")
        engine.add_instrument("c1", sticky, actor=AGENT)
        result = engine.charge(
            "c1", TEN, instrument_id="pi-sticky", idempotency_key="sticky", actor=AGENT
        )
        assert engine.transaction(result.transaction_id or "").gateway == "sandbox"
        assert len(router.asked) == 1
    finally:
        engine.store.close()


def test_a_chosen_gateway_that_is_not_installed_writes_nothing() -> None:
    class Lost:
        @hookimpl
        def billing_core_choose_gateway(self) -> str | None:
            return "nowhere"

    engine = make_engine("memory://", plugins=[Lost()])
    with pytest.raises(PluginError, match="'nowhere', which is not installed"):
        engine.charge("c1", TEN, idempotency_key="lost", actor=AGENT)
    assert engine.transactions() == []


# -- renewals ----------------------------------------------------------------------------------------
def test_a_declined_renewal_goes_past_due_and_never_renews_for_free(
    engine: BillingEngine,
) -> None:
    wallet_of_three(engine)
    sub_id = _subscription(engine)
    before = engine.subscription(sub_id)
    engine.clock.advance(timedelta(days=31))  # type: ignore[attr-defined]
    sandbox(engine).script("sale", [Fault.DECLINE, Fault.DECLINE, Fault.DECLINE])
    run = engine.renew_due(actor=ADMIN)
    (renewal,) = run.renewals
    assert renewal.outcome is RenewalOutcome.PAST_DUE
    assert not renewal.renewed
    after = engine.subscription(sub_id)
    assert after.state is SubscriptionState.PAST_DUE
    assert (after.start, after.term_end) == (before.start, before.term_end)
    assert renewal.explanation.startswith(
        f"Subscription {sub_id} was not renewed and is past due on its term ending "
        f"{before.term_end.isoformat()}:"
    )
    assert renewal.charge is not None and renewal.charge.attempts == 3
    assert any(isinstance(e, events.SubscriptionPastDue) for e in engine.events)
    assert not any(
        isinstance(e, events.SubscriptionRenewed) and e.subscription.id == sub_id
        for e in engine.events
    )
    assert engine.renew_due(actor=ADMIN).renewals == ()  # past due is not renewed again
    assert len(sales(engine)) == 1  # only the first term was ever charged


def test_a_renewal_falls_back_to_the_backup(engine: BillingEngine) -> None:
    wallet_of_three(engine)
    sub_id = _subscription(engine)
    engine.clock.advance(timedelta(days=31))  # type: ignore[attr-defined]
    sandbox(engine).script("sale", [Fault.DECLINE])
    (renewal,) = engine.renew_due(actor=ADMIN).renewals
    assert renewal.renewed and renewal.charge is not None
    assert renewal.charge.instrument_id == "pi-amex"
    assert engine.subscription(sub_id).state is SubscriptionState.ACTIVE


# -- properties --------------------------------------------------------------------------------------
STEPS = st.sampled_from(
    [None, Fault.DECLINE, Fault.TIMEOUT_AFTER_SEND, Fault.TIMEOUT_BEFORE_SEND, Fault.NOT_SENT]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(STEPS, min_size=1, max_size=4),
    backups=st.integers(min_value=0, max_value=3),
)
def test_fallback_charges_at_most_one_instrument_and_stops_at_the_first_non_decline(
    steps: list[Fault | None], backups: int
) -> None:
    """Property: whatever the gateway answers, one charge moves money on at most one
    instrument, never more than once (even after reconciliation and a replay), tries the
    instruments in payment order, and moves on only after a decline."""
    engine = make_engine("memory://")
    cards = [PaymentInstrument(id=f"pi-{n}", fingerprint=f"fp-{n}") for n in range(backups + 1)]
    engine.add_instrument("c1", cards[0], primary=True, actor=AGENT)
    for card in cards[1:]:
        engine.add_instrument("c1", card, backup=True, actor=AGENT)
    sandbox(engine).script("sale", steps)
    result = engine.charge("c1", TEN, idempotency_key="p", actor=AGENT)
    declines = 0
    for step in steps[: len(cards)]:
        if step is not Fault.DECLINE:
            break
        declines += 1
    expected_attempts = min(declines + 1, len(cards))
    assert result.attempts == expected_attempts
    assert result.instrument_id == cards[expected_attempts - 1].id
    engine.reconcile()
    assert engine.charge("c1", TEN, idempotency_key="p", actor=AGENT) == result
    charged = sandbox(engine).ledger()
    assert len(charged) <= 1
    assert {e.instrument_id for e in charged} <= {result.instrument_id}


def test_the_store_keeps_wallets_whole(store_url: str) -> None:
    """The SQL stores round-trip a wallet exactly (a new table, migration 0004)."""
    engine = make_engine(store_url)
    try:
        wallet_of_three(engine)
        sub = _subscription(engine)
        engine.set_default_instrument(sub, "pi-bank", actor=AGENT)
        wallet = engine.wallet("c1")
        assert wallet.order_defaults == {sub: "pi-bank"}
        assert wallet.order_default(sub) == BANK
        with engine.store.session() as s:
            assert s.get_wallet("c1") == wallet
            assert s.get_wallet("c2") is None
    finally:
        engine.store.close()


def test_memory_store_wallets_roll_back_with_the_session() -> None:
    from billing_core import Wallet

    store = MemoryStore()

    def fail() -> None:
        with store.session() as s:
            s.put_wallet(Wallet(customer_id="c1", instruments=(VISA,)))
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail()
    with store.session() as s:
        assert s.get_wallet("c1") is None


def test_a_renewal_that_died_after_its_fallback_charge_is_finished_on_the_paying_card() -> None:
    """The renewal fell back from a declined card to the backup, which was charged, and the
    worker died before writing the new term: the next run renews on the backup's sale (never
    past due, never charged again), whatever the declined first sale says."""
    clock = ManualClock(START)
    inner = SandboxGateway(clock=clock, settle_after=timedelta(days=1))
    hooked = HookedGateway(inner)
    engine = BillingEngine(
        store="memory://",
        clock=clock,
        gateway=hooked,
        plugins=Plugins(clock=clock, entry_points=False),
    )
    engine.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
    sub_id = _subscription(engine)
    wallet_of_three(engine)
    clock.advance(timedelta(days=31))
    inner.script("sale", [Fault.DECLINE])

    def die(_: object) -> None:
        raise Crash

    def arm(_: object) -> None:  # the first (declined) answer goes through; the second dies
        hooked.after["sale"] = die

    hooked.after["sale"] = arm
    with pytest.raises(Crash):
        engine.renew_due(actor=ADMIN)
    clock.advance(timedelta(seconds=engine.ctx.lease_seconds))
    (finished,) = engine.renew_due(actor=ADMIN).renewals
    assert finished.renewed, finished.explanation
    assert engine.subscription(sub_id).state is SubscriptionState.ACTIVE
    assert engine.reconcile().resolved == 1  # the backup's sale: charged at the gateway
    assert [e.instrument_id for e in inner.ledger()] == [None, "pi-amex"]
    assert inner.calls["sale"] == 3  # the first term, the declined visa, the amex
