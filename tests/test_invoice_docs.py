"""docs/invoices.md and docs/collection.md run as written and quote what the calls return."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from billing_core import Period
from billing_core.rules import collection
from docs_runner import run_file

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _run(name: str) -> tuple[dict[str, Any], str, list[str]]:
    """Run the page's Python blocks in one namespace (``docs_runner``, as ``test_docs`` does);
    return it, the page's text with whitespace collapsed, and its quoted sentences."""
    text = (DOCS / name).read_text(encoding="utf-8")
    namespace: dict[str, Any] = {"__name__": "docs_block"}
    run_file(DOCS / name, namespace=namespace)  # as test_docs runs it (shown errors, skips)
    quotes = [
        " ".join(line.removeprefix(">").strip() for line in quote.splitlines())
        for quote in re.findall(r"(?:^> .*\n)+", text, flags=re.M)
    ]
    return namespace, " ".join(text.split()), quotes


def test_invoices_page() -> None:
    ns, _, quotes = _run("invoices.md")
    expected = [
        ns["totals"].explanation,
        ns["exempt"].explanation,
        ns["step"].explanation,
        ns["used"].explanation,
    ]
    assert quotes == expected
    text = (DOCS / "invoices.md").read_text(encoding="utf-8")
    shown = re.findall(r"```text\n(.*?)```", text, flags=re.S)
    assert shown == [ns["printed"]]  # the rendered invoice, exactly as the engine prints it


def test_collection_page() -> None:
    ns, _, quotes = _run("collection.md")
    assert quotes == [
        ns["plan"].explanation,
        ns["unpaid"].explanation,
        ns["pending"].explanation,
    ]


def _timeline() -> list[list[str]]:
    text = (DOCS / "collection.md").read_text(encoding="utf-8")
    found = re.search(
        r"<!-- unpaid-timeline:start -->\n(.*?)<!-- unpaid-timeline:end -->", text, re.S
    )
    assert found, "docs/collection.md lacks the unpaid-timeline markers"
    rows = [line.strip("|").split("|") for line in found.group(1).splitlines()[2:]]
    return [[cell.strip() for cell in row] for row in rows]


@pytest.mark.parametrize("row", _timeline(), ids=lambda r: r[0])
def test_the_worked_timeline_is_what_assess_unpaid_says(row: list[str]) -> None:
    today, state, cancel_on = row
    a = collection.assess_unpaid(
        due_on=date(2026, 3, 1),
        today=date.fromisoformat(today),
        delinquency_period=Period.days(30),
    )
    assert (a.state, str(a.cancel_on)) == (state, cancel_on)
