"""The dunning schedule: when to try collecting an unpaid invoice again, and when to give up.

A ``DunningPolicy`` is shaped like the refunds' ``RetryPolicy``: a number of retries after the
first failed collection, each after a delay. Kill Bill's overdue configuration is the default:
three retries, 8 days apart (``DunningPolicy()``: the delays 8, 8, 8 days), so an invoice
declined on its due date is tried again 8, 16 and 24 days after it. ``DunningPolicy.every``
builds the evenly spaced one from a ``RetryPolicy``.

``next_attempt(failures, last_attempt_on, policy)`` is the whole schedule: ``failures`` counts
the failed collections so far, the first one included; the answer's ``on`` is the date of the
next try, or ``None``: give up and notify the merchant. Pure: dates in, a decision out.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

import attrs

from ..errors import InvalidAmountError, InvalidTypeError, InvalidValueError
from ..periods import Period
from ..timeutil import require_date
from .retry import RetryPolicy

__all__ = ["DunningPolicy", "DunningStep", "check_settings", "next_attempt"]


def _delays(value: Iterable[Any]) -> tuple[Period, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidTypeError("must be a sequence of Period", field="delays", value=value)
    delays = tuple(value)
    for i, delay in enumerate(delays):
        if not isinstance(delay, Period):
            raise InvalidTypeError(
                f"must be a Period, not {type(delay).__name__}", field=f"delays[{i}]", value=delay
            )
    return delays


@attrs.frozen(kw_only=True)
class DunningPolicy:
    """The waits between collection tries after the first failure (Kill Bill's 8, 8, 8 days)."""

    delays: tuple[Period, ...] = attrs.field(
        factory=lambda: (Period.days(8),) * 3, converter=_delays
    )

    @classmethod
    def every(cls, policy: RetryPolicy) -> DunningPolicy:
        """``policy.retries`` tries, ``policy.every`` apart (the refund queue's shape)."""
        if not isinstance(policy, RetryPolicy):
            raise InvalidTypeError(
                f"must be a RetryPolicy, not {type(policy).__name__}", field="policy", value=policy
            )
        return cls(delays=(policy.every,) * policy.retries)

    @property
    def retries(self) -> int:
        return len(self.delays)

    @property
    def attempts(self) -> int:
        """All tries, the first one included (4 by default)."""
        return self.retries + 1

    def describe(self) -> str:
        if not self.delays:
            return "no retries"
        return "retries after " + ", ".join(d.describe() for d in self.delays)


@attrs.frozen(kw_only=True)
class DunningStep:
    """The answer of :func:`next_attempt`: the next try's date, or ``None`` (give up)."""

    on: date | None
    failures: int
    explanation: str

    @property
    def give_up(self) -> bool:
        return self.on is None


def next_attempt(
    failures: int, last_attempt_on: date, policy: DunningPolicy | None = None
) -> DunningStep:
    """When to try collecting again after ``failures`` failed collections, the last one on
    ``last_attempt_on``; ``on=None`` once the schedule has run out."""
    if isinstance(failures, bool) or not isinstance(failures, int):
        raise InvalidTypeError(
            f"must be an int, not {type(failures).__name__}", field="failures", value=failures
        )
    if failures < 1:
        raise InvalidAmountError(
            "must be at least 1 (the first failure counts)", field="failures", value=failures
        )
    require_date(last_attempt_on, "last_attempt_on")
    policy = DunningPolicy() if policy is None else policy
    if not isinstance(policy, DunningPolicy):
        raise InvalidTypeError(
            f"must be a DunningPolicy, not {type(policy).__name__}", field="policy", value=policy
        )
    tries = f"{failures} failed collection{'' if failures == 1 else 's'}"
    if failures > policy.retries:
        return DunningStep(
            on=None,
            failures=failures,
            explanation=f"After {tries} (the last on {last_attempt_on.isoformat()}) the dunning "
            f"schedule ({policy.describe()}) has run out: collection gives up and the merchant "
            "is notified.",
        )
    delay = policy.delays[failures - 1]
    on = delay.after(last_attempt_on)
    return DunningStep(
        on=on,
        failures=failures,
        explanation=f"After {tries} (the last on {last_attempt_on.isoformat()}) the next try "
        f"is on {on.isoformat()}, {delay.describe()} later (retry {failures} of "
        f"{policy.retries}).",
    )


def check_settings(
    dunning: object, delinquency_period: object
) -> tuple[DunningPolicy, Period | timedelta | None]:
    """The dunning policy (``None``: ``DunningPolicy()``) and the delinquency period (a
    ``Period``, a positive ``timedelta``, or ``None``: never) a collection job was given, or
    the ``BillingError`` naming ``dunning`` or ``delinquency_period``."""
    policy = DunningPolicy() if dunning is None else dunning
    if not isinstance(policy, DunningPolicy):
        raise InvalidTypeError(
            f"must be a DunningPolicy, not {type(policy).__name__}", field="dunning", value=policy
        )
    period = delinquency_period
    if period is not None and not isinstance(period, Period | timedelta):
        raise InvalidTypeError(
            f"must be a Period, a timedelta or None, not {type(period).__name__}",
            field="delinquency_period",
            value=period,
        )
    if isinstance(period, timedelta) and period <= timedelta(0):
        raise InvalidValueError("must be positive", field="delinquency_period", value=period)
    return policy, period
