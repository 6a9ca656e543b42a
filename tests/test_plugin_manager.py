"""The plugin manager: discovery, built-ins through the hooks, resolution and its errors."""

from __future__ import annotations

import importlib.metadata
import types
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing_core import InvalidTypeError, Money, PluginError
from billing_core.plugins import builtins
from billing_core.plugins.hookspecs import hookimpl
from billing_core.plugins.manager import BUILTINS_NAME, Plugins, get_plugin_manager, redact_url
from billing_core.plugins.memory_store import MemoryStore
from billing_core.plugins.protocols import (
    GatewayCapabilities,
    GatewayOperation,
    GatewayRequest,
    OutcomeStatus,
    PaymentGateway,
    Store,
)
from billing_core.plugins.sandbox_certificates import SandboxCertificateProvider
from billing_core.plugins.sandbox_gateway import SandboxGateway
from billing_core.testing.clock import ManualClock


def gateway_plugin(*names: str) -> object:
    """A plugin object providing sandbox gateways with the given names."""

    class GatewayPlugin:
        @hookimpl
        def billing_core_payment_gateways(self) -> Iterable[PaymentGateway]:
            return [SandboxGateway(name=name) for name in names]

    return GatewayPlugin()


def sale_request(currency: str = "USD") -> GatewayRequest:
    return GatewayRequest(
        operation=GatewayOperation.SALE,
        transaction_id="t1",
        idempotency_key="k1",
        amount=Money("10.00", currency),
    )


# -- built-ins through the hooks ----------------------------------------------------------------
def test_the_builtins_are_registered_through_the_hooks() -> None:
    plugins = Plugins(entry_points=False)
    assert plugins.plugin_names() == [BUILTINS_NAME]
    for hook in ("billing_core_payment_gateways", "billing_core_store"):
        impls = getattr(plugins.hook, hook).get_hookimpls()
        assert [impl.plugin for impl in impls] == [builtins]
    assert isinstance(plugins.gateway(), SandboxGateway)
    assert isinstance(plugins.certificate_provider(), SandboxCertificateProvider)
    assert isinstance(plugins.store("memory://"), MemoryStore)


def test_the_sandbox_runs_on_the_plugins_clock_and_is_kept() -> None:
    clock = ManualClock(datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
    plugins = Plugins(entry_points=False, clock=clock)
    gateway = plugins.gateway("sandbox")
    assert plugins.gateway("sandbox") is gateway, "one gateway per Plugins: its ledger is kept"
    outcome = gateway.sale(sale_request())
    clock.advance(timedelta(days=1))
    assert gateway.lookup("t1", "k1").settled
    assert outcome.reference is not None


def test_stores_from_urls_and_settings() -> None:
    plugins = Plugins(entry_points=False)
    assert isinstance(plugins.store({"url": "memory://"}), MemoryStore)
    with pytest.raises(PluginError, match="no store is configured"):
        plugins.store()
    with pytest.raises(PluginError, match=r"non-empty store URL @ \$\.store\.url"):
        plugins.store({"path": "x"})
    with pytest.raises(
        PluginError, match="no plugin opens a store for 'mysql://app:\\*\\*\\*@db/x'"
    ):
        plugins.store("mysql://app:hunter2@db/x")


def test_sqlite_urls_open_the_sql_store(tmp_path: Any) -> None:
    sql_store = pytest.importorskip("billing_core.plugins.sql_store")
    store = Plugins(entry_points=False).store(f"sqlite:///{tmp_path / 'billing.sqlite3'}")
    try:
        assert isinstance(store, sql_store.SqlStore)
    finally:
        store.close()


def test_a_plugin_can_take_over_a_store_scheme() -> None:
    mine = MemoryStore()

    class MyStores:
        @hookimpl
        def billing_core_store(self, url: str) -> Store | None:
            return mine if url == "memory://" else None

    plugins = Plugins(entry_points=False, plugins=[MyStores()])
    assert plugins.store("memory://") is mine
    assert plugins.store("memory://") is mine
    assert plugins.store({"url": "memory://x"}) is not mine


# -- gateway resolution -------------------------------------------------------------------------
def test_no_gateway_configured() -> None:
    plugins = Plugins(entry_points=False, settings={"sandbox": False})
    assert plugins.gateways() == {}
    with pytest.raises(PluginError, match="no payment gateway is configured"):
        plugins.gateway()
    with pytest.raises(PluginError, match="no certificate provider is configured"):
        plugins.certificate_provider()
    with pytest.raises(PluginError, match="no payment gateway is configured"):
        Plugins(entry_points=False, builtins=False).gateway()


def test_two_plugins_with_one_gateway_name_are_both_named() -> None:
    plugins = Plugins(entry_points=False)
    plugins.register(gateway_plugin("sandbox"), name="acme")
    with pytest.raises(PluginError) as caught:
        plugins.gateways()
    message = str(caught.value)
    assert "two plugins provide a payment gateway named 'sandbox'" in message
    assert "'acme'" in message
    assert f"'{BUILTINS_NAME}'" in message


def test_several_gateways_need_a_choice() -> None:
    plugins = Plugins(entry_points=False, plugins=[gateway_plugin("acme", "globex")])
    with pytest.raises(PluginError, match=r"3 payment gateways .*acme, globex, sandbox"):
        plugins.gateway()
    assert plugins.gateway("acme").name == "acme"
    with pytest.raises(PluginError, match=r"no payment gateway named 'initech'.*acme, globex"):
        plugins.gateway("initech")
    chosen = Plugins(entry_points=False, plugins=[gateway_plugin("acme")], default_gateway="acme")
    assert chosen.gateway().name == "acme"
    assert chosen.gateway(request=sale_request()).name == "acme"


def test_choose_gateway_routes_a_payment() -> None:
    class ByCurrency:
        @hookimpl
        def billing_core_choose_gateway(
            self, request: GatewayRequest, gateways: Mapping[str, PaymentGateway]
        ) -> str | None:
            assert set(gateways) == {"acme", "sandbox"}
            return "acme" if request.amount.currency == "EUR" else None

    plugins = Plugins(
        entry_points=False,
        plugins=[gateway_plugin("acme"), ByCurrency()],
        default_gateway="sandbox",
    )
    assert plugins.gateway(request=sale_request("EUR")).name == "acme"
    assert plugins.gateway(request=sale_request("USD")).name == "sandbox"


def test_a_choice_nobody_offers_is_an_error() -> None:
    class Confused:
        @hookimpl
        def billing_core_choose_gateway(self) -> str | None:
            return "nowhere"

    plugins = Plugins(entry_points=False, plugins=[Confused()])
    with pytest.raises(PluginError, match=r"'nowhere' \(from billing_core_choose_gateway"):
        plugins.gateway(request=sale_request())


def test_provider_hooks_refuse_bad_answers_and_wrappers() -> None:
    class NotAGateway:
        @hookimpl
        def billing_core_payment_gateways(self) -> Iterable[Any]:
            return ["not a gateway"]

    plugins = Plugins(entry_points=False)
    plugins.register(NotAGateway(), "bad")
    with pytest.raises(PluginError, match="'bad' returned 'not a gateway'"):
        plugins.gateways()

    class Wrapper:
        @hookimpl(wrapper=True)
        def billing_core_payment_gateways(self) -> Iterator[None]:
            yield None

    wrapped = Plugins(entry_points=False, plugins=[Wrapper()])
    with pytest.raises(PluginError, match="provider hooks take no wrappers"):
        wrapped.gateways()


def test_registration_errors_are_plugin_errors() -> None:
    plugins = Plugins(entry_points=False)
    plugin = gateway_plugin("acme")
    plugins.register(plugin, "acme")
    with pytest.raises(PluginError, match="cannot register"):
        plugins.register(gateway_plugin("other"), "acme")

    class Misfit:
        @hookimpl
        def billing_core_refund_issued(self, refund: object) -> None:
            """Asks for an argument the hook does not have."""

    with pytest.raises(PluginError, match="does not fit the hooks"):
        plugins.register(Misfit())
    assert set(plugins.gateways()) == {"acme", "sandbox"}
    plugins.unregister("acme")
    assert set(plugins.gateways()) == {"sandbox"}


def test_emit_refuses_what_is_not_an_event() -> None:
    with pytest.raises(InvalidTypeError, match=r"must be an event .* @ \$\.event"):
        Plugins(entry_points=False).emit("refund issued")  # type: ignore[arg-type]


# -- entry-point discovery ----------------------------------------------------------------------
class FakeDistribution:
    """What ``importlib.metadata.distributions()`` yields, as much as pluggy reads of it."""

    version = "1.2.0"

    def __init__(self, name: str, entry_points: list[importlib.metadata.EntryPoint]) -> None:
        self.metadata = {"name": name}
        self.entry_points = entry_points


@pytest.fixture
def acme_installed(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A distribution ``acme-billing`` whose ``billing_core`` entry point ``acme`` is a module
    providing a gateway named ``acme``."""
    module = types.ModuleType("acme_billing_plugin")

    @hookimpl
    def billing_core_payment_gateways() -> Iterable[PaymentGateway]:
        return [SandboxGateway(name="acme", capabilities=GatewayCapabilities(voids=False))]

    module.billing_core_payment_gateways = billing_core_payment_gateways  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "acme_billing_plugin", module)
    entry_point = importlib.metadata.EntryPoint(
        name="acme", value="acme_billing_plugin", group="billing_core"
    )
    other_group = importlib.metadata.EntryPoint(
        name="unrelated", value="no_such_module", group="console_scripts"
    )
    dist = FakeDistribution("acme-billing", [entry_point, other_group])
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: [dist])
    return module


def test_entry_points_are_discovered(acme_installed: types.ModuleType) -> None:
    plugins = Plugins(default_gateway="acme")
    assert plugins.plugin_names() == [BUILTINS_NAME, "acme"]
    assert plugins.pm.get_plugin("acme") is acme_installed
    gateway = plugins.gateway()
    assert gateway.name == "acme"
    assert gateway.capabilities.voids is False
    assert gateway.sale(sale_request()).status is OutcomeStatus.SUCCEEDED


def test_entry_points_can_be_left_alone(acme_installed: types.ModuleType) -> None:
    assert Plugins(entry_points=False).plugin_names() == [BUILTINS_NAME]
    assert get_plugin_manager(entry_points=False, builtins_plugin=False).list_name_plugin() == []


def test_a_clash_names_the_distribution(acme_installed: types.ModuleType) -> None:
    plugins = Plugins()
    plugins.register(gateway_plugin("acme"), name="local")
    with pytest.raises(PluginError, match=r"'acme' \(from acme-billing 1\.2\.0\) and 'local'"):
        plugins.gateways()


def test_redact_url() -> None:
    assert (
        redact_url("postgresql+psycopg://u:p@h:5432/db") == "postgresql+psycopg://u:***@h:5432/db"
    )
    assert redact_url("sqlite:///tmp/x.sqlite3") == "sqlite:///tmp/x.sqlite3"
