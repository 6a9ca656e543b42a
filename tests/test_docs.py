"""Every Python block of docs/*.md and README.md runs, and the results they show are the real ones.

The runner is ``tests/docs_runner.py`` (its docstring has the rules a page follows): the blocks
of one file run in order in one namespace, in a fresh temporary working directory; blocks after
``<!-- not run: reason -->`` are skipped; PostgreSQL blocks run on a fresh schema of the test
server when ``BILLING_CORE_TEST_POSTGRES_URL`` is set. The tests at the end prove the runner can
fail.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

from docs_runner import DocsError, Report, run_file

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").rglob("*.md"))
POSTGRES_ENV = "BILLING_CORE_TEST_POSTGRES_URL"


def _run(path: Path) -> Report:
    schemas: dict[str, str] = {}

    def postgres(url: str) -> str:  # one fresh schema per URL the page names
        from conftest import fresh_postgres_schema

        if url not in schemas:
            schemas[url] = fresh_postgres_schema(os.environ[POSTGRES_ENV])
        return schemas[url]

    return run_file(path, postgres=postgres if os.environ.get(POSTGRES_ENV) else None)


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_runs(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    report = _run(path)
    postgres = [block.where() for block, reason in report.skipped if "PostgreSQL" in reason]
    if postgres:
        pytest.skip(
            f"{len(report.ran)} blocks ran; the PostgreSQL blocks at {', '.join(postgres)} need "
            f"{POSTGRES_ENV}"
        )


def test_the_readme_tour_shows_real_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What tests/test_readme.py checked: the tour runs, the float is refused naming the field,
    and the figures and sentences shown are the ones the rules give."""
    monkeypatch.chdir(tmp_path)
    report = run_file(README)
    shown = " | ".join(text for _, text in report.checked)
    for figure in (
        "1999",
        "Money('65.81', 'USD')",
        "(Money('33', 'JPY'), Money('67', 'JPY'))",
        'InvalidTypeError (a TypeError): "... @ $.amount"',
        "2024-03-31",
        "'17 of 31 days (Jan 15 to Feb 1) of 120.00 USD = 65.81 USD'",
        "Money('49.59', 'USD')",
        "('window_expired', 'This payment of 49.00 USD was made on 2026-10-01, 51 days ago;",
        "('charged', Money('100.00', 'USD'))",
        "('voided', Money('100.00', 'USD'))",
    ):
        assert figure in shown
    assert not report.skipped, "every README block runs"


def test_the_quickstart_block_is_the_two_dev_py_commands() -> None:
    """/work/shared/tools/fresh-clone-check (and a newcomer) run the first sh block under the
    heading with "Quickstart"; pip install comes first, in its own section."""
    text = README.read_text(encoding="utf-8")
    heading = re.search(r"^#{1,6} .*quickstart.*$", text, flags=re.M | re.I)
    assert heading, "a heading containing 'Quickstart'"
    block = re.search(
        r"^```(?:sh|bash|shell|console)\n(.*?)```", text[heading.end() :], re.M | re.S
    )
    assert block
    before = text[heading.end() : heading.end() + block.start()]
    assert not re.search(r"^#{1,6} ", before, flags=re.M), "the block is in the Quickstart section"
    assert block.group(1).split("\n")[:2] == ["python3 dev.py example", "python3 dev.py test"]
    assert text.index("pip install billing_core") < text.index("python3 dev.py example")


# -- the runner fails when a page is wrong ------------------------------------------------------
def _page(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _python(code: str, before: str = "") -> str:
    return f"{before}\n```python\n{textwrap.dedent(code).strip()}\n```\n"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("1 + 1  # 3", r"shows 3, the code gives 2"),
        ("x = 7\nx\n# 8: prose after the value", r"shows 8, the code gives 7"),
        ("'abc'  # '... b ... d'", r"shows 'd'"),
        ("(1, 2)  # 1, 3", r"shows 1, 3"),
        ("(1, 2)  # 1", r"for a tuple"),
        ("int('x')  # TypeError: wrong class", r"ValueError"),
        ("int('x')  # ValueError: invalid literal for float()", r"invalid literal for float"),
        ('int("7")  # ValueError (a bad literal)', r"shows ValueError but gives 7"),
        ("2 + 2 == 5", r"does not hold"),
        ("undefined_name", r"NameError"),
        ("def broken(:", r"page.md:\d+"),
    ],
)
def test_a_wrong_block_fails(tmp_path: Path, code: str, message: str) -> None:
    with pytest.raises(DocsError, match=message):
        run_file(_page(tmp_path, _python(code)))


def test_a_doctest_session_is_checked(tmp_path: Path) -> None:
    right = _python(
        ">>> 6 * 7\n42          # the answer\n>>> int('x')\nValueError: invalid literal"
    )
    assert len(run_file(_page(tmp_path, right)).checked) == 2
    with pytest.raises(DocsError, match="shows 43"):
        run_file(_page(tmp_path, _python(">>> 6 * 7\n43")))


def test_blocks_share_one_namespace_and_prose_only_runs(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        _python("from decimal import Decimal\nx = Decimal('1.10')")
        + _python(
            "raise SystemExit('never')", before="<!-- not run: shows a file of another package -->"
        )
        + _python("x * 2  # Decimal('2.20'): exact\nx  # run it daily, sub-cent"),
    )
    report = run_file(page)
    assert [b.line for b in report.ran] == [3, 12]
    assert [reason for _, reason in report.skipped] == ["not run: shows a file of another package"]
    assert [text for _, text in report.checked] == ["Decimal('2.20'): exact"]
    assert [text for _, text in report.prose] == ["run it daily, sub-cent"]


def test_postgres_blocks_are_skipped_without_a_server_and_get_its_url(tmp_path: Path) -> None:
    page = _page(tmp_path, _python('url = "postgresql://app@db.internal/billing"  # a server'))
    report = run_file(page)
    assert report.skipped and "PostgreSQL" in report.skipped[0][1]
    namespace: dict[str, object] = {}
    run_file(
        page, postgres=lambda url: url.replace("db.internal", "127.0.0.1"), namespace=namespace
    )
    assert namespace["url"] == "postgresql://app@127.0.0.1/billing"
    in_a_comment = _page(tmp_path, _python('x = 1  # or "postgresql://app@db/billing"'))
    assert not run_file(in_a_comment).skipped
