"""The architecture, enforced: rules and values import no plugin, engine or I/O module, and read
no clock. import-linter checks imports (contracts in pyproject.toml); an AST scan checks calls."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "billing_core"
PURE = [
    *sorted((SRC / "rules").glob("*.py")),
    *(
        SRC / f"{name}.py"
        for name in (
            "money",
            "currencies",
            "periods",
            "plans",
            "timeutil",
            "errors",
            "decisions",
            "model",
            "invoices",
            "instruments",
            "serialization",
            "rendering",
        )
    ),
]
CLOCK_READS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "monotonic"),
    ("time", "perf_counter"),
    ("time", "sleep"),
    ("pendulum", "now"),
    ("pendulum", "today"),
    ("random", "random"),
    ("uuid", "uuid4"),
    ("os", "environ"),
    ("os", "getenv"),
}
IO_CALLS = {"open", "print", "input", "exec", "eval"}


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], capture_output=True, text=True, cwd=SRC.parents[1]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(SRC)))
def test_no_clock_reads_or_io(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    problems = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in CLOCK_READS
        ):
            problems.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in IO_CALLS
        ):
            problems.append(f"line {node.lineno}: {node.func.id}()")
    assert not problems, f"{path.name} must stay pure: " + ", ".join(problems)


def test_scan_catches_a_violation(tmp_path: Path) -> None:
    """The scan itself can fail: a module that reads the clock is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from datetime import date\ndef f():\n    return date.today()\n")
    with pytest.raises(AssertionError, match=r"date\.today"):
        test_no_clock_reads_or_io(bad)
