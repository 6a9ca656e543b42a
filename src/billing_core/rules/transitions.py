"""What a refund request does to a transaction, as data: transaction state × request.

``assess_refund`` (``billing_core.rules.refunds``) reads this table; ``docs/refunds.md`` renders it
(a test keeps the two identical), so the rule, the docs and the tests share one source.

A **state** is a transaction's kind, its status and whether it has settled. A **request** is what
the customer asks for, compared with what is left to refund (amount less refunded so far):

* ``whole``: everything that is left (no amount given, or exactly the remainder);
* ``part``: less than what is left;
* ``excess``: more than what is left (or more certificates of a line than are left on it).

A **cell** either allows the request, naming the action (``void`` or ``refund``) and the status the
original transaction takes once it is carried out, or denies it with a refund reason code.

Checks that do not depend on the state (the refund window, the certificate's status) come after
the state's own denials and before the request's, see ``refunds.assess_refund``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Final

import attrs

from ..decisions import Reason
from ..model import TransactionKind, TransactionStatus

__all__ = [
    "TABLE",
    "Cell",
    "RefundAction",
    "RefundReason",
    "Request",
    "Row",
    "outcome",
    "render_markdown",
    "row_for",
]


class RefundAction(enum.StrEnum):
    """How money goes back: a void cancels an unsettled charge or a hold, whole; a refund repays."""

    VOID = "void"
    REFUND = "refund"


class RefundReason(Reason):
    """Why a refund or void is denied."""

    WINDOW_EXPIRED = "window_expired"
    CERTIFICATE_ISSUED = "certificate_issued"
    PARTIAL_VOID_NOT_ALLOWED = "partial_void_not_allowed"
    EXCEEDS_REFUNDABLE = "exceeds_refundable"
    NOTHING_TO_REFUND = "nothing_to_refund"
    NOT_REFUNDABLE = "not_refundable"


class Request(enum.StrEnum):
    """The size of a request against what is left to refund."""

    WHOLE = "whole"
    PART = "part"
    EXCESS = "excess"


@attrs.frozen(kw_only=True)
class Cell:
    """One outcome: ``action`` and the original's new status ``becomes``, or a denial ``reason``."""

    action: RefundAction | None = None
    becomes: TransactionStatus | None = None
    reason: RefundReason | None = None

    def __attrs_post_init__(self) -> None:
        allowed = self.action is not None and self.becomes is not None and self.reason is None
        denied = self.action is None and self.becomes is None and self.reason is not None
        if not (allowed or denied):
            raise ValueError("a cell is either an action with a new status, or a reason")

    @property
    def allowed(self) -> bool:
        return self.reason is None

    def render(self) -> str:
        """``void → voided`` or ``denied: partial_void_not_allowed``."""
        if self.reason is not None:
            return f"denied: `{self.reason.value}`"
        assert self.action is not None
        assert self.becomes is not None
        return f"**{self.action.value}** → `{self.becomes.value}`"


@attrs.frozen(kw_only=True)
class Row:
    """The cells of every state with these kinds, statuses and settlement (``None``: either)."""

    kinds: frozenset[TransactionKind]
    statuses: frozenset[TransactionStatus]
    settled: bool | None
    whole: Cell
    part: Cell
    excess: Cell
    note: str

    def matches(self, kind: TransactionKind, status: TransactionStatus, settled: bool) -> bool:
        return (
            kind in self.kinds
            and status in self.statuses
            and (self.settled is None or self.settled is settled)
        )

    def cell(self, request: Request) -> Cell:
        return {Request.WHOLE: self.whole, Request.PART: self.part, Request.EXCESS: self.excess}[
            request
        ]

    @property
    def state_denial(self) -> RefundReason | None:
        """The reason when the state itself refuses every request (the same in every column)."""
        return self.whole.reason if self.whole.reason is self.part.reason else None


_K = TransactionKind
_S = TransactionStatus
_CHARGES: Final = frozenset({_K.SALE, _K.CAPTURE})
_HOLDS: Final = frozenset({_K.AUTHORIZATION})
_NEVER: Final = frozenset({_K.REFUND, _K.VOID, _K.CREDIT, _K.PAYOUT})
_OPEN: Final = frozenset({_S.PENDING, _S.FAILED, _S.UNKNOWN})
_ALL: Final = frozenset(TransactionStatus)


def _do(action: RefundAction, becomes: TransactionStatus) -> Cell:
    return Cell(action=action, becomes=becomes)


def _no(reason: RefundReason) -> Cell:
    return Cell(reason=reason)


def _denied(
    kinds: frozenset[TransactionKind],
    statuses: frozenset[TransactionStatus],
    reason: RefundReason,
    note: str,
) -> Row:
    cell = _no(reason)
    return Row(
        kinds=kinds, statuses=statuses, settled=None, whole=cell, part=cell, excess=cell, note=note
    )


_VOID, _REFUND = RefundAction.VOID, RefundAction.REFUND
_R = RefundReason

TABLE: Final[tuple[Row, ...]] = (
    Row(
        kinds=_CHARGES,
        statuses=frozenset({_S.COMPLETED}),
        settled=False,
        whole=_do(_VOID, _S.VOIDED),
        part=_no(_R.PARTIAL_VOID_NOT_ALLOWED),
        excess=_no(_R.EXCEEDS_REFUNDABLE),
        note="Not settled: no money has moved yet, so it is voided, whole.",
    ),
    Row(
        kinds=_CHARGES,
        statuses=frozenset({_S.COMPLETED}),
        settled=True,
        whole=_do(_REFUND, _S.REFUNDED),
        part=_do(_REFUND, _S.PARTIALLY_REFUNDED),
        excess=_no(_R.EXCEEDS_REFUNDABLE),
        note="Settled: refunded, wholly or in part.",
    ),
    Row(
        kinds=_CHARGES,
        statuses=frozenset({_S.PARTIALLY_REFUNDED}),
        settled=None,
        whole=_do(_REFUND, _S.REFUNDED),
        part=_do(_REFUND, _S.PARTIALLY_REFUNDED),
        excess=_no(_R.EXCEEDS_REFUNDABLE),
        note="A refund was paid, so it has settled whatever the flag says: refund the rest.",
    ),
    _denied(
        _CHARGES | _HOLDS,
        frozenset({_S.REFUNDED, _S.VOIDED}),
        _R.NOTHING_TO_REFUND,
        "Everything has gone back already.",
    ),
    _denied(
        _CHARGES | _HOLDS,
        _OPEN,
        _R.NOT_REFUNDABLE,
        "The charge did not (or not yet known to) succeed; reconcile an unknown one first.",
    ),
    Row(
        kinds=_HOLDS,
        statuses=frozenset({_S.COMPLETED}),
        settled=None,
        whole=_do(_VOID, _S.VOIDED),
        part=_no(_R.PARTIAL_VOID_NOT_ALLOWED),
        excess=_no(_R.EXCEEDS_REFUNDABLE),
        note="An authorization never captured: only the whole hold can be released (voided).",
    ),
    _denied(
        _HOLDS,
        frozenset({_S.PARTIALLY_REFUNDED}),
        _R.NOT_REFUNDABLE,
        "A hold is released whole; a partly refunded hold is inconsistent: ask the gateway.",
    ),
    _denied(
        _NEVER,
        _ALL,
        _R.NOT_REFUNDABLE,
        "Refunds, voids, credits and payouts are never reversed by a refund.",
    ),
)


def row_for(kind: TransactionKind, status: TransactionStatus, settled: bool) -> Row:
    """The one row of ``TABLE`` that covers this state (every state has exactly one)."""
    for row in TABLE:
        if row.matches(kind, status, settled):
            return row
    raise LookupError(
        f"no transition row for {kind}/{status}/settled={settled}"
    )  # pragma: no cover


def outcome(
    kind: TransactionKind, status: TransactionStatus, settled: bool, request: Request
) -> Cell:
    """The cell for a state and a request."""
    return row_for(kind, status, settled).cell(request)


def _names(values: Iterable[enum.StrEnum], everything: frozenset[enum.StrEnum]) -> str:
    chosen = set(values)
    if chosen == set(everything):
        return "any"
    order = list(type(next(iter(everything))))
    return ", ".join(v.value for v in order if v in chosen)


def render_markdown() -> str:
    """``TABLE`` as a Markdown table (``docs/refunds.md`` holds exactly this text)."""
    lines = [
        "| kind | status | settled | whole | part | excess | why |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    kinds: frozenset[enum.StrEnum] = frozenset(TransactionKind)
    statuses: frozenset[enum.StrEnum] = frozenset(TransactionStatus)
    for row in TABLE:
        settled = "either" if row.settled is None else ("yes" if row.settled else "no")
        lines.append(
            f"| {_names(row.kinds, kinds)} | {_names(row.statuses, statuses)} | {settled} "
            f"| {row.whole.render()} | {row.part.render()} | {row.excess.render()} | {row.note} |"
        )
    return "\n".join(lines) + "\n"
