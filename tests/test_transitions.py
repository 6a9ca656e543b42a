"""The transition table: every state has one row, every cell is what the rules do, docs agree."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from billing_core import Money, Transaction, TransactionKind, TransactionStatus
from billing_core.rules import transitions
from billing_core.rules.refund_effects import apply_refund
from billing_core.rules.refunds import assess_refund
from billing_core.rules.transitions import TABLE, Request, row_for

DOCS = Path(__file__).resolve().parent.parent / "docs" / "refunds.md"
PAID = datetime(2026, 10, 1, 12, tzinfo=UTC)
NOW = datetime(2026, 10, 5, 12, tzinfo=UTC)
STATES = list(itertools.product(TransactionKind, TransactionStatus, (False, True)))


def test_every_state_has_exactly_one_row() -> None:
    for kind, status, settled in STATES:
        matching = [row for row in TABLE if row.matches(kind, status, settled)]
        assert len(matching) == 1, (kind, status, settled)


def _transaction(kind: TransactionKind, status: TransactionStatus, settled: bool) -> Transaction:
    refunded = {
        TransactionStatus.REFUNDED: "49.00",
        TransactionStatus.VOIDED: "49.00",
        TransactionStatus.PARTIALLY_REFUNDED: "9.00",
    }.get(status, "0")
    return Transaction(
        id="t-1",
        amount=Money("49.00", "USD"),
        created_at=PAID,
        settled=settled,
        refunded=Money(refunded, "USD"),
        status=status,
        kind=kind,
    )


def _request(t: Transaction, request: Request) -> dict[str, Any]:
    if request is Request.WHOLE:
        return {}
    if request is Request.PART:
        return {"amount": Money("1.00", "USD")}
    return {"amount": t.refundable + Money("0.01", "USD")}


CELLS = [
    (kind, status, settled, request) for kind, status, settled in STATES for request in Request
]


@pytest.mark.parametrize(("kind", "status", "settled", "ask"), CELLS)
def test_every_cell_is_what_assess_and_apply_do(
    kind: TransactionKind, status: TransactionStatus, settled: bool, ask: Request
) -> None:
    cell = row_for(kind, status, settled).cell(ask)
    t = _transaction(kind, status, settled)
    d = assess_refund(t, now=NOW, **_request(t, ask))
    assert d.reason == cell.reason
    assert d.action == cell.action
    if cell.allowed:
        original, record = apply_refund(t, d, refund_id="r-1", at=NOW)
        assert original.status == cell.becomes
        assert str(record.kind) == str(cell.action)
        assert record.parent_id == "t-1"


def test_the_table_in_the_docs_is_the_table_in_the_code() -> None:
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(
        r"<!-- transitions:start -->\n(.*?)<!-- transitions:end -->", text, flags=re.S
    )
    assert found, "docs/refunds.md lacks the transitions markers"
    assert found.group(1) == transitions.render_markdown(), (
        "docs/refunds.md is out of date; paste transitions.render_markdown() between the markers"
    )


def test_rendering_names_every_reason_that_the_table_uses() -> None:
    rendered = transitions.render_markdown()
    used = {c.reason for row in TABLE for c in (row.whole, row.part, row.excess) if c.reason}
    for reason in used:
        assert f"`{reason.value}`" in rendered
    assert rendered.count("\n") == len(TABLE) + 2


def test_a_cell_is_an_action_or_a_reason() -> None:
    with pytest.raises(ValueError, match="either"):
        transitions.Cell()
    with pytest.raises(ValueError, match="either"):
        transitions.Cell(
            action=transitions.RefundAction.VOID,
            reason=transitions.RefundReason.NOT_REFUNDABLE,
        )
