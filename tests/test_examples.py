"""The examples run, and a gateway plugin packaged outside billing_core is discovered through its
entry point, drives the engine and passes the gateway contract suite."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from billing_core import BillingEngine, Customer, Money
from billing_core.engine import ChargeOutcome, RefundOutcome
from billing_core.plugins.manager import Plugins
from billing_core.plugins.protocols import GatewayOutcome, PaymentGateway
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock
from billing_core.testing.gateway_contract import GatewayContract, Settle

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_quickstart_tells_the_whole_story() -> None:
    out = " ".join(_run("quickstart.py").split())  # the story is wrapped at 96 columns
    for expected in (
        "charged 99.18 USD",  # backdated: 2 × 181/365 of 100.00
        "same answer (True), and the gateway saw 1 sale",
        "backdate_limit_exceeded",
        "148.77 USD",  # 3 certificates added mid-term
        "refunded: 10.00 USD was refunded",
        "certificate_issued",
        "queued:",
        "gave up 1",
        "To: billing@acme-reseller.example",
        "window_expired",
        "first 10,000 at 0.0100 USD, next 5,000 at 0.0080 USD = 140.00 USD",
        "permission_denied",
        "59.59 USD refunded",
        "INV-000001 holds 2 lines, 288.77 USD due on 2027-01-15",  # inventory + usage lines
        "100.00 USD paid, 25.00 USD refunded, 188.77 USD left to pay",
        "Credit memo CN-000001",
        "Tax ids: US-EIN-12-3456789",
    ):
        assert expected in out, f"{expected!r} missing from the quickstart's story:\n{out}"


def test_write_a_gateway_plugin_example() -> None:
    out = _run("write_a_gateway_plugin.py")
    assert "gateways offered by the plugins: ['acme']" in out
    assert "refund: refunded" in out


def test_postgres_example(postgres_url: str) -> None:
    import sqlalchemy as sa

    schema = f"demo_{uuid.uuid4().hex[:10]}"
    try:
        out = _run("postgres.py", "--url", postgres_url, "--schema", schema)
        assert f"on sql ({schema})" in out
        assert "25.00 USD was refunded" in out
    finally:
        engine = sa.create_engine(postgres_url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """pip-install examples/acme_gateway into a fresh directory and put it on sys.path, as an
    installed distribution with its entry point (no network: built with the local setuptools)."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / "acme_gateway"
    shutil.copytree(EXAMPLES / "acme_gateway", source)  # build outside the work tree
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(target.glob("acme_gateway-*.dist-info/entry_points.txt"))
    sys.path.insert(0, str(target))
    try:
        import acme_gateway

        yield acme_gateway
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("acme_gateway", None)


def test_installed_plugin_is_discovered_and_used(installed_plugin: ModuleType) -> None:
    clock = ManualClock(datetime(2026, 11, 21, 9, tzinfo=UTC))
    plugins = Plugins(clock=clock, settings={"sandbox": False})  # entry points on
    assert "acme" in plugins.gateways()
    assert any("acme" in name for name in plugins.plugin_names())
    engine = BillingEngine(store="memory://", clock=clock, plugins=plugins)
    admin = Actor(id="ada", role="admin")
    engine.add_customer(Customer(id="c1", company="Acme"), actor=admin)
    sale = engine.charge("c1", Money("42.00", "USD"), idempotency_key="k1", actor=admin)
    assert sale.outcome is ChargeOutcome.CHARGED
    assert engine.transaction(sale.transaction_id or "").gateway == "acme"
    clock.advance(timedelta(days=2))
    refund = engine.refund_transaction(sale.transaction_id or "", idempotency_key="k2", actor=admin)
    assert refund.outcome is RefundOutcome.REFUNDED


class TestInstalledPluginContract(GatewayContract):
    """The contract suite, run against the installed third-party plugin."""

    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock(datetime(2026, 11, 21, 9, tzinfo=UTC))

    @pytest.fixture
    def gateway(self, installed_plugin: ModuleType, clock: ManualClock) -> PaymentGateway:
        plugins = Plugins(clock=clock, settings={"sandbox": False})
        return plugins.gateway("acme")

    @pytest.fixture
    def settle(self, clock: ManualClock) -> Settle:
        def settle(_charge: GatewayOutcome) -> None:
            clock.advance(timedelta(days=1, seconds=1))

        return settle
