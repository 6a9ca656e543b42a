"""next_retry: once a day, 3 retries after the first failure, then give up; the give-up notice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import (
    InvalidAmountError,
    InvalidTypeError,
    InvalidValueError,
    Money,
    NaiveDatetimeError,
    Period,
)
from billing_core.rules.retry import RetryPolicy, give_up_notice, next_retry

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        (1, datetime(2026, 11, 2, 10, 0, tzinfo=UTC)),
        (2, datetime(2026, 11, 2, 10, 0, tzinfo=UTC)),
        (3, datetime(2026, 11, 2, 10, 0, tzinfo=UTC)),
        (4, None),
        (9, None),
    ],
)
def test_default_schedule(failures: int, expected: datetime | None) -> None:
    assert next_retry(failures, T0) == expected


def test_walk_the_whole_queue() -> None:
    times = [T0]
    while (nxt := next_retry(len(times), times[-1])) is not None:
        times.append(nxt)
    assert times == [T0 + timedelta(days=d) for d in range(4)]  # first try + 3 retries


def test_policy_is_configurable() -> None:
    policy = RetryPolicy(retries=5, every=Period.weeks(1))
    assert next_retry(5, T0, policy) == datetime(2026, 11, 8, 10, 0, tzinfo=UTC)
    assert next_retry(6, T0, policy) is None
    assert next_retry(1, T0, RetryPolicy(retries=0)) is None
    assert (RetryPolicy().retries, RetryPolicy().every, RetryPolicy().attempts) == (
        3, Period.days(1), 4,
    )  # fmt: skip


def test_a_day_is_a_calendar_day_across_dst() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    before_change = datetime(2026, 10, 24, 10, 0, tzinfo=berlin)  # DST ends Oct 25
    nxt = next_retry(1, before_change)
    assert nxt == datetime(2026, 10, 25, 10, 0, tzinfo=berlin)
    assert nxt is not None
    assert nxt.astimezone(UTC) - before_change.astimezone(UTC) == timedelta(hours=25)


@pytest.mark.parametrize(
    ("failures", "at", "policy", "error", "field"),
    [
        (0, T0, None, InvalidAmountError, "$.failures"),
        (True, T0, None, InvalidTypeError, "$.failures"),
        (1.0, T0, None, InvalidTypeError, "$.failures"),
        (1, datetime(2026, 11, 1), None, NaiveDatetimeError, "$.last_failure_at"),  # noqa: DTZ001
        (1, "2026-11-01", None, InvalidTypeError, "$.last_failure_at"),
        (1, T0, "daily", InvalidTypeError, "$.policy"),
    ],
)
def test_bad_input(failures: Any, at: Any, policy: Any, error: type[Exception], field: str) -> None:
    with pytest.raises(error) as info:
        next_retry(failures, at, policy)
    assert getattr(info.value, "field", None) == field


def test_bad_policy() -> None:
    with pytest.raises(InvalidAmountError):
        RetryPolicy(retries=-1)
    with pytest.raises(InvalidTypeError):
        RetryPolicy(every=timedelta(days=1))  # type: ignore[arg-type]


@given(
    failures=st.integers(min_value=1, max_value=50),
    retries=st.integers(min_value=0, max_value=10),
    days=st.integers(min_value=1, max_value=30),
)
def test_retry_until_the_budget_is_spent(failures: int, retries: int, days: int) -> None:
    policy = RetryPolicy(retries=retries, every=Period.days(days))
    nxt = next_retry(failures, T0, policy)
    if failures <= retries:
        assert nxt == T0 + timedelta(days=days)
    else:
        assert nxt is None


class _Attempt:
    def __init__(self, at: datetime, error: str) -> None:
        self.at, self.error = at, error


def test_give_up_notice() -> None:
    attempts = [(T0 + timedelta(days=i), f"declined {i}") for i in range(4)]
    n = give_up_notice(
        transaction_id="t-1",
        refund_id="r-1",
        amount=Money("49.00", "USD"),
        attempts=attempts,
        notify_emails=["billing@example.com", "ops@example.com"],
        idempotency_key="k-1",
    )
    assert [(a.number, a.at, a.error) for a in n.attempts] == [
        (i + 1, T0 + timedelta(days=i), f"declined {i}") for i in range(4)
    ]
    assert n.gave_up_at == T0 + timedelta(days=3)
    assert n.notify_emails == ("billing@example.com", "ops@example.com")
    assert "The refund of 49.00 USD for transaction t-1 failed 4 times" in n.explanation
    assert "first on 2026-11-01 10:00 UTC, then 3 more times, last on 2026-11-04" in n.explanation
    assert "'declined 3'" in n.explanation
    assert "idempotency key k-1" in n.explanation
    assert "billing@example.com, ops@example.com" in n.explanation
    objects = give_up_notice(
        transaction_id="t-1", amount=Money("49.00", "USD"),
        attempts=[_Attempt(a, e) for a, e in attempts], notify_emails=[],
    )  # fmt: skip
    assert objects.attempts == n.attempts
    assert "No notify emails" in objects.explanation


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"attempts": []}, InvalidValueError, "$.attempts"),
        ({"attempts": [(T0, "x"), (T0 - timedelta(1), "y")]}, InvalidValueError,
         "$.attempts[1].at"),
        ({"attempts": [(datetime(2026, 1, 1), "x")]}, NaiveDatetimeError,  # noqa: DTZ001
         "$.attempts[0].at"),
        ({"attempts": ["x"]}, InvalidTypeError, "$.attempts[0]"),
        ({"notify_emails": ["nobody"]}, InvalidValueError, "$.notify_emails[0]"),
        ({"amount": "49.00"}, InvalidTypeError, "$.amount"),
        ({"transaction_id": ""}, InvalidValueError, "$.transaction_id"),
    ],
)  # fmt: skip
def test_notice_bad_input(kwargs: dict[str, Any], error: type[Exception], field: str) -> None:
    args: dict[str, Any] = {
        "transaction_id": "t-1", "amount": Money("1.00", "USD"),
        "attempts": [(T0, "boom")], "notify_emails": ["a@b.c"], **kwargs,
    }  # fmt: skip
    with pytest.raises(error) as info:
        give_up_notice(**args)
    assert getattr(info.value, "field", None) == field
