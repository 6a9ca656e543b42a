"""Shared fixtures. PostgreSQL tests use ``postgres_url``: skipped with a reason when
``BILLING_CORE_TEST_POSTGRES_URL`` is unset, failed instead when ``BILLING_CORE_REQUIRE_POSTGRES``
is set (CI sets both, so CI cannot pass with the PostgreSQL tests skipped).

The reliability proofs (``tests/test_reliability_*.py``: many worker processes, killed workers,
fault matrices, fuzzing) take minutes on a 2-core machine, so the README's test command leaves
them out and says so in its summary; ``python3 dev.py test --reliability`` (or
``BILLING_CORE_RELIABILITY=1``, or naming a reliability file) runs them too, and ``.ci/run``
always does (``--reliability -m reliability``). They carry the ``reliability`` marker."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from billing_core import BillingEngine

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

POSTGRES_ENV = "BILLING_CORE_TEST_POSTGRES_URL"
REQUIRE_ENV = "BILLING_CORE_REQUIRE_POSTGRES"
RELIABILITY_ENV = "BILLING_CORE_RELIABILITY"
RELIABILITY_FILES = "test_reliability_"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reliability",
        action="store_true",
        help="also run the reliability proofs (tests/test_reliability_*.py); CI always does",
    )


_left_out: list[str] = []


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run = (
        bool(config.getoption("--reliability"))
        or os.environ.get(RELIABILITY_ENV) == "1"
        or any(RELIABILITY_FILES in str(arg) for arg in config.args)
    )
    kept: list[pytest.Item] = []
    left: list[pytest.Item] = []
    for item in items:
        if item.path.name.startswith(RELIABILITY_FILES):
            item.add_marker(pytest.mark.reliability)
            if not run:
                left.append(item)
                continue
        kept.append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept
        _left_out.extend(item.nodeid for item in left)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(
                f"{REQUIRE_ENV} is set but {POSTGRES_ENV} is not: PostgreSQL tests cannot run"
            )
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    return url


_postgres_skips: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "postgres" in str(report.longrepr).lower():
        _postgres_skips.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _drop_schemas()
    if os.environ.get(REQUIRE_ENV) and _postgres_skips:
        print(f"\n{len(_postgres_skips)} PostgreSQL test(s) were skipped but {REQUIRE_ENV} is set:")
        for nodeid in _postgres_skips[:20]:
            print(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# -- shared by the engine and reliability tests ---------------------------------------------------
def fresh_postgres_schema(base: str) -> str:
    """A PostgreSQL URL whose search_path is a new, empty schema (runs never share tables)."""
    import uuid

    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    _schemas.append((base, schema))
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


_schemas: list[tuple[str, str]] = []


def _drop_schemas() -> None:
    """Drop the schemas this test session made (the test database does not fill up)."""
    if not _schemas:
        return
    import sqlalchemy as sa

    by_base: dict[str, list[str]] = {}
    for base, schema in _schemas:
        by_base.setdefault(base, []).append(schema)
    for base, schemas in by_base.items():
        engine = sa.create_engine(base)
        try:
            for schema in schemas:
                try:
                    with engine.begin() as conn:
                        conn.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
                        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                except sa.exc.SQLAlchemyError:
                    pass  # still in use by a lingering worker: left for the next cleanup
        finally:
            engine.dispose()
    _schemas.clear()


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> str:
    """``postgres_url`` with a fresh, empty schema of its own (see ``fresh_postgres_schema``)."""
    return fresh_postgres_schema(postgres_url)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store in turn: ``memory://``, a SQLite file, a fresh PostgreSQL schema."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


def collecting_engine(store_url: str, plugin: object, start: datetime) -> BillingEngine:
    """An engine for the collection tests: a ``ManualClock`` at ``start``, a sandbox gateway
    settling after a day, ``plugin`` listening, the merchant's ``billing@example.com``, and
    customer c1 (Acme) with its primary card pi-visa."""
    from billing_core import BillingEngine, Customer, PaymentInstrument
    from billing_core.plugins.manager import Plugins
    from billing_core.plugins.sandbox_gateway import SandboxGateway
    from billing_core.rules.permissions import Actor
    from billing_core.testing.clock import ManualClock

    clock = ManualClock(start)
    eng = BillingEngine(
        store=store_url,
        clock=clock,
        gateway=SandboxGateway(clock=clock, settle_after=timedelta(days=1)),
        notify_emails=["billing@example.com"],
        plugins=Plugins(clock=clock, entry_points=False, plugins=[plugin]),
    )
    admin, agent = Actor(id="ada", role="admin"), Actor(id="sam", role="support_agent")
    eng.add_customer(Customer(id="c1", company="Acme"), actor=admin)
    eng.add_instrument("c1", PaymentInstrument(id="pi-visa"), primary=True, actor=agent)
    return eng


# -- figures the reliability tests print --------------------------------------------------------
_figures: list[str] = []


class Figures:
    """``figure("...")``: one line a reliability test measured; printed at once (visible with
    ``-s``), kept as a ``record_property`` and repeated in the terminal summary."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request

    def __call__(self, line: str) -> None:
        text = f"{self._request.node.nodeid}: {line}"
        print(f"\nRELIABILITY {text}")
        self._request.node.user_properties.append(("reliability", line))
        _figures.append(text)


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Figures:
    return Figures(request)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _left_out:
        files = len({nodeid.split("::")[0] for nodeid in _left_out})
        terminalreporter.write_line(
            f"billing_core: {len(_left_out)} reliability proofs in {files} files were not run; "
            "`python3 dev.py test --reliability` runs them (CI always does)."
        )
    if _figures:
        terminalreporter.section("billing_core reliability figures")
        for line in _figures:
            terminalreporter.write_line(line)
