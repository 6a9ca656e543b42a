"""assess_refund: one table-driven case per reason code and action, the window edges, bad input."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from billing_core import (
    BillingError,
    CertificateLine,
    CertificateStatus,
    CurrencyMismatchError,
    InvalidAmountError,
    InvalidTypeError,
    InvalidValueError,
    Money,
    NaiveDatetimeError,
    Period,
    PrecisionError,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from billing_core.rules import refunds
from billing_core.rules.refunds import (
    NextStep,
    RefundAction,
    RefundPolicy,
    RefundReason,
    assess_refund,
)

USD = "USD"
PAID = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
SOON = datetime(2026, 10, 11, 9, 0, tzinfo=UTC)


def usd(x: str) -> Money:
    return Money(x, USD)


def tx(**kw: Any) -> Transaction:
    base: dict[str, Any] = {
        "id": "t-1",
        "amount": usd("49.00"),
        "created_at": PAID,
        "settled": True,
    }
    base.update(kw)
    return Transaction(**base)


def certs_tx(**kw: Any) -> Transaction:
    lines = (
        CertificateLine(certificate_type="dv", quantity=3, unit_price=usd("10.00")),
        CertificateLine(certificate_type="ev", quantity=1, unit_price=usd("19.00"),
                        certificate_id="c-ev"),
    )  # fmt: skip
    return tx(lines=lines, **kw)


@dataclass
class Case:
    name: str
    transaction: Transaction
    now: datetime = SOON
    kwargs: dict[str, Any] = field(default_factory=dict)
    allowed: bool = True
    reason: RefundReason | None = None
    action: RefundAction | None = None
    amount: Money | None = None
    next_step: NextStep | None = None
    says: tuple[str, ...] = ()


CASES = [
    Case("settled whole refund", tx(), action=RefundAction.REFUND, amount=usd("49.00"),
         says=("2026-10-01", "10 days ago", "until 2026-10-31", "49.00 USD is refunded")),
    Case("settled partial refund", tx(), kwargs={"amount": usd("10.00")},
         action=RefundAction.REFUND, amount=usd("10.00"), says=("39.00 USD remains",)),
    Case("amount as str", tx(), kwargs={"amount": "12.50"}, action=RefundAction.REFUND,
         amount=usd("12.50")),
    Case("the exact remainder", tx(refunded=usd("9.00"), status="partially_refunded"),
         kwargs={"amount": Decimal("40.00")}, action=RefundAction.REFUND, amount=usd("40.00")),
    Case("unsettled is voided whole", tx(settled=False), action=RefundAction.VOID,
         amount=usd("49.00"), says=("not settled yet", "voided", "49.00 USD")),
    Case("authorization voided whole", tx(kind="authorization", settled=False),
         action=RefundAction.VOID, amount=usd("49.00"), says=("hold of 49.00 USD",)),
    Case("pending certificate refunds directly", tx(), kwargs={"certificate": "pending"},
         action=RefundAction.REFUND, amount=usd("49.00")),
    Case("cancelled certificate", tx(), kwargs={"certificate": CertificateStatus.CANCELLED},
         action=RefundAction.REFUND, amount=usd("49.00")),
    Case("revoked certificate", tx(), kwargs={"certificate": "revoked"},
         action=RefundAction.REFUND, amount=usd("49.00")),
    Case("rejected certificate", tx(), kwargs={"certificate": "rejected"},
         action=RefundAction.REFUND, amount=usd("49.00")),
    Case("two dv certificates", certs_tx(), kwargs={"certificates": {0: 2}},
         action=RefundAction.REFUND, amount=usd("20.00")),
    Case("ev by certificate id", certs_tx(), kwargs={"certificates": {"c-ev": 1}},
         action=RefundAction.REFUND, amount=usd("19.00")),
    Case("dv by type and ev", certs_tx(), kwargs={"certificates": {"dv": 1, 1: 1}},
         action=RefundAction.REFUND, amount=usd("29.00")),
    # -- window_expired
    Case("51 days later", tx(), now=datetime(2026, 11, 21, 10, tzinfo=UTC), allowed=False,
         reason=RefundReason.WINDOW_EXPIRED, next_step=NextStep.CANCEL_WITHOUT_REFUND,
         says=("This payment of 49.00 USD was made on 2026-10-01, 51 days ago; refunds are "
               "possible for 30 days", "cancel the subscription without a refund")),
    # -- certificate_issued
    Case("issued certificate", tx(), kwargs={"certificate": "issued"}, allowed=False,
         reason=RefundReason.CERTIFICATE_ISSUED,
         next_step=NextStep.CANCEL_CERTIFICATE_AT_PROVIDER,
         says=("must first cancel the certificate in the certificate provider's user portal",)),
    # -- partial_void_not_allowed
    Case("part of an unsettled charge", tx(settled=False), kwargs={"amount": "10.00"},
         allowed=False, reason=RefundReason.PARTIAL_VOID_NOT_ALLOWED,
         next_step=NextStep.WAIT_FOR_SETTLEMENT, says=("voided whole (49.00 USD)", "10.00 USD")),
    Case("part of an authorization", tx(kind="authorization"), kwargs={"amount": "1.00"},
         allowed=False, reason=RefundReason.PARTIAL_VOID_NOT_ALLOWED),
    Case("one certificate of an unsettled charge", certs_tx(settled=False),
         kwargs={"certificates": {0: 1}}, allowed=False,
         reason=RefundReason.PARTIAL_VOID_NOT_ALLOWED),
    # -- exceeds_refundable
    Case("more than paid", tx(), kwargs={"amount": "49.01"}, allowed=False,
         reason=RefundReason.EXCEEDS_REFUNDABLE, next_step=NextStep.REQUEST_LESS,
         says=("49.01 USD was asked for, but only 49.00 USD",)),
    Case("more than left", tx(refunded=usd("40.00"), status="partially_refunded"),
         kwargs={"amount": "9.01"}, allowed=False, reason=RefundReason.EXCEEDS_REFUNDABLE,
         says=("only 9.00 USD of the 49.00 USD", "40.00 USD has been refunded")),
    Case("more than left with one in flight", tx(reserved=usd("40.00")),
         kwargs={"amount": "10.00"}, allowed=False, reason=RefundReason.EXCEEDS_REFUNDABLE,
         says=("40.00 USD is being refunded",)),
    Case("more than the unsettled charge", tx(settled=False), kwargs={"amount": "50.00"},
         allowed=False, reason=RefundReason.EXCEEDS_REFUNDABLE),
    Case("more certificates than left on a line", certs_tx(), kwargs={"certificates": {0: 4}},
         allowed=False, reason=RefundReason.EXCEEDS_REFUNDABLE,
         says=("4 dv certificate(s)", "only 3 of its 3")),
    # -- nothing_to_refund
    Case("refunded", tx(refunded=usd("49.00"), status="refunded"), allowed=False,
         reason=RefundReason.NOTHING_TO_REFUND, says=("refunded in full already",)),
    Case("voided", tx(refunded=usd("49.00"), status="voided", settled=False), allowed=False,
         reason=RefundReason.NOTHING_TO_REFUND, says=("voided already",)),
    Case("zero left while completed", tx(amount=usd("0.00")), allowed=False,
         reason=RefundReason.NOTHING_TO_REFUND),
    Case("refunded, even long ago", tx(status="refunded", refunded=usd("49.00")),
         now=datetime(2027, 1, 1, tzinfo=UTC), allowed=False,
         reason=RefundReason.NOTHING_TO_REFUND),
    # -- not_refundable
    *[
        Case(f"a {kind}", tx(kind=kind), allowed=False, reason=RefundReason.NOT_REFUNDABLE)
        for kind in ("refund", "void", "credit", "payout")
    ],
    *[
        Case(f"a {status} sale", tx(status=status), allowed=False,
             reason=RefundReason.NOT_REFUNDABLE)
        for status in ("pending", "failed")
    ],
    Case("an unknown sale", tx(status="unknown"), allowed=False,
         reason=RefundReason.NOT_REFUNDABLE, next_step=NextStep.RECONCILE, says=("reconcile",)),
    Case("payout says never a substitute", tx(kind="payout"), allowed=False,
         reason=RefundReason.NOT_REFUNDABLE, says=("cannot be reversed", "never a substitute")),
    Case("expired certificate", tx(), kwargs={"certificate": "expired"}, allowed=False,
         reason=RefundReason.NOT_REFUNDABLE, says=("expired",)),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_assess_refund_cases(case: Case) -> None:
    d = assess_refund(case.transaction, now=case.now, **case.kwargs)
    assert d.allowed is case.allowed
    assert d.reason == case.reason
    assert d.action == case.action
    assert d.amount == case.amount
    if case.next_step is not None:
        assert d.next_step == case.next_step
    for text in case.says:
        assert text in d.explanation
    assert d.transaction_id == case.transaction.id
    assert d.refundable == case.transaction.refundable
    if not d.allowed:
        assert d.step is None
    else:
        assert d.step is not None
        assert d.step.amount == d.amount


def test_every_reason_and_action_has_a_case() -> None:
    assert {c.reason for c in CASES if c.reason} == set(RefundReason)
    assert {c.action for c in CASES if c.action} == set(RefundAction)


def test_reason_and_action_values_are_the_spec_strings() -> None:
    assert [r.value for r in RefundReason] == [
        "window_expired", "certificate_issued", "partial_void_not_allowed",
        "exceeds_refundable", "nothing_to_refund", "not_refundable",
    ]  # fmt: skip
    assert str(RefundAction.VOID) == "void"
    assert str(RefundAction.REFUND) == "refund"


# -- the window ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("now", "allowed", "days"),
    [
        (datetime(2026, 10, 31, 23, 59, tzinfo=UTC), True, 30),  # day 30: the last day
        (datetime(2026, 11, 1, 0, 0, tzinfo=UTC), False, 31),  # day 31: denied
        (datetime(2026, 10, 1, 12, 0, tzinfo=UTC), True, 0),
    ],
)
def test_window_edges_utc(now: datetime, allowed: bool, days: int) -> None:
    d = assess_refund(tx(), now=now)
    assert d.allowed is allowed
    assert d.days_since == days
    assert d.last_day == date(2026, 10, 31)
    assert d.reason == (None if allowed else RefundReason.WINDOW_EXPIRED)


TOKYO = RefundPolicy(timezone="Asia/Tokyo")


def test_window_counts_local_dates_where_utc_date_differs() -> None:
    # 2026-10-01 20:00 UTC is 2026-10-02 05:00 in Tokyo: the transaction's date is Oct 2 there.
    t = tx(created_at=datetime(2026, 10, 1, 20, 0, tzinfo=UTC))
    # 2026-11-01 14:00 UTC is Nov 1 23:00 in Tokyo: day 30, allowed (UTC would say day 31).
    day30 = assess_refund(t, now=datetime(2026, 11, 1, 14, 0, tzinfo=UTC), policy=TOKYO)
    assert (day30.allowed, day30.transaction_date, day30.last_day, day30.days_since) == (
        True, date(2026, 10, 2), date(2026, 11, 1), 30,
    )  # fmt: skip
    # 2026-11-01 15:00 UTC is Nov 2 00:00 in Tokyo: day 31, denied.
    day31 = assess_refund(t, now=datetime(2026, 11, 1, 15, 0, tzinfo=UTC), policy=TOKYO)
    assert (day31.allowed, day31.reason, day31.days_since) == (
        False, RefundReason.WINDOW_EXPIRED, 31,
    )  # fmt: skip
    assert "made on 2026-10-02, 31 days ago" in day31.explanation
    # With a UTC policy the transaction is dated Oct 1, so Nov 1 14:00 UTC is already day 31.
    assert not assess_refund(t, now=datetime(2026, 11, 1, 14, 0, tzinfo=UTC)).allowed


def test_window_in_new_york_uses_new_york_dates() -> None:
    ny = RefundPolicy(timezone=ZoneInfo("America/New_York"))
    assert ny.timezone == "America/New_York"
    # 2026-10-02 02:00 UTC is Oct 1 22:00 in New York: dated Oct 1 there, Oct 2 in UTC.
    t = tx(created_at=datetime(2026, 10, 2, 2, 0, tzinfo=UTC))
    # 2026-11-01 03:00 UTC is Oct 31 23:00 in New York: day 30 there.
    at = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    assert assess_refund(t, now=at, policy=ny).allowed
    # 2026-11-01 04:00 UTC is Nov 1 00:00 in New York (EDT until Nov 1 06:00 UTC): day 31.
    late = assess_refund(t, now=datetime(2026, 11, 1, 4, 0, tzinfo=UTC), policy=ny)
    assert late.reason == RefundReason.WINDOW_EXPIRED
    assert late.last_day == date(2026, 10, 31)
    # In UTC the same transaction is dated Oct 2 and still refundable at that instant.
    assert assess_refund(t, now=datetime(2026, 11, 1, 4, 0, tzinfo=UTC)).allowed


def test_window_is_the_policy_value() -> None:
    week = RefundPolicy(window=Period.days(7))
    assert assess_refund(tx(), now=datetime(2026, 10, 8, tzinfo=UTC), policy=week).allowed
    d = assess_refund(tx(), now=datetime(2026, 10, 9, tzinfo=UTC), policy=week)
    assert d.reason == RefundReason.WINDOW_EXPIRED
    assert "possible for 7 days (the last day was 2026-10-08)" in d.explanation
    month = RefundPolicy(window=Period.months(1))
    assert assess_refund(tx(), now=datetime(2026, 11, 1, tzinfo=UTC), policy=month).allowed
    assert not assess_refund(tx(), now=datetime(2026, 11, 2, tzinfo=UTC), policy=month).allowed


def test_policy_defaults() -> None:
    p = RefundPolicy()
    assert p.window == Period.days(30)
    assert p.timezone == "UTC"
    assert RefundPolicy(timezone=UTC).timezone == "UTC"


def test_order_of_checks_window_before_certificate_before_request() -> None:
    late = datetime(2026, 12, 1, tzinfo=UTC)
    d = assess_refund(tx(settled=False), now=late, certificate="issued", amount="1.00")
    assert d.reason == RefundReason.WINDOW_EXPIRED
    d = assess_refund(tx(settled=False), now=SOON, certificate="issued", amount="1.00")
    assert d.reason == RefundReason.CERTIFICATE_ISSUED
    d = assess_refund(tx(kind="payout"), now=late, certificate="issued")
    assert d.reason == RefundReason.NOT_REFUNDABLE


def test_whole_refund_lists_every_remaining_certificate() -> None:
    t = tx(
        lines=(
            CertificateLine(certificate_type="dv", quantity=3, refunded_quantity=1,
                            unit_price=usd("10.00")),
        ),
        refunded=usd("10.00"),
        status="partially_refunded",
    )  # fmt: skip
    d = assess_refund(t, now=SOON)
    assert d.amount == usd("39.00")
    assert [(lr.line, lr.quantity, lr.amount) for lr in d.lines] == [(0, 2, usd("20.00"))]


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"amount": 1.5}, InvalidTypeError, "$.amount"),
        ({"amount": True}, InvalidTypeError, "$.amount"),
        ({"amount": Money("10.00", "EUR")}, CurrencyMismatchError, "$.amount"),
        ({"amount": "-1.00"}, InvalidAmountError, "$.amount"),
        ({"amount": 0}, InvalidAmountError, "$.amount"),
        ({"amount": "NaN"}, InvalidAmountError, "$.amount"),
        ({"amount": "1.005"}, PrecisionError, "$.amount"),
        ({"now": datetime(2026, 10, 11, 9, 0)}, NaiveDatetimeError, "$.now"),  # noqa: DTZ001
        ({"now": date(2026, 10, 11)}, InvalidTypeError, "$.now"),
        ({"now": datetime(2026, 9, 30, tzinfo=UTC)}, InvalidValueError, "$.now"),
        ({"certificate": "lost"}, InvalidValueError, "$.certificate"),
        ({"certificate": 3}, InvalidTypeError, "$.certificate"),
        ({"policy": "30 days"}, InvalidTypeError, "$.policy"),
        ({"certificates": {0: 1}, "amount": "1.00"}, InvalidValueError, "$.certificates"),
        ({"certificates": {5: 1}}, InvalidValueError, "$.certificates[5]"),
        ({"certificates": {0: 0}}, InvalidAmountError, "$.certificates[0]"),
        ({"certificates": {0: 1.0}}, InvalidTypeError, "$.certificates[0]"),
        ({"certificates": {"nope": 1}}, InvalidValueError, "$.certificates['nope']"),
        ({"certificates": {}}, InvalidValueError, "$.certificates"),
        ({"certificates": [1]}, InvalidTypeError, "$.certificates"),
    ],
)
def test_bad_input_raises_naming_the_field(
    kwargs: dict[str, Any], error: type[BillingError], field: str
) -> None:
    args: dict[str, Any] = {"now": SOON, **kwargs}
    with pytest.raises(error) as info:
        assess_refund(certs_tx(), **args)
    assert info.value.field == field


def test_non_transaction_raises() -> None:
    with pytest.raises(InvalidTypeError) as info:
        assess_refund({"id": "t-1"}, now=SOON)  # type: ignore[arg-type]
    assert info.value.field == "$.transaction"


def test_bad_policy_values_raise() -> None:
    with pytest.raises(BillingError) as info:
        RefundPolicy(timezone="Mars/Olympus")
    assert info.value.field == "$.timezone"
    with pytest.raises(InvalidTypeError) as type_info:
        RefundPolicy(window=30)  # type: ignore[arg-type]
    assert type_info.value.field == "$.window"


def test_decision_serialises() -> None:
    from billing_core.serialization import unstructure

    data = unstructure(assess_refund(tx(), now=SOON, amount="10.00"))
    assert data["action"] == "refund"
    assert data["amount"] == {"amount": "10.00", "currency": "USD"}
    assert data["transaction_date"] == "2026-10-01"


def test_public_names() -> None:
    assert set(refunds.__all__) >= {"assess_refund", "RefundPolicy", "RefundReason", "RefundAction"}
    assert TransactionKind("sale") is TransactionKind.SALE
    assert TransactionStatus("completed") is TransactionStatus.COMPLETED
