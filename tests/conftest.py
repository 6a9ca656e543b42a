"""Shared fixtures. PostgreSQL tests use ``postgres_url``: skipped with a reason when
``BILLING_CORE_TEST_POSTGRES_URL`` is unset, failed instead when ``BILLING_CORE_REQUIRE_POSTGRES``
is set (CI sets both, so CI cannot pass with the PostgreSQL tests skipped)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

POSTGRES_ENV = "BILLING_CORE_TEST_POSTGRES_URL"
REQUIRE_ENV = "BILLING_CORE_REQUIRE_POSTGRES"


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
    if os.environ.get(REQUIRE_ENV) and _postgres_skips:
        print(f"\n{len(_postgres_skips)} PostgreSQL test(s) were skipped but {REQUIRE_ENV} is set:")
        for nodeid in _postgres_skips[:20]:
            print(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
