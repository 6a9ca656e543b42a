"""Editing a draft invoice (``BillingEngine.edit_draft``) before it is issued.

A draft (``InvoiceSettings(finalize=False)``) holds the pending lines it took, no number and no
totals. Until ``finalize`` it can be edited (``rules.invoice_transitions``: ``edit`` on a draft
stays a draft; on an issued invoice it is ``lines_frozen``):

* ``add_lines``: lines added by hand (a one-off fee, a goodwill credit as a negative line), in
  the draft's currency;
* ``remove_lines``: positions (from 0) of lines to take off; a removed line is waived, not
  billed again later (it stays recorded as taken by this draft in the store's line list, and
  the audit entry keeps it);
* ``notes``: the text printed on the invoice.

Everything is checked before anything is written (bad input raises naming the field: a line
in another currency, a position out of range or given twice, an edit that leaves no line); the
edit is one store session, audited (``invoice.edited``) with what was removed and added.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ..errors import CurrencyMismatchError, InvalidTypeError, InvalidValueError
from ..invoices import Invoice
from ..model import InvoiceLine
from ..rules import invoice_transitions as transitions
from ..rules.invoice_transitions import InvoiceEvent
from ..serialization import unstructure
from .context import EngineContext
from .invoice_flows import _denied, _get, retrying
from .invoice_results import InvoiceOutcome, InvoiceResult

__all__ = ["check_edit", "edit_draft"]


def check_edit(
    invoice: Invoice,
    add_lines: Sequence[InvoiceLine],
    remove_lines: Sequence[int],
    notes: str | None,
) -> tuple[InvoiceLine, ...]:
    """The draft's lines after the edit; bad input raises naming the field."""
    if isinstance(add_lines, str | bytes) or not isinstance(add_lines, Sequence):
        raise InvalidTypeError("must be a sequence of InvoiceLine", field="add_lines")
    if isinstance(remove_lines, str | bytes) or not isinstance(remove_lines, Sequence):
        raise InvalidTypeError("must be a sequence of line positions", field="remove_lines")
    if notes is not None and not isinstance(notes, str):
        raise InvalidTypeError(f"must be a str, not {type(notes).__name__}", field="notes")
    for i, line in enumerate(add_lines):
        if not isinstance(line, InvoiceLine):
            raise InvalidTypeError(
                f"must be an InvoiceLine, not {type(line).__name__}", field=f"add_lines[{i}]"
            )
        if line.amount.currency != invoice.currency:
            raise CurrencyMismatchError(
                f"must be in the invoice's currency {invoice.currency}",
                field=f"add_lines[{i}].amount",
                value=line.amount,
            )
    seen: set[int] = set()
    for i, position in enumerate(remove_lines):
        if not isinstance(position, int) or isinstance(position, bool):
            raise InvalidTypeError(
                f"must be a line position (int), not {type(position).__name__}",
                field=f"remove_lines[{i}]",
            )
        if not 0 <= position < len(invoice.lines) or position in seen:
            why = "is given twice" if position in seen else f"has no line {position}"
            raise InvalidValueError(
                f"{why}: the draft has {len(invoice.lines)} lines (0 to {len(invoice.lines) - 1})",
                field=f"remove_lines[{i}]",
                value=position,
            )
        seen.add(position)
    kept = tuple(line for n, line in enumerate(invoice.lines) if n not in seen)
    lines = (*kept, *add_lines)
    if not lines:
        raise InvalidValueError(
            "would leave the draft without a line: void it instead", field="remove_lines"
        )
    return lines


def edit_draft(
    ctx: EngineContext,
    invoice_id: str,
    *,
    add_lines: Sequence[InvoiceLine],
    remove_lines: Sequence[int],
    notes: str | None,
    actor: str,
) -> InvoiceResult:
    """Edit a draft's lines and notes (see the module docstring); an issued or void invoice is
    a denial (``lines_frozen``, ``invoice_void``)."""

    def run() -> InvoiceResult:
        with ctx.store.session() as s:
            draft = _get(s, invoice_id, lock=True)
            decision = transitions.assess(draft, InvoiceEvent.EDIT)
            if not decision.allowed:
                return _denied(draft, decision)
            lines = check_edit(draft, add_lines, remove_lines, notes)
            removed = [draft.lines[n] for n in sorted(set(remove_lines))]
            edited = attrs.evolve(draft, lines=lines, notes=draft.notes if notes is None else notes)
            s.update_invoice(edited)
            ctx.audit(
                s,
                action="invoice.edited",
                subject_id=invoice_id,
                actor=actor,
                detail={
                    "removed": unstructure(removed),
                    "added": unstructure(list(add_lines)),
                    "notes": notes,
                },
            )
        parts = [
            f"removed {len(removed)} line{'' if len(removed) == 1 else 's'}" if removed else "",
            f"added {len(add_lines)} line{'' if len(add_lines) == 1 else 's'}" if add_lines else "",
            "changed its notes" if notes is not None and notes != draft.notes else "",
        ]
        done = ", ".join(p for p in parts if p) or "changed nothing"
        return InvoiceResult(
            outcome=InvoiceOutcome.EDITED,
            invoice_id=invoice_id,
            invoice=edited,
            explanation=f"Draft {invoice_id}: {done}; it has {len(lines)} "
            f"line{'' if len(lines) == 1 else 's'} and is issued by finalize().",
        )

    return retrying(run)
