"""Hypothesis properties of receipts and draft edits: a receipt's lines total exactly its sale,
and an edited draft holds exactly the kept lines then the added ones (no cent gained or lost);
a bad position raises naming it."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import InvoiceLine, InvoiceLineKind, Money, Transaction, TransactionKind
from billing_core.engine.drafts import check_edit
from billing_core.engine.receipts import receipt_lines
from billing_core.errors import InvalidValueError
from billing_core.invoices import Invoice
from billing_core.testing import strategies as bst


@given(sale=bst.transactions(), kind=st.sampled_from(list(InvoiceLineKind)))
def test_a_receipt_totals_its_sale_exactly(sale: Transaction, kind: InvoiceLineKind) -> None:
    sale = attrs.evolve(sale, kind=TransactionKind.SALE)
    lines = receipt_lines(sale, kind)
    zero = Money.zero(sale.amount.currency)
    assert sum((line.amount for line in lines), zero) == sale.amount  # no cent gained or lost
    assert {line.kind for line in lines} == {kind}
    itemised = [line.total for line in sale.lines]
    if itemised and sum(itemised, zero) == sale.amount:
        assert [line.amount for line in lines] == itemised  # one receipt line per sale line
    else:
        assert [line.amount for line in lines] == [sale.amount]  # the whole sale in one line


@st.composite
def edits(draw: st.DrawFn) -> tuple[Invoice, list[InvoiceLine], list[int]]:
    old = draw(st.lists(bst.invoice_lines("USD"), min_size=1, max_size=6))
    draft = Invoice(id="inv-1", customer_id="c1", currency="USD", lines=tuple(old))
    added = draw(st.lists(bst.invoice_lines("USD"), max_size=3))
    removed = draw(st.lists(st.integers(0, len(old) - 1), unique=True, max_size=len(old)))
    if len(removed) == len(old) and not added:
        removed = removed[:-1]
    return draft, added, removed


@given(edits())
def test_an_edit_keeps_exactly_the_kept_lines_then_the_added(
    edit: tuple[Invoice, list[InvoiceLine], list[int]],
) -> None:
    draft, added, removed = edit
    lines = check_edit(draft, added, removed, None)
    kept = [line for n, line in enumerate(draft.lines) if n not in removed]
    assert list(lines) == [*kept, *added]
    zero = Money.zero("USD")
    before = sum((line.amount for line in draft.lines), zero)
    gone = sum((draft.lines[n].amount for n in removed), zero)
    now = sum((line.amount for line in lines), zero)
    assert now == before - gone + sum((line.amount for line in added), zero)


@given(edits(), st.integers(6, 50))
def test_a_position_out_of_range_or_twice_raises_naming_it(
    edit: tuple[Invoice, list[InvoiceLine], list[int]], beyond: int
) -> None:
    draft, _, _ = edit
    with pytest.raises(InvalidValueError, match=r"\$\.remove_lines\[0\]"):
        check_edit(draft, [], [beyond], None)
    with pytest.raises(InvalidValueError, match=r"given twice.*\$\.remove_lines\[1\]"):
        check_edit(draft, [], [0, 0], None)
