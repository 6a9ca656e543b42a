"""The built-in plugins, registered through the same hooks as any third-party plugin.

* ``billing_core_store``: ``memory://`` opens a ``MemoryStore``; ``sqlite:///path`` (the embedded
  default), ``postgresql://...`` and their ``+driver`` forms open a ``SqlStore`` on SQLAlchemy
  Core. SQLAlchemy and Alembic are in the base install, so SQLite works after a plain
  ``pip install billing_core``; a PostgreSQL URL needs its driver (the ``postgres`` extra), and
  without it the store answers a ``ConfigurationError`` saying which extra to install. These
  implementations are ``trylast``: a plugin may take over a scheme.
* ``billing_core_payment_gateways``: the ``SandboxGateway`` named ``sandbox``, on the engine's
  clock.
* ``billing_core_certificate_providers``: the ``SandboxCertificateProvider`` named ``sandbox``.

* ``billing_core_known_settings``: the one setting the built-ins read, ``sandbox`` (a bool).

The sandboxes are there unless the setting ``sandbox`` is ``False``, so an example runs with no
set-up. A production host turns them off (then a missing gateway plugin is a ``PluginError`` when
the engine is constructed, never a silent sandbox) and names its gateway; an engine that falls
back on the sandbox without being told says so (``BillingEngine.gateway_mode``, see
``docs/engine.md``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigurationError
from .hookspecs import Clock, hookimpl
from .protocols import CertificateProvider, PaymentGateway, Store

__all__ = [
    "SANDBOX_SETTING",
    "SQL_SCHEMES",
    "billing_core_certificate_providers",
    "billing_core_known_settings",
    "billing_core_payment_gateways",
    "billing_core_store",
]

SQL_SCHEMES = frozenset({"sqlite", "postgresql", "postgres"})
"""URL schemes (before any ``+driver``) the built-in SQL store opens."""

_DRIVERS = {"psycopg": "postgres", "psycopg2": "postgres"}
"""Database drivers the SQL store may need, and the billing_core extra that installs them."""

SANDBOX_SETTING = "sandbox"
"""The setting that turns the built-in sandbox gateway and certificate provider on (the default)
or off (``False``)."""


def _require_driver(url: str, scheme: str) -> None:
    """A clear error, naming the extra to install, when the URL's driver is missing."""
    base, _, driver = scheme.partition("+")
    if base in ("postgresql", "postgres"):
        driver = driver or "psycopg2"  # SQLAlchemy's default for a bare postgresql:// URL
    if driver in _DRIVERS and importlib.util.find_spec(driver) is None:
        raise ConfigurationError(
            f"the store URL needs the {driver!r} database driver, which is not installed: "
            f"pip install 'billing_core[{_DRIVERS[driver]}]'"
            + (" and use a postgresql+psycopg:// URL" if driver == "psycopg2" else ""),
            field="store",
            value=url.split("@")[-1],
        )


def _sandbox_enabled(settings: Mapping[str, Any]) -> bool:
    value = settings.get(SANDBOX_SETTING, True)
    if not isinstance(value, bool):  # bool("false") is True: never guess
        raise ConfigurationError(
            f"must be True or False, not {value!r}",
            field=f"settings.{SANDBOX_SETTING}",
            value=value,
        )
    return value


@hookimpl
def billing_core_known_settings() -> Mapping[str, str]:
    return {
        SANDBOX_SETTING: "True (default) offers the built-in sandbox gateway and certificate "
        "provider; False turns them off"
    }


@hookimpl(trylast=True)
def billing_core_store(url: str, options: Mapping[str, Any]) -> Store | None:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "memory":
        from .memory_store import MemoryStore

        return MemoryStore(**options)
    if scheme.partition("+")[0] in SQL_SCHEMES:
        _require_driver(url, scheme)
        from .sql_store import SqlStore

        return SqlStore(url, **options)
    return None


@hookimpl(trylast=True)
def billing_core_payment_gateways(
    clock: Clock, settings: Mapping[str, Any]
) -> Iterable[PaymentGateway]:
    if not _sandbox_enabled(settings):
        return []
    from .sandbox_gateway import SandboxGateway

    return [SandboxGateway(clock=clock)]


@hookimpl(trylast=True)
def billing_core_certificate_providers(
    settings: Mapping[str, Any],
) -> Iterable[CertificateProvider]:
    if not _sandbox_enabled(settings):
        return []
    from .sandbox_certificates import SandboxCertificateProvider

    return [SandboxCertificateProvider()]
