#!/usr/bin/env python3
"""The project's two commands, working on a fresh machine with only Python 3.11+.

    python3 dev.py example   # the end-to-end example on the embedded SQLite store
    python3 dev.py test      # the whole test suite (extra arguments go to pytest)

The first run makes a virtual environment in ``.venv/`` and installs billing_core into it with
its development extra; later runs reuse it, reinstalling only when ``pyproject.toml`` changed.
``python3 dev.py setup`` does only that step; ``python3 dev.py bench`` runs the benchmarks.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".billing_core-installed"


def _stamp() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def setup() -> None:
    """Make .venv and install the package (editable) with the dev extra, if not done yet."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be started by an older python3
        sys.exit(f"billing_core needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"dev.py: creating {VENV.relative_to(ROOT)}/ (first run only)", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _stamp():
        return
    print("dev.py: installing billing_core and its dev extra into .venv/", flush=True)
    pip = [str(PYTHON), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(_stamp())


def run(*args: str) -> int:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(PYTHON), *args], cwd=ROOT, env=env).returncode


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "setup":
        setup()
        return 0
    if command == "example":
        setup()
        return run(str(ROOT / "examples" / "quickstart.py"), *rest)
    if command == "test":
        setup()
        return run("-m", "pytest", *rest)
    if command == "bench":
        setup()
        status = 0
        for script in sorted((ROOT / "benchmarks").glob("*.py")):
            print(f"== {script.name}", flush=True)
            status |= run(str(script), *rest)
        return status
    print(__doc__)
    return 0 if command in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
