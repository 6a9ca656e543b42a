"""apply/reserve/complete/release, the void-first plan (and every decline that means "can no
longer be voided" falling back to a refund, through the engine on every store), and Hypothesis
properties of the totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import test_engine as base
from billing_core import (
    BillingEngine,
    CertificateLine,
    InvalidTypeError,
    InvalidValueError,
    Money,
    NaiveDatetimeError,
    Transaction,
    TransactionStatus,
)
from billing_core.engine import RefundOutcome
from billing_core.plugins.sandbox_gateway import Decline, Fault
from billing_core.rules.refund_effects import (
    ALREADY_SETTLED,
    CANNOT_VOID_CODES,
    ExceedsRefundableError,
    NextAction,
    VoidResult,
    after_void,
    apply_refund,
    complete_refund,
    plan_order_refund,
    release_refund,
    reserve_refund,
    void_result,
)
from billing_core.rules.refunds import RefundAction, RefundReason, RefundStep, assess_refund

store_url, clock, engine = base.store_url, base.clock, base.engine  # the engine tests' fixtures
PAID = datetime(2026, 10, 1, 12, tzinfo=UTC)
AT = datetime(2026, 10, 3, 9, tzinfo=UTC)


def usd(x: str | int) -> Money:
    return Money(x, "USD")


def tx(**kw: Any) -> Transaction:
    base: dict[str, Any] = {"id": "t-1", "amount": usd("49.00"), "created_at": PAID,
                            "settled": True, "customer_id": "c-1"}  # fmt: skip
    base.update(kw)
    return Transaction(**base)


def test_partial_then_rest() -> None:
    t = tx()
    o1, r1 = apply_refund(t, usd("10.00"), refund_id="r-1", at=AT, idempotency_key="k-1")
    assert (o1.status, o1.refunded, o1.reserved) == (
        TransactionStatus.PARTIALLY_REFUNDED, usd("10.00"), usd("0.00"),
    )  # fmt: skip
    assert (r1.kind, r1.status, r1.amount, r1.parent_id, r1.created_at) == (
        "refund", "completed", usd("10.00"), "t-1", AT,
    )  # fmt: skip
    assert (r1.customer_id, r1.idempotency_key) == ("c-1", "k-1")
    o2, r2 = apply_refund(o1, assess_refund(o1, now=AT), refund_id="r-2", at=AT)
    assert (o2.status, o2.refunded, r2.amount) == (
        TransactionStatus.REFUNDED, usd("49.00"), usd("39.00"),
    )  # fmt: skip
    with pytest.raises(ExceedsRefundableError) as info:
        apply_refund(o2, usd("0.01"), refund_id="r-3", at=AT)
    assert info.value.field == "$.amount"


def test_void_of_unsettled_charge() -> None:
    t = tx(settled=False)
    o, r = apply_refund(t, assess_refund(t, now=AT), refund_id="v-1", at=AT)
    assert (o.status, o.refunded, r.kind, r.amount) == (
        TransactionStatus.VOIDED, usd("49.00"), "void", usd("49.00"),
    )  # fmt: skip


def test_refuses_what_the_table_forbids() -> None:
    with pytest.raises(InvalidValueError) as info:
        apply_refund(tx(settled=False), usd("10.00"), refund_id="r", at=AT)
    assert info.value.field == "$.action"
    assert "partial_void_not_allowed" in str(info.value)
    with pytest.raises(InvalidValueError):  # a refund of an unsettled charge: void it
        apply_refund(tx(settled=False), usd("49.00"), refund_id="r", at=AT)
    with pytest.raises(InvalidValueError):  # a void of a settled charge
        apply_refund(
            tx(), RefundStep(action=RefundAction.VOID, amount=usd("49.00")), refund_id="r", at=AT
        )
    with pytest.raises(InvalidValueError):
        apply_refund(tx(kind="refund"), usd("1.00"), refund_id="r", at=AT)


def test_refuses_denials_and_foreign_decisions() -> None:
    denied = assess_refund(tx(), now=AT, certificate="issued")
    with pytest.raises(InvalidValueError, match="certificate_issued") as info:
        apply_refund(tx(), denied, refund_id="r", at=AT)
    assert info.value.field == "$.decision"
    other = assess_refund(tx(id="t-2"), now=AT)
    with pytest.raises(InvalidValueError, match="t-2"):
        apply_refund(tx(), other, refund_id="r", at=AT)


def test_stale_decision_cannot_exceed() -> None:
    t = tx()
    d = assess_refund(t, now=AT, amount="30.00")
    once, _ = apply_refund(t, d, refund_id="r-1", at=AT)
    with pytest.raises(ExceedsRefundableError):
        apply_refund(once, d, refund_id="r-2", at=AT)


@pytest.mark.parametrize(
    ("step", "kwargs", "error", "field"),
    [
        (usd("1.00"), {"at": datetime(2026, 10, 3)}, NaiveDatetimeError, "$.at"),  # noqa: DTZ001
        (usd("1.00"), {"at": PAID - timedelta(days=1)}, InvalidValueError, "$.at"),
        (Money("1.00", "EUR"), {}, InvalidValueError, "$.amount"),
        (usd("0.00"), {}, InvalidValueError, "$.amount"),
        (usd("0.001"), {}, InvalidValueError, "$.amount"),
        ("1.00", {}, InvalidTypeError, "$.step"),
    ],
)
def test_bad_input(step: Any, kwargs: dict[str, Any], error: type[Exception], field: str) -> None:
    args: dict[str, Any] = {"refund_id": "r", "at": AT, **kwargs}
    with pytest.raises(error) as info:
        apply_refund(tx(), step, **args)
    assert getattr(info.value, "field", None) == field


def test_certificate_lines() -> None:
    t = tx(lines=(
        CertificateLine(certificate_type="dv", quantity=3, unit_price=usd("10.00"), domain="a.com"),
        CertificateLine(certificate_type="ev", quantity=1, unit_price=usd("19.00")),
    ))  # fmt: skip
    d = assess_refund(t, now=AT, certificates={0: 2})
    o, r = apply_refund(t, d, refund_id="r-1", at=AT)
    assert [line.refunded_quantity for line in o.lines] == [2, 0]
    assert o.refunded == usd("20.00")
    assert [(line.certificate_type, line.quantity, line.domain) for line in r.lines] == [
        ("dv", 2, "a.com")
    ]
    again = assess_refund(o, now=AT, certificates={0: 2})
    assert again.reason == RefundReason.EXCEEDS_REFUNDABLE
    o2, _ = apply_refund(o, assess_refund(o, now=AT), refund_id="r-2", at=AT)
    assert [line.refunded_quantity for line in o2.lines] == [3, 1]
    assert o2.status == TransactionStatus.REFUNDED


def test_write_ahead_cycle() -> None:
    t = tx()
    held, pending = reserve_refund(t, usd("20.00"), refund_id="r-1", at=AT, idempotency_key="k")
    assert (held.reserved, held.refundable, held.status, pending.status) == (
        usd("20.00"), usd("29.00"), TransactionStatus.COMPLETED, TransactionStatus.PENDING,
    )  # fmt: skip
    assert assess_refund(held, now=AT, amount="29.01").reason == RefundReason.EXCEEDS_REFUNDABLE
    done, record = complete_refund(held, pending, gateway_reference="gw-9")
    assert (done.refunded, done.reserved, done.status) == (
        usd("20.00"), usd("0.00"), TransactionStatus.PARTIALLY_REFUNDED,
    )  # fmt: skip
    assert (record.status, record.gateway_reference) == (TransactionStatus.COMPLETED, "gw-9")
    with pytest.raises(InvalidValueError):  # completing twice
        complete_refund(done, record)
    back, failed = release_refund(held, pending)
    assert (back.reserved, back.refunded, failed.status) == (
        usd("0.00"), usd("0.00"), TransactionStatus.FAILED,
    )  # fmt: skip
    with pytest.raises(ExceedsRefundableError):  # released: nothing reserved any more
        complete_refund(back, pending)
    with pytest.raises(InvalidValueError):
        complete_refund(tx(id="t-2", reserved=usd("20.00")), pending)


# -- the void-first plan -------------------------------------------------------------------------
def test_plan_for_unsettled_charge() -> None:
    plan = plan_order_refund(tx(settled=False), now=AT)
    assert [(s.action, s.amount) for s in plan.steps] == [
        (RefundAction.VOID, usd("49.00")), (RefundAction.REFUND, usd("49.00")),
    ]  # fmt: skip
    assert "Void 49.00 USD first" in plan.explanation
    assert after_void(plan, VoidResult.VOIDED).action is NextAction.DONE
    nxt = after_void(plan, "settled_meanwhile")
    assert (nxt.action, nxt.mark_settled, nxt.step) == (NextAction.REFUND, True, plan.steps[1])
    assert nxt.step is not None
    settled = attrs.evolve(tx(settled=False), settled=True)
    o, r = apply_refund(settled, nxt.step, refund_id="r-1", at=AT)
    assert (o.status, r.kind) == (TransactionStatus.REFUNDED, "refund")
    assert after_void(plan, VoidResult.NOT_SENT).action is NextAction.RETRY_VOID
    assert after_void(plan, VoidResult.UNKNOWN).action is NextAction.RECONCILE
    assert after_void(plan, VoidResult.DECLINED).action is NextAction.STOP


def test_plan_for_settled_authorization_and_denial() -> None:
    assert [s.action for s in plan_order_refund(tx(), now=AT).steps] == [RefundAction.REFUND]
    auth = plan_order_refund(tx(kind="authorization"), now=AT)
    assert [s.action for s in auth.steps] == [RefundAction.VOID]
    assert after_void(auth, VoidResult.SETTLED_MEANWHILE).action is NextAction.STOP
    denied = plan_order_refund(tx(), now=AT + timedelta(days=60))
    assert (denied.allowed, denied.steps) == (False, ())
    assert denied.decision.reason == RefundReason.WINDOW_EXPIRED
    with pytest.raises(InvalidValueError):
        after_void(denied, VoidResult.VOIDED)
    with pytest.raises(InvalidValueError):
        after_void(plan_order_refund(tx(), now=AT), VoidResult.VOIDED)
    with pytest.raises(InvalidValueError) as info:
        after_void(auth, "exploded")
    assert info.value.field == "$.result"


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("succeeded", None, VoidResult.VOIDED),
        ("declined", ALREADY_SETTLED, VoidResult.SETTLED_MEANWHILE),
        ("declined", "do_not_honor", VoidResult.DECLINED),
        ("not_sent", None, VoidResult.NOT_SENT),
        ("pending", None, VoidResult.UNKNOWN),
        ("unknown", None, VoidResult.UNKNOWN),
    ],
)
def test_void_result(status: str, code: str | None, expected: VoidResult) -> None:
    assert void_result(status, code) is expected


def test_already_settled_matches_the_gateway_contract() -> None:
    from billing_core.plugins.protocols import DECLINE_ALREADY_SETTLED, OutcomeStatus

    assert ALREADY_SETTLED == DECLINE_ALREADY_SETTLED
    for status in OutcomeStatus:
        void_result(status.value)  # every gateway status maps


# -- every "cannot void any more" decline falls back to a refund (issue 10, observation 8) --------
CANNOT_VOID = sorted(CANNOT_VOID_CODES)
STILL_FAILS = ["already_voided", "void_amount_mismatch", "do_not_honor", "sandbox_declined"]


def test_cannot_void_codes_are_data() -> None:
    assert isinstance(CANNOT_VOID_CODES, frozenset)
    assert CANNOT_VOID == [
        "already_captured",
        "already_settled",
        "batch_closed",
        "settled",
        "settlement_in_progress",
        "void_window_closed",
        "void_window_expired",
    ]
    assert ALREADY_SETTLED in CANNOT_VOID_CODES


@pytest.mark.parametrize("code", CANNOT_VOID)
def test_each_cannot_void_code_falls_back_to_the_refund(code: str) -> None:
    plan = plan_order_refund(tx(settled=False), now=AT)
    for spelled in (code, code.upper(), f" {code} "):
        result = void_result("declined", spelled)
        assert result is VoidResult.SETTLED_MEANWHILE
        nxt = after_void(plan, result)
        assert (nxt.action, nxt.step, nxt.mark_settled) == (NextAction.REFUND, plan.steps[1], True)
    assert nxt.explanation == (
        "The charge can no longer be voided (it settled or its void window closed); refund "
        "49.00 USD instead (record the charge as settled first)."
    )


@pytest.mark.parametrize("code", [*STILL_FAILS, None, ""])
def test_other_declines_still_stop(code: str | None) -> None:
    plan = plan_order_refund(tx(settled=False), now=AT)
    assert void_result("declined", code) is VoidResult.DECLINED
    assert after_void(plan, void_result("declined", code)).action is NextAction.STOP


@given(st.text(max_size=30))
def test_a_decline_falls_back_exactly_when_its_code_means_cannot_void(code: str) -> None:
    falls_back = void_result("declined", code) is VoidResult.SETTLED_MEANWHILE
    assert falls_back is (code.strip().lower() in CANNOT_VOID_CODES)


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(c, RefundOutcome.REFUNDED) for c in CANNOT_VOID] + [("already_voided", RefundOutcome.FAILED)],
)
def test_refund_order_refunds_when_the_void_can_no_longer_happen(
    engine: BillingEngine, code: str, outcome: RefundOutcome
) -> None:
    """The engine's void-first flow: the charge settled at the gateway, our record does not know
    yet (the settlement lookup fails), the void is declined with ``code``."""
    tx_id = base._subscribe(engine)
    gateway = base._sandbox(engine)
    gateway.settle(engine.transaction(tx_id).gateway_reference or "")
    gateway.script("lookup", [Fault.NOT_SENT])
    gateway.script("void", [Decline(code=code, message="cannot void")])
    result = engine.refund_order(tx_id, idempotency_key="order", actor=base.AGENT)
    assert result.outcome is outcome, result.explanation
    assert gateway.calls["void"] == 1
    if outcome is RefundOutcome.REFUNDED:
        assert result.amount == usd("200.00")
        assert engine.transaction(tx_id).status is TransactionStatus.REFUNDED
        assert engine.transaction(tx_id).settled
    else:
        assert (result.reason, gateway.calls["refund"]) == (code, 0)
        assert engine.transaction(tx_id).refunded == usd("0.00")


# -- properties ----------------------------------------------------------------------------------
amounts = st.integers(min_value=0, max_value=100_000)


@given(
    total=st.integers(min_value=1, max_value=100_000),
    asks=st.lists(st.integers(min_value=1, max_value=120_000), max_size=12),
    settled=st.booleans(),
)
def test_refunds_never_exceed_and_status_matches(
    total: int, asks: list[int], settled: bool
) -> None:
    t = tx(amount=Money.from_minor_units(total, "USD"), settled=settled)
    for i, minor in enumerate(asks):
        ask = Money.from_minor_units(minor, "USD")
        d = assess_refund(t, now=AT, amount=ask)
        before = t
        if d.allowed:
            t, record = apply_refund(t, d, refund_id=f"r-{i}", at=AT)
            assert record.amount == d.amount
            assert t.refunded == before.refunded + record.amount
        else:
            with pytest.raises((ExceedsRefundableError, InvalidValueError)):
                apply_refund(t, ask, refund_id=f"r-{i}", at=AT)
        assert t.refunded <= t.amount
        if d.action is RefundAction.VOID:
            assert d.amount == before.refundable  # a void is always for the whole remainder
            assert t.status == TransactionStatus.VOIDED
        elif t.refunded == t.amount:
            assert t.status in (TransactionStatus.REFUNDED, TransactionStatus.VOIDED)
        elif t.refunded:
            assert t.status == TransactionStatus.PARTIALLY_REFUNDED
        else:
            assert t.status == TransactionStatus.COMPLETED


@given(
    total=st.integers(min_value=1, max_value=10_000),
    asks=st.lists(st.tuples(st.integers(min_value=1, max_value=12_000), st.booleans()),
                  max_size=10),
)  # fmt: skip
def test_reservations_never_exceed(total: int, asks: list[tuple[int, bool]]) -> None:
    t = tx(amount=Money.from_minor_units(total, "USD"))
    pending: list[Transaction] = []
    for i, (minor, succeed) in enumerate(asks):
        ask = Money.from_minor_units(minor, "USD")
        if ask <= t.refundable:
            t, record = reserve_refund(t, ask, refund_id=f"r-{i}", at=AT)
            pending.append(record)
        else:
            with pytest.raises(ExceedsRefundableError):
                reserve_refund(t, ask, refund_id=f"r-{i}", at=AT)
        if pending and succeed:
            t, _ = complete_refund(t, pending.pop(0))
        elif pending:
            t, _ = release_refund(t, pending.pop())
        assert t.refunded + t.reserved <= t.amount
        assert t.reserved == sum((p.amount for p in pending), usd(0))
        expected = (
            TransactionStatus.REFUNDED if t.refunded == t.amount
            else TransactionStatus.PARTIALLY_REFUNDED if t.refunded
            else TransactionStatus.COMPLETED
        )  # fmt: skip
        assert t.status == expected


@given(
    total=st.integers(min_value=1, max_value=100_000),
    refunded=st.integers(min_value=0, max_value=100_000),
    kind=st.sampled_from(["sale", "capture", "authorization"]),
)
def test_a_void_is_always_for_the_whole_remainder(total: int, refunded: int, kind: str) -> None:
    refunded = min(refunded, total - 1)
    status = "partially_refunded" if refunded and kind != "authorization" else "completed"
    if kind == "authorization":
        refunded = 0
    t = tx(amount=Money.from_minor_units(total, "USD"), settled=False, kind=kind, status=status,
           refunded=Money.from_minor_units(refunded, "USD"))  # fmt: skip
    d = assess_refund(t, now=AT)
    if d.action is RefundAction.VOID:
        assert d.amount == t.refundable
        o, r = apply_refund(t, d, refund_id="v", at=AT)
        assert (o.refundable, r.amount) == (usd(0), t.refundable)
    with pytest.raises(InvalidValueError):
        apply_refund(t, RefundStep(action=RefundAction.VOID, amount=usd("0.01")) if total > 1
                     else usd("1000.00"), refund_id="v", at=AT)  # fmt: skip
