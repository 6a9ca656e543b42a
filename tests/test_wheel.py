"""The built wheel works on its own: installed without extras in a fresh venv, it runs the README's
Python tour, the quickstart story and the ``billing-core`` console script on SQLite, from a
directory outside the repository (so the installed package is imported, never ``src/``).

Building and installing takes a minute, so this test carries the ``wheel`` marker and runs only
when asked: ``python3 dev.py test -m wheel`` (``.ci/run`` does, on the wheel it built and checked
with ``twine check --strict``; ``BILLING_CORE_WHEEL_DIST=dist`` names such a directory, otherwise
the test builds one). The README's test command (``python3 dev.py test``) skips it, saying so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import docs_runner

ROOT = Path(__file__).resolve().parents[1]
DIST_ENV = "BILLING_CORE_WHEEL_DIST"

pytestmark = pytest.mark.wheel


@pytest.fixture(scope="module")
def installed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh venv with the wheel installed (no extras; pip may use the index)."""
    if "wheel" not in (request.config.option.markexpr or ""):
        pytest.skip(
            "builds and installs the wheel (a minute): run with `python3 dev.py test -m wheel`"
        )
    work = tmp_path_factory.mktemp("wheel")
    dist = Path(os.environ[DIST_ENV]) if os.environ.get(DIST_ENV) else work / "dist"
    if not os.environ.get(DIST_ENV):
        _check([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)])
    wheels = sorted(dist.resolve().glob("billing_core-*.whl"))
    assert len(wheels) == 1, f"one wheel in {dist}, found {wheels}"
    venv.EnvBuilder(with_pip=True, clear=True).create(work / "venv")
    python = work / "venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _check(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheels[0])]
    )
    return python


def _check(command: list[str], cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_installed_package_is_the_wheel_with_no_extras(installed: Path, tmp_path: Path) -> None:
    out = _check(
        [
            str(installed),
            "-c",
            "import billing_core, importlib.util as u; print(billing_core.__file__); "
            "print([m for m in ('psycopg', 'pytest', 'hypothesis') if u.find_spec(m)])",
        ],
        cwd=tmp_path,
    )
    location, extras = out.splitlines()
    assert Path(location).is_relative_to(installed.parents[1]), location
    assert extras == "[]", "a plain install brings no extra"


def test_the_readme_tour_runs_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    out = _check(
        [str(installed), str(ROOT / "tests" / "docs_runner.py"), str(ROOT / "README.md")], tmp_path
    )
    runnable = [b for b in docs_runner.blocks(ROOT / "README.md") if b.not_run is None]
    assert f"{len(runnable)} blocks ran" in out, out  # every runnable block of the README
    assert (tmp_path / "billing.sqlite3").exists(), "the tour's engine kept its SQLite file here"


def test_the_quickstart_story_runs_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    out = _check([str(installed), str(ROOT / "examples" / "quickstart.py")], tmp_path)
    assert "== The books" in out
    assert "refunded" in out


def test_postgresql_without_its_extra_names_the_extra(installed: Path, tmp_path: Path) -> None:
    code = (
        "from billing_core import BillingEngine, ConfigurationError\n"
        "try:\n"
        "    BillingEngine(store='postgresql://app:secret@db.invalid/billing')\n"
        "except ConfigurationError as error:\n"
        "    print(error)\n"
    )
    out = _check([str(installed), "-c", code], tmp_path)
    assert "billing_core[postgres]" in out
    assert "secret" not in out


def test_the_console_script_migrates_and_explains(installed: Path, tmp_path: Path) -> None:
    script = installed.with_name("billing-core.exe" if os.name == "nt" else "billing-core")
    store = ("--store", "sqlite:///billing.sqlite3")
    assert "upgraded from revision none to" in _check(
        [str(script), *store, "db", "upgrade"], tmp_path
    )
    assert "the latest" in _check([str(script), *store, "db", "current"], tmp_path)
    explained = _check(
        [
            str(script),
            "explain",
            "start",
            "--start",
            "2026-05-21",
            "--term",
            "P1Y",
            "--price",
            "100.00",
            "--currency",
            "USD",
            "--today",
            "2026-11-21",
        ],
        tmp_path,
    )
    assert explained.startswith("start 2026-05-21: allowed, charge 49.59 USD")
