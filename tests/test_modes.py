"""Explicit modes: settings keys are checked, a missing gateway fails at construction, and the
engine says whether money is real (``gateway_mode``), logging when it falls back on the sandbox."""

from __future__ import annotations

import logging
import types
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_core import BillingEngine
from billing_core.errors import ConfigurationError, PluginError
from billing_core.plugins.hookspecs import hookimpl
from billing_core.plugins.manager import GatewayMode, Plugins, gateway_mode
from billing_core.plugins.protocols import PaymentGateway
from billing_core.plugins.sandbox_gateway import SandboxGateway

ENGINE_LOG = "billing_core.engine"


class AcmeGateway:
    """A gateway that is not the sandbox (it hands its calls to one, to have something to do)."""

    def __init__(self) -> None:
        self._inner = SandboxGateway(name="acme")
        self.name = "acme"
        self.capabilities = self._inner.capabilities

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def acme_plugin(*, keys: Mapping[str, str] | object = None) -> object:
    """A plugin offering a gateway named ``acme`` and declaring the setting ``acme_api_key``."""
    acme = AcmeGateway()

    def billing_core_payment_gateways(settings: Mapping[str, Any]) -> Iterable[object]:
        return [acme] if settings.get("acme_api_key") else []

    def billing_core_known_settings() -> object:
        return {"acme_api_key": "AcmePay's secret key"} if keys is None else keys

    return types.SimpleNamespace(
        billing_core_payment_gateways=hookimpl(billing_core_payment_gateways),
        billing_core_known_settings=hookimpl(billing_core_known_settings),
    )


# -- settings keys --------------------------------------------------------------------------------
def test_a_misspelt_setting_stops_the_engine_at_construction() -> None:
    with pytest.raises(ConfigurationError) as caught:
        BillingEngine(store="memory://", settings={"sandbx": False})
    error = caught.value
    assert str(error) == (
        "unknown setting 'sandbx' (did you mean 'sandbox'?); the known settings are sandbox "
        "(a plugin declares the settings it reads with billing_core_known_settings) @ $.settings"
    )
    assert error.value == "sandbx"


def test_the_known_settings_list_every_plugins_keys() -> None:
    plugins = Plugins(entry_points=False, plugins=[acme_plugin()], settings={"acme_apikey": "k"})
    assert plugins.known_settings() == {
        "acme_api_key": "AcmePay's secret key",
        "sandbox": "True (default) offers the built-in sandbox gateway and certificate provider; "
        "False turns them off",
    }
    with pytest.raises(ConfigurationError, match="the known settings are acme_api_key, sandbox"):
        plugins.gateways()


def test_a_declared_setting_reaches_the_plugin() -> None:
    plugins = Plugins(
        entry_points=False,
        plugins=[acme_plugin()],
        settings={"acme_api_key": "k", "sandbox": False},
    )
    assert sorted(plugins.gateways()) == ["acme"]


def test_the_sandbox_setting_must_be_a_bool() -> None:
    with pytest.raises(ConfigurationError) as caught:
        BillingEngine(store="memory://", settings={"sandbox": "false"})
    assert str(caught.value) == "must be True or False, not 'false' @ $.settings.sandbox"


def test_a_plugin_declaring_settings_badly_is_named() -> None:
    plugins = Plugins(entry_points=False, plugins=[acme_plugin(keys=["acme_api_key"])])
    with pytest.raises(PluginError, match="not a mapping of setting name to description"):
        plugins.gateways()


def test_settings_given_beside_plugins_are_refused_not_ignored() -> None:
    with pytest.raises(ConfigurationError, match="give the settings to Plugins"):
        BillingEngine(
            store="memory://", plugins=Plugins(entry_points=False), settings={"sandbox": False}
        )


@given(
    declared=st.lists(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), max_size=4),
    given_keys=st.lists(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), max_size=4),
)
def test_settings_pass_exactly_when_every_key_is_declared(
    declared: list[str], given_keys: list[str]
) -> None:
    plugin = acme_plugin(keys=dict.fromkeys(declared, "declared"))
    plugins = Plugins(entry_points=False, plugins=[plugin], settings=dict.fromkeys(given_keys, 1))
    unknown = [key for key in given_keys if key not in {*declared, "sandbox"}]
    if not unknown:
        plugins.check_settings()
        return
    with pytest.raises(ConfigurationError) as caught:
        plugins.check_settings()
    assert caught.value.value == unknown[0]
    assert f"unknown setting {unknown[0]!r}" in str(caught.value)


# -- a missing gateway ---------------------------------------------------------------------------
def test_no_gateway_fails_at_construction_not_at_the_first_payment() -> None:
    with pytest.raises(PluginError, match="no payment gateway is configured"):
        BillingEngine(store="memory://", settings={"sandbox": False})


def test_naming_the_sandbox_when_it_is_off_fails_at_construction() -> None:
    with pytest.raises(PluginError, match=r"no payment gateway named 'sandbox'.*installed: none"):
        BillingEngine(store="memory://", settings={"sandbox": False}, gateway="sandbox")


# -- gateway modes ---------------------------------------------------------------------------------
def test_falling_back_on_the_sandbox_is_logged_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an INFO line, never a warning
        with caplog.at_level(logging.INFO, logger=ENGINE_LOG):
            engine = BillingEngine(store="memory://")
    assert engine.gateway_mode is GatewayMode.SANDBOX
    assert str(engine.gateway_mode) == "sandbox"
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == ENGINE_LOG] == [
        (
            logging.INFO,
            "no gateway named: using the built-in sandbox gateway 'sandbox', payments are fake "
            "(pass gateway='sandbox' to say so, or name your gateway plugin)",
        )
    ]


@pytest.mark.parametrize(
    "make",
    [
        lambda: BillingEngine(store="memory://", gateway="sandbox"),
        lambda: BillingEngine(
            store="memory://", plugins=Plugins(entry_points=False, default_gateway="sandbox")
        ),
    ],
    ids=["gateway=sandbox", "default_gateway=sandbox"],
)
def test_naming_the_sandbox_is_quiet(make: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=ENGINE_LOG):
        engine = make()
    assert engine.gateway_mode is GatewayMode.SANDBOX
    assert engine.gateway.name == "sandbox"
    assert not [r for r in caplog.records if r.name == ENGINE_LOG]


def test_a_plugin_gateway_is_live(caplog: pytest.LogCaptureFixture) -> None:
    plugins = Plugins(
        entry_points=False,
        plugins=[acme_plugin()],
        settings={"acme_api_key": "k", "sandbox": False},
    )
    with caplog.at_level(logging.INFO, logger=ENGINE_LOG):
        engine = BillingEngine(store="memory://", plugins=plugins)
    assert engine.gateway_mode is GatewayMode.LIVE
    assert engine.gateway.name == "acme"
    assert not caplog.records


def test_gateway_mode_is_about_the_gateways_class() -> None:
    assert gateway_mode(SandboxGateway()) is GatewayMode.SANDBOX
    assert gateway_mode(SandboxGateway(name="acme")) is GatewayMode.SANDBOX  # fake money still
    assert isinstance(AcmeGateway(), PaymentGateway)
    assert gateway_mode(AcmeGateway()) is GatewayMode.LIVE
