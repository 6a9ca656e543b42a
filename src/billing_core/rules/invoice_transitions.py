"""The invoice lifecycle as data: invoice state × event → new status, or a denial.

``docs/invoices.md`` renders ``TABLE`` (a test keeps the two identical) and a test runs every cell
through :func:`assess`, so the rule, the docs and the tests share one source, like
``billing_core.rules.transitions`` does for refunds.

A **state** is an invoice's status and whether it holds payments (money received and not all
given back). An **event** is what someone asks of it:

* ``edit``: change the lines, coupons or taxes (drafts only: issuing freezes them);
* ``issue``: finalize a draft: it gets its number, its totals and its due date and becomes
  ``open``;
* ``pay_part`` / ``pay_rest`` / ``overpay``: a payment less than, exactly, or more than what is
  still to pay (:func:`payment_event` says which);
* ``void``: cancel it for good (a draft is discarded; an issued one keeps its number);
* ``mark_uncollectible``: write it off while still accepting a late payment.

Choices where the SPEC is silent, after Stripe and Kill Bill: an uncollectible invoice can still
be paid or voided; an invoice holding payments cannot be voided until they are refunded (Kill
Bill's rule); a paid or void invoice is final. Past due is not a status: it depends on the day,
see ``billing_core.rules.collection.assess_unpaid``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Final

import attrs

from ..decisions import Decision, Reason
from ..errors import CurrencyMismatchError, InvalidAmountError, InvalidTypeError
from ..invoices import Invoice, InvoiceStatus
from ..money import Money

__all__ = [
    "TABLE",
    "Cell",
    "InvoiceEvent",
    "InvoiceReason",
    "InvoiceTransition",
    "Row",
    "assess",
    "outcome",
    "payment_event",
    "render_markdown",
    "row_for",
]


class InvoiceEvent(enum.StrEnum):
    """What is asked of an invoice."""

    EDIT = "edit"
    ISSUE = "issue"
    PAY_PART = "pay_part"
    PAY_REST = "pay_rest"
    OVERPAY = "overpay"
    VOID = "void"
    MARK_UNCOLLECTIBLE = "mark_uncollectible"


class InvoiceReason(Reason):
    """Why an event is refused in an invoice's state."""

    LINES_FROZEN = "lines_frozen"
    ALREADY_ISSUED = "already_issued"
    NOT_ISSUED = "not_issued"
    ALREADY_PAID = "already_paid"
    INVOICE_VOID = "invoice_void"
    HAS_PAYMENTS = "has_payments"
    EXCEEDS_AMOUNT_DUE = "exceeds_amount_due"
    ALREADY_UNCOLLECTIBLE = "already_uncollectible"


_WHY: Final[Mapping[InvoiceReason, str]] = {
    InvoiceReason.LINES_FROZEN: "its lines were frozen when it was issued",
    InvoiceReason.ALREADY_ISSUED: "it has been issued already",
    InvoiceReason.NOT_ISSUED: "it is a draft and has not been issued yet",
    InvoiceReason.ALREADY_PAID: "it has been paid in full",
    InvoiceReason.INVOICE_VOID: "it has been voided",
    InvoiceReason.HAS_PAYMENTS: "it holds payments: refund them first",
    InvoiceReason.EXCEEDS_AMOUNT_DUE: "the payment is more than what is still to pay",
    InvoiceReason.ALREADY_UNCOLLECTIBLE: "it is marked uncollectible already",
}


@attrs.frozen(kw_only=True)
class Cell:
    """One outcome: the status the invoice ``becomes``, or a denial ``reason``."""

    becomes: InvoiceStatus | None = None
    reason: InvoiceReason | None = None

    def __attrs_post_init__(self) -> None:
        if (self.becomes is None) == (self.reason is None):
            raise ValueError("a cell is either a new status or a reason")

    @property
    def allowed(self) -> bool:
        return self.reason is None

    def render(self) -> str:
        if self.reason is not None:
            return f"denied: `{self.reason.value}`"
        assert self.becomes is not None
        return f"→ `{self.becomes.value}`"


@attrs.frozen(kw_only=True)
class Row:
    """The cells of the states with these statuses and payments (``None``: either)."""

    statuses: frozenset[InvoiceStatus]
    has_payments: bool | None
    cells: Mapping[InvoiceEvent, Cell]
    note: str

    def matches(self, status: InvoiceStatus, has_payments: bool) -> bool:
        return status in self.statuses and (
            self.has_payments is None or self.has_payments is has_payments
        )

    def cell(self, event: InvoiceEvent) -> Cell:
        return self.cells[event]


_S = InvoiceStatus
_E = InvoiceEvent
_R = InvoiceReason


def _to(status: InvoiceStatus) -> Cell:
    return Cell(becomes=status)


def _no(reason: InvoiceReason) -> Cell:
    return Cell(reason=reason)


def _row(
    statuses: Iterable[InvoiceStatus],
    has_payments: bool | None,
    note: str,
    default: Cell,
    **cells: Cell,
) -> Row:
    table = {event: cells.get(event.value, default) for event in InvoiceEvent}
    return Row(statuses=frozenset(statuses), has_payments=has_payments, cells=table, note=note)


def _issued(status: InvoiceStatus, has_payments: bool, note: str) -> Row:
    return _row(
        [status],
        has_payments,
        note,
        _no(_R.ALREADY_ISSUED),
        edit=_no(_R.LINES_FROZEN),
        pay_part=_to(status),
        pay_rest=_to(_S.PAID),
        overpay=_no(_R.EXCEEDS_AMOUNT_DUE),
        void=_no(_R.HAS_PAYMENTS) if has_payments else _to(_S.VOID),
        mark_uncollectible=(
            _no(_R.ALREADY_UNCOLLECTIBLE) if status is _S.UNCOLLECTIBLE else _to(_S.UNCOLLECTIBLE)
        ),
    )


TABLE: Final[tuple[Row, ...]] = (
    _row(
        [_S.DRAFT],
        None,
        "Being prepared: editable, no number yet; issuing freezes it. A discarded draft is void.",
        _no(_R.NOT_ISSUED),
        edit=_to(_S.DRAFT),
        issue=_to(_S.OPEN),
        void=_to(_S.VOID),
    ),
    _issued(_S.OPEN, False, "Issued and unpaid (past due once its due date has passed)."),
    _issued(_S.OPEN, True, "Partly paid: the rest can be paid; voiding waits for a refund."),
    _issued(_S.UNCOLLECTIBLE, False, "Written off, yet a late payment is still welcome."),
    _issued(_S.UNCOLLECTIBLE, True, "Written off after a part payment."),
    _row(
        [_S.PAID],
        None,
        "Final: refunds and credit memos correct it, never a status change.",
        _no(_R.ALREADY_PAID),
        edit=_no(_R.LINES_FROZEN),
        issue=_no(_R.ALREADY_ISSUED),
    ),
    _row([_S.VOID], None, "Final: nothing happens to a void invoice.", _no(_R.INVOICE_VOID)),
)


def row_for(status: InvoiceStatus, has_payments: bool) -> Row:
    """The one row of ``TABLE`` that covers this state (every state has exactly one)."""
    for row in TABLE:
        if row.matches(status, has_payments):
            return row
    raise LookupError(f"no row for {status}/payments={has_payments}")  # pragma: no cover


def outcome(status: InvoiceStatus, has_payments: bool, event: InvoiceEvent) -> Cell:
    """The cell for a state and an event."""
    return row_for(status, has_payments).cell(event)


@attrs.frozen(kw_only=True)
class InvoiceTransition(Decision):
    """The answer of :func:`assess`: may ``event`` happen to the invoice, and what it becomes."""

    reason: InvoiceReason | None = None
    event: InvoiceEvent
    status: InvoiceStatus
    becomes: InvoiceStatus | None = None


def _check_invoice(invoice: object) -> Invoice:
    if not isinstance(invoice, Invoice):
        raise InvalidTypeError(
            f"must be an Invoice, not {type(invoice).__name__}", field="invoice", value=invoice
        )
    return invoice


def payment_event(invoice: Invoice, amount: Money) -> InvoiceEvent:
    """``pay_part``, ``pay_rest`` or ``overpay``: ``amount`` against what is still to pay.

    ``amount`` must be a positive ``Money`` in the invoice's currency (bad input otherwise).
    """
    _check_invoice(invoice)
    if not isinstance(amount, Money):
        raise InvalidTypeError(
            f"must be Money, not {type(amount).__name__}", field="amount", value=amount
        )
    if amount.currency != invoice.currency:
        raise CurrencyMismatchError(
            f"must be in the invoice's currency {invoice.currency}", field="amount", value=amount
        )
    if amount.amount <= 0:
        raise InvalidAmountError("must be positive", field="amount", value=amount)
    remaining = invoice.amount_remaining
    if amount < remaining:
        return InvoiceEvent.PAY_PART
    return InvoiceEvent.PAY_REST if amount == remaining else InvoiceEvent.OVERPAY


def assess(invoice: Invoice, event: InvoiceEvent) -> InvoiceTransition:
    """May ``event`` happen to ``invoice`` now? The table's cell, with a sentence."""
    _check_invoice(invoice)
    if not isinstance(event, InvoiceEvent):
        raise InvalidTypeError(
            f"must be an InvoiceEvent, not {type(event).__name__}", field="event", value=event
        )
    cell = outcome(invoice.status, invoice.has_payments, event)
    name = f"Invoice {invoice.number or invoice.id} ({invoice.status.value})"
    action = event.value.replace("_", " ")
    if cell.reason is not None:
        explanation = f"{name}: cannot {action}, because {_WHY[cell.reason]}."
        if cell.reason is InvoiceReason.EXCEEDS_AMOUNT_DUE:
            explanation = (
                f"{name}: cannot take the payment, because only {invoice.amount_remaining} "
                "is still to pay."
            )
        return InvoiceTransition(
            allowed=False,
            reason=cell.reason,
            event=event,
            status=invoice.status,
            explanation=explanation,
        )
    assert cell.becomes is not None
    return InvoiceTransition(
        allowed=True,
        event=event,
        status=invoice.status,
        becomes=cell.becomes,
        explanation=f"{name}: {action} makes it {cell.becomes.value}.",
    )


def render_markdown() -> str:
    """``TABLE`` as a Markdown table (``docs/invoices.md`` holds exactly this text)."""
    events = list(InvoiceEvent)
    lines = [
        "| status | payments | " + " | ".join(e.value for e in events) + " | why |",
        "| --- | --- | " + " | ".join("---" for _ in events) + " | --- |",
    ]
    for row in TABLE:
        statuses = ", ".join(s.value for s in InvoiceStatus if s in row.statuses)
        payments = "either" if row.has_payments is None else ("yes" if row.has_payments else "no")
        cells = " | ".join(row.cell(e).render() for e in events)
        lines.append(f"| {statuses} | {payments} | {cells} | {row.note} |")
    return "\n".join(lines) + "\n"
