"""Refund eligibility and the void-or-refund choice (SPEC 3.5, 3.6), as one pure rule.

``assess_refund(transaction, now=..., amount=..., certificate=...)`` answers "may this be given
back now, how, for how much, and if not why not" with a ``RefundDecision`` a support agent can
read out. The checks, in this order (the first that says no wins):

1. **The transaction's state** (``transitions.TABLE``): refunds, voids, credits, payouts and
   pending, failed or unknown transactions are ``not_refundable``; a refunded or voided one, or one
   with nothing left, has ``nothing_to_refund``.
2. **The window**: a transaction dated D (its local date in ``policy.timezone``) is refundable
   through ``policy.window.after(D)`` (D + 30 days by default) inclusive; later it is
   ``window_expired`` and the customer is offered cancellation without a refund.
3. **The certificate** it paid for: pending (not yet issued) or none is refundable directly;
   issued is ``certificate_issued`` until the customer cancels it in the provider's portal;
   cancelled, revoked or rejected are refundable; expired is ``not_refundable`` (it was used).
4. **The request** against what is left (``transitions.Request``): an unsettled charge or an
   authorization is voided whole, so a partial request is ``partial_void_not_allowed``; a settled
   charge is refunded wholly or in part; more than is left is ``exceeds_refundable``.

A request is either ``amount=`` (a ``Money``, or a ``Decimal``/``int``/``str`` in the
transaction's currency) or ``certificates=`` (certificates per line: ``{0: 2}`` refunds two
certificates of the first line; a key may also be a line's ``certificate_id`` or its unique
``certificate_type``), never both. Nothing requested means everything that is left.

What an allowed decision does once carried out (the original's new status, the refund or void
transaction it creates) is computed by ``refund_effects.apply_refund``; the void-first order flow
is ``refund_effects.plan_order_refund``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import date, datetime, tzinfo
from typing import Final

import attrs

from ..decisions import Decision
from ..errors import (
    InvalidTypeError,
    InvalidValueError,
)
from ..model import CertificateStatus, Transaction, TransactionKind
from ..money import Money
from ..periods import Period
from ..timeutil import UTC, local_date, require_aware, timezone
from .refund_requests import (
    LineRefund,
    certificate_status,
    requested_amount,
    requested_lines,
)
from .transitions import RefundAction, RefundReason, Request, row_for

__all__ = [
    "LineRefund",
    "NextStep",
    "RefundAction",
    "RefundDecision",
    "RefundPolicy",
    "RefundReason",
    "RefundStep",
    "assess_refund",
]


class NextStep(enum.StrEnum):
    """What the agent can offer or do next after a denial."""

    CANCEL_WITHOUT_REFUND = "cancel_without_refund"
    CANCEL_CERTIFICATE_AT_PROVIDER = "cancel_certificate_at_provider"
    WAIT_FOR_SETTLEMENT = "wait_for_settlement"
    REQUEST_LESS = "request_less"
    RECONCILE = "reconcile"


def _tz_name(value: object) -> str:
    """Keep the policy's timezone as an IANA name so it serialises; accept a ZoneInfo or UTC."""
    if isinstance(value, str):
        timezone(value, "timezone")
        return value
    if value is UTC:
        return "UTC"
    key = getattr(value, "key", None)
    if isinstance(value, tzinfo) and isinstance(key, str):
        return key
    raise InvalidTypeError(
        f"must be an IANA timezone name or a ZoneInfo, not {type(value).__name__}",
        field="timezone",
        value=value,
    )


def _window(_inst: object, _a: object, value: object) -> None:
    if not isinstance(value, Period):
        raise InvalidTypeError(
            f"must be a Period, not {type(value).__name__}", field="window", value=value
        )


def _non_empty(_inst: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidValueError("must be a non-empty str", field=attribute.name, value=value)


@attrs.frozen(kw_only=True)
class RefundPolicy:
    """The merchant's refund policy.

    ``window``: how long after the transaction's local date a refund is possible (30 days);
    ``timezone``: where that date is read (an IANA name, UTC by default);
    ``provider_portal``: how explanations name the place where a customer cancels a certificate.
    """

    window: Period = attrs.field(factory=lambda: Period.days(30), validator=_window)
    timezone: str = attrs.field(default="UTC", converter=_tz_name)
    provider_portal: str = attrs.field(
        default="the certificate provider's user portal", validator=_non_empty
    )

    @property
    def tz(self) -> tzinfo:
        return timezone(self.timezone)


@attrs.frozen(kw_only=True)
class RefundStep:
    """One executable step: void or refund ``amount`` (and these certificate lines)."""

    action: RefundAction
    amount: Money
    lines: tuple[LineRefund, ...] = ()


@attrs.frozen(kw_only=True)
class RefundDecision(Decision):
    """The answer of ``assess_refund``.

    ``action``/``amount``: what to do and how much money it moves (``None`` when denied).
    ``refundable``: what is left of the transaction (amount less refunded so far), whatever the
    answer. ``requested``: the amount asked for (``None``: everything left). ``lines``: the
    certificates refunded per line. ``transaction_date``, ``last_day`` (the last local date a
    refund is possible) and ``days_since`` are the window's figures. ``next_step``: what the agent
    can offer after a denial.
    """

    reason: RefundReason | None = None
    transaction_id: str
    action: RefundAction | None = None
    amount: Money | None = None
    refundable: Money
    requested: Money | None = None
    lines: tuple[LineRefund, ...] = ()
    transaction_date: date
    last_day: date
    days_since: int
    certificate: CertificateStatus | None = None
    next_step: NextStep | None = None

    @property
    def step(self) -> RefundStep | None:
        """The step to execute (give it to ``refund_effects.apply_refund``), ``None`` if denied."""
        if self.action is None or self.amount is None:
            return None
        return RefundStep(action=self.action, amount=self.amount, lines=self.lines)


_NOUN: Final = {
    TransactionKind.SALE: "payment",
    TransactionKind.CAPTURE: "payment",
    TransactionKind.AUTHORIZATION: "authorization",
    TransactionKind.REFUND: "refund",
    TransactionKind.VOID: "void",
    TransactionKind.CREDIT: "credit",
    TransactionKind.PAYOUT: "payout",
}
_REFUNDABLE_CERTIFICATES: Final = frozenset(
    {
        CertificateStatus.PENDING,
        CertificateStatus.CANCELLED,
        CertificateStatus.REVOKED,
        CertificateStatus.REJECTED,
    }
)


def _days(n: int) -> str:
    return f"{n} day{'' if n == 1 else 's'}"


def _ago(n: int) -> str:
    return "today" if n == 0 else f"{_days(n)} ago"


# -- the rule ------------------------------------------------------------------------------------
def assess_refund(
    transaction: Transaction,
    *,
    now: datetime,
    amount: object = None,
    certificate: CertificateStatus | str | None = None,
    policy: RefundPolicy | None = None,
    certificates: Mapping[int | str, int] | None = None,
) -> RefundDecision:
    """May ``transaction`` be voided or refunded at ``now``, for how much, and if not, why not.

    ``amount`` or ``certificates`` (per line) ask for part of it; neither asks for all that is
    left. ``certificate`` is the status of the certificate the transaction paid for (``None``:
    none). See the module docstring for the order of the checks.
    """
    if not isinstance(transaction, Transaction):
        raise InvalidTypeError(
            f"must be a Transaction, not {type(transaction).__name__}",
            field="transaction",
            value=transaction,
        )
    require_aware(now, "now")
    policy = RefundPolicy() if policy is None else policy
    if not isinstance(policy, RefundPolicy):
        raise InvalidTypeError(
            f"must be a RefundPolicy, not {type(policy).__name__}", field="policy", value=policy
        )
    cert = certificate_status(certificate)
    if amount is not None and certificates is not None:
        raise InvalidValueError(
            "give either amount or certificates, not both", field="certificates", value=certificates
        )
    requested = requested_amount(amount, transaction)
    lines: tuple[LineRefund, ...] = ()
    if certificates is not None:
        lines = requested_lines(certificates, transaction)
        requested = sum((line.amount for line in lines), Money.zero(transaction.currency)).rounded()

    tz = policy.tz
    day = local_date(transaction.created_at, tz)
    today = local_date(now, tz)
    if today < day:
        raise InvalidValueError(
            f"is before the transaction's date {day.isoformat()} ({policy.timezone})",
            field="now",
            value=now,
        )
    last_day = policy.window.after(day)
    days = (today - day).days
    left = transaction.refundable
    noun = _NOUN[transaction.kind]
    opening = f"This {noun} of {transaction.amount} was made on {day.isoformat()}, {_ago(days)}"

    def decide(
        reason: RefundReason | None,
        explanation: str,
        *,
        action: RefundAction | None = None,
        moved: Money | None = None,
        next_step: NextStep | None = None,
        refunded_lines: tuple[LineRefund, ...] = lines,
    ) -> RefundDecision:
        return RefundDecision(
            allowed=reason is None,
            reason=reason,
            explanation=explanation,
            transaction_id=transaction.id,
            action=action,
            amount=moved,
            refundable=left,
            requested=requested,
            lines=refunded_lines,
            transaction_date=day,
            last_day=last_day,
            days_since=days,
            certificate=cert,
            next_step=next_step,
        )

    # 1. the state
    row = row_for(transaction.kind, transaction.status, transaction.settled)
    state_denial = row.state_denial
    if state_denial is RefundReason.NOT_REFUNDABLE:
        return decide(
            state_denial,
            _not_refundable(transaction, noun),
            next_step=(NextStep.RECONCILE if transaction.status == "unknown" else None),
        )
    if state_denial is RefundReason.NOTHING_TO_REFUND or not left:
        return decide(
            RefundReason.NOTHING_TO_REFUND,
            f"This {noun} of {transaction.amount} has been {_gone(transaction)}: "
            f"there is nothing left to give back.",
        )
    # 2. the window
    if today > last_day:
        return decide(
            RefundReason.WINDOW_EXPIRED,
            f"{opening}; refunds are possible for {policy.window.describe()} "
            f"(the last day was {last_day.isoformat()}). "
            "You can cancel the subscription without a refund.",
            next_step=NextStep.CANCEL_WITHOUT_REFUND,
        )
    # 3. the certificate
    if cert is CertificateStatus.ISSUED:
        return decide(
            RefundReason.CERTIFICATE_ISSUED,
            f"{opening}, for a certificate that has been issued. The customer must first cancel "
            f"the certificate in {policy.provider_portal}; once it shows as cancelled it can be "
            f"refunded, until {last_day.isoformat()}.",
            next_step=NextStep.CANCEL_CERTIFICATE_AT_PROVIDER,
        )
    if cert is not None and cert not in _REFUNDABLE_CERTIFICATES:
        return decide(
            RefundReason.NOT_REFUNDABLE,
            f"{opening}, for a certificate that has {cert.value}: it was used for its whole "
            "validity, so it cannot be refunded.",
        )
    # 4. the request
    over_line = next(
        (lr for lr in lines if lr.quantity > transaction.lines[lr.line].remaining_quantity), None
    )
    if over_line is not None or (requested is not None and requested > left):
        request = Request.EXCESS
    elif requested is None or requested == left:
        request = Request.WHOLE
    else:
        request = Request.PART
    cell = row.cell(request)
    if cell.reason is RefundReason.EXCEEDS_REFUNDABLE:
        return decide(
            cell.reason,
            _exceeds(transaction, requested, left, over_line),
            next_step=NextStep.REQUEST_LESS,
        )
    if cell.reason is RefundReason.PARTIAL_VOID_NOT_ALLOWED:
        return decide(
            cell.reason,
            f"{opening} and has not settled yet. An unsettled {noun} can only be voided whole "
            f"({left}), not in part ({requested}); a partial refund is possible once it settles.",
            next_step=NextStep.WAIT_FOR_SETTLEMENT,
        )
    assert cell.action is not None
    moved = left if requested is None or cell.action is RefundAction.VOID else requested
    if request is Request.WHOLE and not lines:
        lines = tuple(
            LineRefund(
                line=i,
                quantity=line.remaining_quantity,
                amount=line.unit_price * line.remaining_quantity,
            )
            for i, line in enumerate(transaction.lines)
            if line.remaining_quantity
        )
    window = f"refunds are possible until {last_day.isoformat()}"
    if cell.action is RefundAction.VOID:
        how = (
            f"It has not been captured, so the hold of {moved} is released (voided), whole."
            if transaction.kind is TransactionKind.AUTHORIZATION
            else f"It has not settled yet, so it is voided: the whole {moved} is cancelled "
            "and no money moves."
        )
    else:
        rest = left - moved
        how = f"It has settled, so {moved} is refunded to the customer" + (
            f"; {rest} remains refundable." if rest else "."
        )
    return decide(
        None, f"{opening}; {window}. {how}", action=cell.action, moved=moved, refunded_lines=lines
    )


def _gone(transaction: Transaction) -> str:
    if transaction.status == "voided":
        return "voided already"
    if transaction.reserved:
        return f"refunded or is being refunded ({transaction.reserved} in progress)"
    return "refunded in full already"


def _not_refundable(transaction: Transaction, noun: str) -> str:
    kind, status = transaction.kind, transaction.status
    if kind is TransactionKind.PAYOUT:
        return (
            f"This payout of {transaction.amount} cannot be reversed, and a payout is never a "
            "substitute for a refund: refund the original payment instead."
        )
    if kind in (TransactionKind.REFUND, TransactionKind.VOID, TransactionKind.CREDIT):
        return (
            f"This {noun} of {transaction.amount} gives money back itself; only the original "
            "payment can be refunded."
        )
    if status == "unknown":
        return (
            f"The outcome of this {noun} of {transaction.amount} is unknown; reconcile it with "
            "the payment gateway before refunding anything."
        )
    if status in ("pending", "failed"):
        return (
            f"This {noun} of {transaction.amount} is {status.value}: no money was taken, so there "
            "is nothing to refund."
        )
    return (
        f"This {noun} of {transaction.amount} is {status.value}; an authorization is released "
        "whole, so ask the gateway what is still held."
    )


def _exceeds(
    transaction: Transaction, requested: Money | None, left: Money, over: LineRefund | None
) -> str:
    if over is not None:
        line = transaction.lines[over.line]
        return (
            f"{over.quantity} {line.certificate_type} certificate(s) were asked for on line "
            f"{over.line}, but only {line.remaining_quantity} of its {line.quantity} are left "
            "to refund."
        )
    progress = f", {transaction.reserved} is being refunded" if transaction.reserved else ""
    return (
        f"{requested} was asked for, but only {left} of the {transaction.amount} paid is left "
        f"to refund ({transaction.refunded} has been refunded already{progress})."
    )
