"""The plugin manager: finds the plugins, resolves gateways, providers and stores, emits events.

``Plugins`` wraps a ``pluggy.PluginManager("billing_core")`` that knows the hooks of
``hookspecs``. It registers the built-ins (``billing_core.plugins.builtins``) and then the
third-party plugins of the ``billing_core`` entry-point group, both optional::

    plugins = Plugins(clock=engine_clock)                 # built-ins + installed plugins
    plugins = Plugins(entry_points=False, plugins=[mine]) # tests: only what they register
    gateway = plugins.gateway()                           # the only one, or the chosen one
    store = plugins.store("sqlite:///billing.sqlite3")
    plugins.emit(RefundIssued(...))                       # calls billing_core_refund_issued

Gateways and certificate providers are collected once per plugin and kept (a sandbox keeps its
ledger for the lifetime of the ``Plugins``); ``store()`` opens a new store on every call. Every
set-up problem is a ``PluginError`` that says what to do: no gateway or store configured, two
plugins offering one name (both plugins are named), a name nobody offers.

**Settings are checked.** Each plugin declares the keys it reads (``billing_core_known_settings``;
the built-ins declare ``sandbox``). Before the provider hooks first see ``settings``, a key no
registered plugin declares is a ``ConfigurationError`` naming the key and the known ones, so a
misspelt ``{"sandbx": False}`` stops the host instead of leaving payments fake.
"""

from __future__ import annotations

import difflib
import enum
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeGuard, TypeVar

import pluggy

from ..errors import ConfigurationError, InvalidTypeError, PluginError
from ..model import Customer
from . import builtins, hookspecs
from .events import Event
from .hookspecs import PROJECT, Clock
from .protocols import CertificateProvider, GatewayRequest, PaymentGateway, Store

__all__ = [
    "BUILTINS_NAME",
    "GatewayMode",
    "Plugins",
    "gateway_mode",
    "get_plugin_manager",
    "redact_url",
]

BUILTINS_NAME = "billing_core.builtins"
"""The name the built-in plugins are registered under."""

_T = TypeVar("_T")


class GatewayMode(enum.StrEnum):
    """Whether money is real: what ``BillingEngine.gateway_mode`` answers."""

    SANDBOX = "sandbox"  # the built-in SandboxGateway: payments are fake
    LIVE = "live"  # any other gateway: a plugin's, or one the host passed in


def gateway_mode(gateway: PaymentGateway) -> GatewayMode:
    """``SANDBOX`` for the built-in sandbox gateway (or any ``SandboxGateway``), else ``LIVE``."""
    from .sandbox_gateway import SandboxGateway

    return GatewayMode.SANDBOX if isinstance(gateway, SandboxGateway) else GatewayMode.LIVE


def get_plugin_manager(
    *, entry_points: bool = True, builtins_plugin: bool = True
) -> pluggy.PluginManager:
    """A ``pluggy.PluginManager`` for billing_core's hooks, with the built-ins registered and the
    third-party plugins of the ``billing_core`` entry-point group loaded (each optional)."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    if builtins_plugin:
        pm.register(builtins, name=BUILTINS_NAME)
    if entry_points:
        pm.load_setuptools_entrypoints(PROJECT)
    return pm


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _is_gateway(obj: object) -> TypeGuard[PaymentGateway]:
    return isinstance(obj, PaymentGateway)


def _is_provider(obj: object) -> TypeGuard[CertificateProvider]:
    return isinstance(obj, CertificateProvider)


class Plugins:
    """billing_core's plugins: what they provide and the events they receive.

    ``clock`` is the engine's clock, handed to provider hooks (the sandbox gateway settles on
    it); ``settings`` are the host's plugin settings, handed to them too (``sandbox=False`` turns
    the built-in sandboxes off; a key no plugin declares is refused, see ``check_settings``).
    ``default_gateway`` and ``default_certificate_provider`` name the ones to use when a call
    names none and no ``billing_core_choose_gateway`` decides.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        settings: Mapping[str, Any] | None = None,
        plugins: Iterable[object] = (),
        entry_points: bool = True,
        builtins: bool = True,
        default_gateway: str | None = None,
        default_certificate_provider: str | None = None,
    ) -> None:
        self.clock: Clock = clock or _wall_clock
        self.settings: Mapping[str, Any] = dict(settings or {})
        self.default_gateway = default_gateway
        self.default_certificate_provider = default_certificate_provider
        self._lock = threading.RLock()
        self._provided: dict[tuple[str, str], list[object]] = {}
        self.pm = get_plugin_manager(entry_points=entry_points, builtins_plugin=builtins)
        for plugin in plugins:
            self.register(plugin)

    def __repr__(self) -> str:
        return f"<Plugins {', '.join(self.plugin_names())}>"

    @property
    def hook(self) -> pluggy.HookRelay:
        """The hooks, to call one directly: ``plugins.hook.billing_core_store(url=..., ...)``."""
        return self.pm.hook

    # -- registration --------------------------------------------------------------------------
    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin (a module, a class or an instance with hook implementations)."""
        try:
            registered = self.pm.register(plugin, name=name)
        except ValueError as error:  # pluggy: this name or this object is registered already
            raise PluginError(f"cannot register plugin {name or plugin!r}: {error}") from None
        except pluggy.PluginValidationError as error:
            raise PluginError(f"plugin {error.plugin!r} does not fit the hooks: {error}") from None
        if registered is None:
            raise PluginError(f"plugin {name or plugin!r} is blocked")
        return registered

    def unregister(self, name: str) -> None:
        """Remove a plugin by name, with the gateways and providers it gave."""
        with self._lock:
            self.pm.unregister(name=name)
            for key in [k for k in self._provided if k[1] == name]:
                del self._provided[key]

    def plugin_names(self) -> list[str]:
        """The names of the registered plugins, in registration order."""
        return [name for name, _ in self.pm.list_name_plugin()]

    # -- settings --------------------------------------------------------------------------------
    def known_settings(self) -> dict[str, str]:
        """The settings keys the registered plugins declare, each with its description."""
        known: dict[str, str] = {}
        for impl in self.pm.hook.billing_core_known_settings.get_hookimpls():
            declared = impl.function()
            if not isinstance(declared, Mapping) or not all(
                isinstance(key, str) and key for key in declared
            ):
                raise PluginError(
                    f"plugin {self._describe(impl.plugin_name)} returned {declared!r} from "
                    "billing_core_known_settings, which is not a mapping of setting name to "
                    "description"
                )
            known.update({key: str(text) for key, text in declared.items()})
        return known

    def check_settings(self) -> None:
        """Refuse a settings key that no registered plugin declares: a ``ConfigurationError``
        naming the key, the closest known one and all of them. Runs before the provider hooks
        are first called; a host may call it earlier, once its plugins are registered."""
        known = self.known_settings()
        for key in self.settings:
            if key in known:
                continue
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigurationError(
                f"unknown setting {key!r}{hint}; the known settings are "
                f"{', '.join(sorted(known)) or 'none'} (a plugin declares the settings it reads "
                "with billing_core_known_settings)",
                field="settings",
                value=key,
            )

    # -- gateways and certificate providers ----------------------------------------------------
    def gateways(self) -> dict[str, PaymentGateway]:
        """Every payment gateway the plugins provide, by name."""
        return self._collect("billing_core_payment_gateways", "payment gateway", _is_gateway)

    def gateway(
        self,
        name: str | None = None,
        *,
        request: GatewayRequest | None = None,
        customer: Customer | None = None,
    ) -> PaymentGateway:
        """The gateway named ``name``; without one, the gateway ``billing_core_choose_gateway``
        picks for ``request``, else ``default_gateway``, else the only one installed."""
        gateways = self.gateways()
        chooser = "the name asked for"
        if name is None and request is not None:
            name = self.pm.hook.billing_core_choose_gateway(
                request=request, customer=customer, gateways=gateways
            )
            chooser = "billing_core_choose_gateway"
        if name is None:
            name, chooser = self.default_gateway, "default_gateway"
        return self._pick(
            gateways,
            name,
            chooser,
            "payment gateway",
            "default_gateway or implement billing_core_choose_gateway",
        )

    def choose_gateway(
        self,
        request: GatewayRequest,
        customer: Customer | None,
        gateways: Mapping[str, PaymentGateway],
    ) -> str | None:
        """What ``billing_core_choose_gateway`` answers for ``request`` among ``gateways`` (the
        engine's), or None when no plugin decides. The engine asks it for every charge."""
        name: str | None = self.pm.hook.billing_core_choose_gateway(
            request=request, customer=customer, gateways=gateways
        )
        return name

    def certificate_providers(self) -> dict[str, CertificateProvider]:
        """Every certificate provider the plugins provide, by name."""
        return self._collect(
            "billing_core_certificate_providers", "certificate provider", _is_provider
        )

    def certificate_provider(self, name: str | None = None) -> CertificateProvider:
        """The provider named ``name``, else ``default_certificate_provider``, else the only one."""
        chooser = "the name asked for"
        if name is None:
            name, chooser = self.default_certificate_provider, "default_certificate_provider"
        return self._pick(
            self.certificate_providers(),
            name,
            chooser,
            "certificate provider",
            "default_certificate_provider",
        )

    # -- stores --------------------------------------------------------------------------------
    def store(self, config: str | Mapping[str, Any] | None = None, **options: Any) -> Store:
        """Open the store a URL names (``"memory://"``, ``"sqlite:///billing.sqlite3"``,
        ``"postgresql+psycopg://..."``), or settings ``{"url": ..., **options}``.

        The first plugin that handles the URL opens it; ``PluginError`` when none does.
        """
        if config is None:
            raise PluginError(
                "no store is configured: pass a URL such as 'memory://' or "
                "'sqlite:///billing.sqlite3' (or settings with a 'url')",
                field="store",
            )
        if isinstance(config, str):
            url, settings = config, dict(options)
        else:
            settings = {**config, **options}
            url = settings.pop("url", None)
        if not isinstance(url, str) or not url:
            raise PluginError("must be a non-empty store URL", field="store.url", value=url)
        store = self.pm.hook.billing_core_store(url=url, options=settings)
        if store is None:
            raise PluginError(
                f"no plugin opens a store for {redact_url(url)!r}: the built-in schemes are "
                "memory://, sqlite:///path and postgresql://...; a plugin can add others "
                "through billing_core_store",
                field="store.url",
            )
        if not isinstance(store, Store):
            raise PluginError(
                f"billing_core_store returned {store!r} for {redact_url(url)!r}, "
                "which is not a Store",
                field="store.url",
            )
        return store

    # -- events --------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        """Hand ``event`` to its hook (``type(event).hook``) on every plugin implementing it."""
        hook_name = type(event).hook if isinstance(event, Event) else ""
        if not hook_name:
            raise InvalidTypeError(
                f"must be an event from billing_core.plugins.events, not {type(event).__name__}",
                field="event",
                value=event,
            )
        getattr(self.pm.hook, hook_name)(event=event)

    # -- internals -----------------------------------------------------------------------------
    def _describe(self, plugin_name: str) -> str:
        plugin = self.pm.get_plugin(plugin_name)
        for candidate, dist in self.pm.list_plugin_distinfo():
            if candidate is plugin:
                return f"{plugin_name!r} (from {dist.project_name} {dist.version})"
        return repr(plugin_name)

    def _collect(
        self, hook_name: str, kind: str, check: Callable[[object], TypeGuard[_T]]
    ) -> dict[str, _T]:
        """Call each plugin's implementation of a provider hook once, and index the results by
        name, refusing two with one name."""
        kwargs: dict[str, object] = {"clock": self.clock, "settings": self.settings}
        found: dict[str, tuple[str, _T]] = {}
        with self._lock:
            self.check_settings()
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():  # in registration order
                if impl.wrapper or impl.hookwrapper:
                    raise PluginError(
                        f"plugin {self._describe(impl.plugin_name)} wraps {hook_name}: "
                        "provider hooks take no wrappers"
                    )
                key = (hook_name, impl.plugin_name)
                if key not in self._provided:
                    result = impl.function(*(kwargs[arg] for arg in impl.argnames))
                    self._provided[key] = list(result or ())
                for provided in self._provided[key]:
                    if not check(provided):
                        raise PluginError(
                            f"plugin {self._describe(impl.plugin_name)} returned {provided!r} "
                            f"from {hook_name}, which is not a {kind}"
                        )
                    name = getattr(provided, "name", None)
                    if not isinstance(name, str) or not name:
                        raise PluginError(
                            f"plugin {self._describe(impl.plugin_name)} returned a {kind} "
                            f"without a name: {provided!r}"
                        )
                    if name in found:
                        raise PluginError(
                            f"two plugins provide a {kind} named {name!r}: "
                            f"{self._describe(found[name][0])} and "
                            f"{self._describe(impl.plugin_name)}; uninstall or rename one"
                        )
                    found[name] = (impl.plugin_name, provided)
        return {name: provided for name, (_, provided) in found.items()}

    @staticmethod
    def _pick(
        available: Mapping[str, _T], name: str | None, chooser: str, kind: str, setting: str
    ) -> _T:
        if name is not None:
            if name in available:
                return available[name]
            installed = ", ".join(sorted(available)) or "none"
            raise PluginError(
                f"no {kind} named {name!r} (from {chooser}); installed: {installed}",
                field=kind.replace(" ", "_"),
                value=name,
            )
        if len(available) == 1:
            return next(iter(available.values()))
        if not available:
            raise PluginError(
                f"no {kind} is configured: install a plugin that provides one (entry-point "
                f"group {PROJECT!r}) or register one; the built-in sandbox is off",
                field=kind.replace(" ", "_"),
            )
        raise PluginError(
            f"{len(available)} {kind}s are installed ({', '.join(sorted(available))}) and "
            f"none was chosen: pass a name or set {setting}",
            field=kind.replace(" ", "_"),
        )


_CREDENTIALS = re.compile(r"(://[^:/@]*:)[^@]*@")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit for an error message."""
    return _CREDENTIALS.sub(r"\1***@", url)
