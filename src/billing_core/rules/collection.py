"""Collection: which payment instrument to try, when an unpaid invoice turns past due and
delinquent, and when a pending order is abandoned (SPEC 6.3, seed 003).

* **Payment order.** The order's default instrument first (it takes precedence over the
  customer's primary one), then the customer's primary, then the backups in their order.
  Inactive instruments and those whose ``expires_on`` is before ``today`` are left out first,
  then any later repeat of an id. Bad input (raises, naming the field): a default that is already
  inactive or expired when it is chosen (:func:`check_default`), a backup list that names the
  primary instrument.
* **Unpaid invoices.** ``open`` while ``today <= due_on``; ``past_due`` from the day after;
  ``delinquent`` from ``due_on + delinquency_period`` on, the day the subscription is cancelled
  (``cancel_on``). Without a delinquency period it never becomes delinquent and ``cancel_on`` is
  None. A delinquency period must be at least one day (a ``Period``, or a ``timedelta`` of whole
  days); zero is bad input.
* **Abandoned orders.** A pending order that is never activated is abandoned on
  ``created_on + abandon_after`` (a ``Period``, month ends clamped like every period).

Dates are plain local dates in the merchant's timezone; ``today`` is always passed in.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import date, timedelta

import attrs

from ..errors import InvalidTypeError, InvalidValueError
from ..instruments import PaymentInstrument
from ..periods import Period
from ..timeutil import require_date

__all__ = [
    "PaymentPlan",
    "PendingOrder",
    "UnpaidAssessment",
    "UnpaidState",
    "abandon_on",
    "assess_pending",
    "assess_unpaid",
    "check_default",
    "payment_order",
    "plan_payment",
]


class UnpaidState(enum.StrEnum):
    """Where an unpaid invoice stands on a given day."""

    OPEN = "open"
    PAST_DUE = "past_due"
    DELINQUENT = "delinquent"


def _check_instrument(value: object, field: str) -> PaymentInstrument:
    if not isinstance(value, PaymentInstrument):
        raise InvalidTypeError(
            f"must be a PaymentInstrument, not {type(value).__name__}", field=field, value=value
        )
    return value


def _why_unusable(instrument: PaymentInstrument, today: date) -> str | None:
    if not instrument.active:
        return "inactive"
    if instrument.expires_on is not None and instrument.expires_on < today:
        return f"expired on {instrument.expires_on.isoformat()}"
    return None


def check_default(instrument: PaymentInstrument, *, today: date) -> PaymentInstrument:
    """``instrument`` if it may be chosen as an order's default on ``today``; raises naming
    ``order_default`` when it is inactive or expired already."""
    _check_instrument(instrument, "order_default")
    require_date(today, "today")
    why = _why_unusable(instrument, today)
    if why is not None:
        raise InvalidValueError(
            f"instrument {instrument.id} is {why}: choose a usable default",
            field="order_default",
            value=instrument,
        )
    return instrument


@attrs.frozen(kw_only=True)
class PaymentPlan:
    """The instruments to try, in order, those left out and why, and a sentence."""

    instruments: tuple[PaymentInstrument, ...]
    left_out: tuple[tuple[PaymentInstrument, str], ...]
    explanation: str


def plan_payment(
    *,
    order_default: PaymentInstrument | None = None,
    customer_primary: PaymentInstrument | None = None,
    backups: Iterable[PaymentInstrument] = (),
    today: date,
) -> PaymentPlan:
    """:func:`payment_order` with the reasons: what is tried, in order, and what is left out."""
    require_date(today, "today")
    candidates: list[tuple[PaymentInstrument, str]] = []
    if order_default is not None:
        candidates.append((_check_instrument(order_default, "order_default"), "order default"))
    if customer_primary is not None:
        candidates.append((_check_instrument(customer_primary, "customer_primary"), "primary"))
    for i, backup in enumerate(backups):
        _check_instrument(backup, f"backups[{i}]")
        if customer_primary is not None and backup.id == customer_primary.id:
            raise InvalidValueError(
                f"names the customer's primary instrument {backup.id}; a backup is another one",
                field=f"backups[{i}]",
                value=backup,
            )
        candidates.append((backup, "backup"))
    usable: list[tuple[PaymentInstrument, str]] = []
    left_out: list[tuple[PaymentInstrument, str]] = []
    for instrument, role in candidates:
        why = _why_unusable(instrument, today)
        if why is not None:
            left_out.append((instrument, f"{role} {instrument.id} is {why}"))
        else:
            usable.append((instrument, role))
    seen: set[str] = set()
    chosen: list[tuple[PaymentInstrument, str]] = []
    for instrument, role in usable:
        if instrument.id in seen:
            left_out.append((instrument, f"{role} {instrument.id} is already in the list"))
            continue
        seen.add(instrument.id)
        chosen.append((instrument, role))
    tried = ", then ".join(f"{role} {i.id}" for i, role in chosen)
    text = f"On {today.isoformat()}: try {tried}." if chosen else "No usable instrument to try."
    if left_out:
        text += " Left out: " + "; ".join(why for _, why in left_out) + "."
    return PaymentPlan(
        instruments=tuple(i for i, _ in chosen), left_out=tuple(left_out), explanation=text
    )


def payment_order(
    *,
    order_default: PaymentInstrument | None = None,
    customer_primary: PaymentInstrument | None = None,
    backups: Iterable[PaymentInstrument] = (),
    today: date,
) -> tuple[PaymentInstrument, ...]:
    """The instruments to try, in order: order default, primary, backups; unusable and
    repeated ones left out. :func:`plan_payment` gives the same with an explanation."""
    return plan_payment(
        order_default=order_default,
        customer_primary=customer_primary,
        backups=backups,
        today=today,
    ).instruments


@attrs.frozen(kw_only=True)
class UnpaidAssessment:
    """The answer of :func:`assess_unpaid`."""

    state: UnpaidState
    due_on: date
    today: date
    cancel_on: date | None
    explanation: str


def _cancel_on(due_on: date, period: object) -> date | None:
    if period is None:
        return None
    if isinstance(period, Period):
        return period.after(due_on)
    if isinstance(period, timedelta):
        if period.days < 1 or period != timedelta(days=period.days):
            raise InvalidValueError(
                f"must be a whole number of days, at least one, not {period}",
                field="delinquency_period",
                value=period,
            )
        return due_on + period
    raise InvalidTypeError(
        f"must be a Period or a timedelta, not {type(period).__name__}",
        field="delinquency_period",
        value=period,
    )


def _days(n: int) -> str:
    return f"{n} day{'' if n == 1 else 's'}"


def assess_unpaid(
    *, due_on: date, today: date, delinquency_period: Period | timedelta | None = None
) -> UnpaidAssessment:
    """``open``, ``past_due`` or ``delinquent`` on ``today`` for an invoice due on ``due_on``."""
    require_date(due_on, "due_on")
    require_date(today, "today")
    cancel_on = _cancel_on(due_on, delinquency_period)
    due = due_on.isoformat()
    if cancel_on is not None and today >= cancel_on:
        state = UnpaidState.DELINQUENT
        text = (
            f"Due on {due} and unpaid {_days((today - due_on).days)} later: delinquent since "
            f"{cancel_on.isoformat()}, the end of the delinquency period; the subscription is "
            f"cancelled on {cancel_on.isoformat()}."
        )
    elif today > due_on:
        state = UnpaidState.PAST_DUE
        text = f"Due on {due}: past due by {_days((today - due_on).days)}."
        if cancel_on is not None:
            text += (
                f" Unless paid, the subscription is cancelled on {cancel_on.isoformat()} "
                f"(in {_days((cancel_on - today).days)})."
            )
        else:
            text += " No delinquency period is set, so it is never cancelled for this."
    else:
        state = UnpaidState.OPEN
        text = f"Due on {due}: open, {_days((due_on - today).days)} left to pay."
    return UnpaidAssessment(
        state=state, due_on=due_on, today=today, cancel_on=cancel_on, explanation=text
    )


def abandon_on(*, created_on: date, abandon_after: Period) -> date:
    """The day a pending order created on ``created_on`` is abandoned if not activated."""
    require_date(created_on, "created_on")
    if not isinstance(abandon_after, Period):
        raise InvalidTypeError(
            f"must be a Period, not {type(abandon_after).__name__}",
            field="abandon_after",
            value=abandon_after,
        )
    return abandon_after.after(created_on)


@attrs.frozen(kw_only=True)
class PendingOrder:
    """The answer of :func:`assess_pending`: abandoned or still pending, and when."""

    abandoned: bool
    abandon_on: date
    explanation: str


def assess_pending(*, created_on: date, abandon_after: Period, today: date) -> PendingOrder:
    """Is a pending order created on ``created_on`` abandoned on ``today``?"""
    when = abandon_on(created_on=created_on, abandon_after=abandon_after)
    require_date(today, "today")
    created = created_on.isoformat()
    if today >= when:
        text = (
            f"Created {created} and not activated within {abandon_after.describe()}: "
            f"abandoned on {when.isoformat()}."
        )
        return PendingOrder(abandoned=True, abandon_on=when, explanation=text)
    text = (
        f"Created {created}: pending; abandoned on {when.isoformat()} "
        f"(in {_days((when - today).days)}) unless activated."
    )
    return PendingOrder(abandoned=False, abandon_on=when, explanation=text)
