"""docs/timeline.md runs as written: its python blocks execute in order, asserting their figures."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "timeline.md"


def test_every_python_block_runs_and_its_figures_hold() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 6
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # a wrong figure fails its assert
    assert namespace["moved"].adjustment_total is not None


def test_the_readme_links_the_page() -> None:
    assert "(docs/timeline.md)" in (ROOT / "README.md").read_text()
