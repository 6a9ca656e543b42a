"""The refund retry schedule and the notice sent on giving up (SPEC 3.7).

A refund that fails goes into a retry queue and is tried again once a day, up to 3 more times;
when the last retry fails it leaves the queue and the merchant's notify emails are told.

``next_retry(failures, last_failure_at)`` is the whole schedule: ``failures`` counts the failed
attempts so far, the first one included. With the default ``RetryPolicy(retries=3,
every=Period.days(1))``: failures 1, 2, 3 give ``last_failure_at`` + 1 day (on the local wall
clock of ``last_failure_at``, via ``Period.after``: same time of day across a DST change);
failures 4 gives ``None``, meaning give up and notify.

Every retry reuses the refund's original idempotency key, so the gateway can never refund twice;
``GiveUpNotice`` carries that key for whoever takes the refund over by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import attrs

from ..errors import InvalidAmountError, InvalidTypeError, InvalidValueError
from ..money import Money
from ..periods import Period
from ..timeutil import require_aware

__all__ = ["GiveUpNotice", "RetryAttempt", "RetryPolicy", "give_up_notice", "next_retry"]


def _retries(_inst: object, _a: object, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(
            f"must be an int, not {type(value).__name__}", field="retries", value=value
        )
    if value < 0:
        raise InvalidAmountError("must not be negative", field="retries", value=value)


def _every(_inst: object, _a: object, value: object) -> None:
    if not isinstance(value, Period):
        raise InvalidTypeError(
            f"must be a Period, not {type(value).__name__}", field="every", value=value
        )


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """``retries`` more tries after the first failure (3), one every ``every`` (1 day)."""

    retries: int = attrs.field(default=3, validator=_retries)
    every: Period = attrs.field(factory=lambda: Period.days(1), validator=_every)

    @property
    def attempts(self) -> int:
        """All tries, the first one included (4 by default)."""
        return self.retries + 1


def _failures(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(
            f"must be an int, not {type(value).__name__}", field="failures", value=value
        )
    if value < 1:
        raise InvalidAmountError(
            "must be at least 1 (the first failure counts)", field="failures", value=value
        )
    return value


def next_retry(
    failures: int, last_failure_at: datetime, policy: RetryPolicy | None = None
) -> datetime | None:
    """When to try again after ``failures`` failed attempts, or ``None``: give up and notify."""
    count = _failures(failures)
    require_aware(last_failure_at, "last_failure_at")
    policy = RetryPolicy() if policy is None else policy
    if not isinstance(policy, RetryPolicy):
        raise InvalidTypeError(
            f"must be a RetryPolicy, not {type(policy).__name__}", field="policy", value=policy
        )
    if count > policy.retries:
        return None
    return policy.every.after(last_failure_at)


@attrs.frozen(kw_only=True)
class RetryAttempt:
    """One failed try: its number (1 = the first try), when, and the error it ended with."""

    number: int
    at: datetime
    error: str


@attrs.frozen(kw_only=True)
class GiveUpNotice:
    """What the merchant's notify emails receive when a refund leaves the retry queue."""

    transaction_id: str
    refund_id: str | None
    amount: Money
    attempts: tuple[RetryAttempt, ...]
    notify_emails: tuple[str, ...]
    idempotency_key: str | None
    gave_up_at: datetime
    subject: str
    explanation: str


def give_up_notice(
    *,
    transaction_id: str,
    amount: Money,
    attempts: Iterable[tuple[datetime, str] | Any],
    notify_emails: Iterable[str],
    refund_id: str | None = None,
    idempotency_key: str | None = None,
) -> GiveUpNotice:
    """The notice for a refund given up after ``attempts``, oldest first: ``(at, error)`` pairs or
    objects with ``.at`` and ``.error`` (a queue entry's attempts).

    ``gave_up_at`` is the last attempt's time. No notify emails is allowed (the notice still
    goes to the audit log) and the explanation says so.
    """
    if not isinstance(transaction_id, str) or not transaction_id:
        raise InvalidValueError(
            "must be a non-empty str", field="transaction_id", value=transaction_id
        )
    if not isinstance(amount, Money):
        raise InvalidTypeError(
            f"must be Money, not {type(amount).__name__}", field="amount", value=amount
        )
    tries: list[RetryAttempt] = []
    for i, item in enumerate(attempts):
        if isinstance(item, tuple) and len(item) == 2:
            at, error = item
        elif hasattr(item, "at") and hasattr(item, "error"):
            at, error = item.at, item.error
        else:
            raise InvalidTypeError(
                "must be an (at, error) pair or have .at and .error",
                field=f"attempts[{i}]",
                value=item,
            )
        require_aware(at, f"attempts[{i}].at")
        if not isinstance(error, str):
            raise InvalidTypeError("must be a str", field=f"attempts[{i}].error", value=error)
        if tries and at < tries[-1].at:
            raise InvalidValueError(
                "must not be before the previous attempt", field=f"attempts[{i}].at", value=at
            )
        tries.append(RetryAttempt(number=i + 1, at=at, error=error))
    if not tries:
        raise InvalidValueError("must hold at least one failed attempt", field="attempts", value=[])
    emails = tuple(notify_emails) if not isinstance(notify_emails, str) else (notify_emails,)
    for i, email in enumerate(emails):
        if not isinstance(email, str) or "@" not in email:
            raise InvalidValueError(
                "must be an email address", field=f"notify_emails[{i}]", value=email
            )
    first, last = tries[0], tries[-1]
    retried = len(tries) - 1
    when = f"first on {_stamp(first.at)}"
    if retried:
        when += (
            f", then {retried} more time{'' if retried == 1 else 's'}, last on {_stamp(last.at)}"
        )
    told = (
        f"This notice goes to {', '.join(emails)}."
        if emails
        else "No notify emails are configured, so nobody was emailed."
    )
    explanation = (
        f"The refund of {amount} for transaction {transaction_id} failed {len(tries)} "
        f"time{'' if len(tries) == 1 else 's'} ({when}); the last error was {last.error!r}. "
        "It has left the retry queue and will not be tried again automatically: refund it by "
        f"hand{f' with idempotency key {idempotency_key}' if idempotency_key else ''} or contact "
        f"the customer. {told}"
    )
    return GiveUpNotice(
        transaction_id=transaction_id,
        refund_id=refund_id,
        amount=amount,
        attempts=tuple(tries),
        notify_emails=emails,
        idempotency_key=idempotency_key,
        gave_up_at=last.at,
        subject=f"Refund of {amount} for transaction {transaction_id} failed; not retried",
        explanation=explanation,
    )


def _stamp(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} {at.tzname()}"
