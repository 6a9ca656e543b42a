"""What a plain ``pip install billing_core`` gives: SQLite works, PostgreSQL names its extra."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest

from billing_core import ConfigurationError
from billing_core.plugins import builtins

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        project: dict[str, object] = tomllib.load(f)["project"]
    return project


def test_the_sql_store_needs_no_extra() -> None:
    requirements = " ".join(str(d) for d in _project()["dependencies"])  # type: ignore[attr-defined]
    assert "SQLAlchemy" in requirements
    assert "alembic" in requirements


def test_extras_for_postgres_and_plugin_authors() -> None:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    assert any("psycopg" in r for r in extras["postgres"])
    assert {r.split(">")[0] for r in extras["testing"]} == {"pytest", "hypothesis"}
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql+psycopg://app:secret@db.example/billing", "psycopg"),
        ("postgresql://app@db.example/billing", "psycopg2"),
    ],
)
def test_a_missing_postgres_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, url: str, driver: str
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        return None if name == driver else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigurationError) as raised:
        builtins.billing_core_store(url, {})
    message = str(raised.value)
    assert "billing_core[postgres]" in message
    assert "@ $.store" in message
    assert "secret" not in message, "the password never reaches an error message"


def test_sqlite_needs_no_driver_check(tmp_path: Path) -> None:
    store = builtins.billing_core_store(f"sqlite:///{tmp_path / 'b.sqlite3'}", {})
    assert store is not None
    with store.session() as s:
        assert s.get_customer("nobody") is None
    store.close()
