"""The built-in plugins, registered through the same hooks as any third-party plugin.

* ``billing_core_store``: ``memory://`` opens a ``MemoryStore``; ``sqlite:///path`` (the embedded
  default), ``postgresql://...`` and their ``+driver`` forms open a ``SqlStore`` on SQLAlchemy
  Core. The SQL store is imported only when asked for, so SQLAlchemy stays optional. These
  implementations are ``trylast``: a plugin may take over a scheme.
* ``billing_core_payment_gateways``: the ``SandboxGateway`` named ``sandbox``, on the engine's
  clock.
* ``billing_core_certificate_providers``: the ``SandboxCertificateProvider`` named ``sandbox``.

The sandboxes are always there, so an example runs with no set-up. A production host turns them
off with the setting ``sandbox=False`` (then a missing gateway plugin is a ``PluginError``, never
a silent sandbox).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .hookspecs import Clock, hookimpl
from .protocols import CertificateProvider, PaymentGateway, Store

__all__ = [
    "SQL_SCHEMES",
    "billing_core_certificate_providers",
    "billing_core_payment_gateways",
    "billing_core_store",
]

SQL_SCHEMES = frozenset({"sqlite", "postgresql", "postgres"})
"""URL schemes (before any ``+driver``) the built-in SQL store opens."""


def _sandbox_enabled(settings: Mapping[str, Any]) -> bool:
    return bool(settings.get("sandbox", True))


@hookimpl(trylast=True)
def billing_core_store(url: str, options: Mapping[str, Any]) -> Store | None:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "memory":
        from .memory_store import MemoryStore

        return MemoryStore(**options)
    if scheme.partition("+")[0] in SQL_SCHEMES:
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
