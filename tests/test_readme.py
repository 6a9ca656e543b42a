"""The README's tour runs as written, and shows what the calls really return."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from billing_core import BillingError, Money

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_values_and_rules_tour_runs() -> None:
    values, rules = _blocks()[:2]
    namespace: dict[str, Any] = {}
    lines = values.splitlines()
    # the line refusing a float is there to show the error: run it separately
    refused = [line for line in lines if "Money(19.99" in line]
    exec("\n".join(line for line in lines if line not in refused), namespace)
    with pytest.raises(BillingError, match=r"@ \$\.amount"):
        exec(refused[0].split("#")[0], namespace)
    exec(rules, namespace)
    assert namespace["decision"].reason == "window_expired"


def test_the_figures_the_readme_shows() -> None:
    from datetime import UTC, date, datetime
    from fractions import Fraction

    from billing_core import Period, Transaction
    from billing_core.rules import backdating, proration, refunds

    text = " ".join(README.read_text().split())
    assert Money("120.00", "USD").scale(Fraction(17, 31)) == Money("65.81", "USD")
    assert [str(p) for p in Money(100, "JPY").allocate([1, 2])] == ["33 JPY", "67 JPY"]
    explanation = proration.prorate(
        Money("120.00", "USD"),
        period_start=date(2026, 1, 1),
        period_end=date(2026, 2, 1),
        start=date(2026, 1, 15),
    ).explanation
    assert f"'{explanation}'" in text
    charge = backdating.assess_start(
        date(2026, 5, 21),
        term=Period.years(1),
        today=date(2026, 11, 21),
        price=Money("100.00", "USD"),
    ).charge
    assert repr(charge) in text
    payment = Transaction(
        id="tx-1",
        amount=Money("49.00", "USD"),
        created_at=datetime(2026, 10, 1, tzinfo=UTC),
        settled=True,
    )
    decision = refunds.assess_refund(payment, now=datetime(2026, 11, 21, tzinfo=UTC))
    shown = " ".join(decision.explanation.split())
    readme_comment = re.sub(r"\s*#\s*", " ", text)
    assert shown in readme_comment
