"""What every command shares: the global options, the exit codes, and opening the store and the
engine from them.

Global options (accepted before or after the command): ``--store URL`` (else the environment
variable ``BILLING_CORE_STORE``), ``--gateway NAME`` (else ``BILLING_CORE_GATEWAY``),
``--plugin MODULE`` (register a plugin module by its import path, beside the ones installed
through entry points; repeatable), ``--setting KEY=VALUE`` (a plugin setting, the value read as
JSON when it parses, so ``sandbox=false`` is ``False``; repeatable) and ``-v`` (log at INFO).

A SQL store is opened without migrating it (``create=False``) and its schema must be at the
latest revision, else the command stops and says to run ``billing-core db upgrade``: only that
command changes a schema. Commands that move or record money (``worker``, ``reconcile``) need a
named gateway; the others take the plugins' default.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from ..engine import BillingEngine
from ..errors import ConfigurationError
from ..plugins.builtins import SQL_SCHEMES
from ..plugins.manager import Plugins
from ..plugins.protocols import Store
from .schema import require_latest

__all__ = [
    "GATEWAY_ENV",
    "STORE_ENV",
    "Exit",
    "add_command",
    "add_global_options",
    "open_engine",
    "open_plugins",
    "open_store",
    "store_url",
]

STORE_ENV = "BILLING_CORE_STORE"
GATEWAY_ENV = "BILLING_CORE_GATEWAY"


class Exit(enum.IntEnum):
    """The exit codes of every command."""

    OK = 0
    DENIED = 1  # a business denial, a record not found, a schema behind the latest revision
    USAGE = 2  # bad usage or bad input: the BillingError's message with its $.path
    FAILED = 3  # something broke (a database down, a step that raised): see the log


def add_global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The global options. The top-level parser sets the defaults; each command's parser repeats
    the options with ``SUPPRESS`` so they may also follow the command."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--store",
        metavar="URL",
        default=default(None),
        help=f"the store: sqlite:///billing.sqlite3, postgresql+psycopg://... (env {STORE_ENV})",
    )
    group.add_argument(
        "--gateway",
        metavar="NAME",
        default=default(None),
        help=f"the payment gateway: 'sandbox' for fake payments, or a plugin's (env {GATEWAY_ENV})",
    )
    group.add_argument(
        "--plugin",
        metavar="MODULE",
        action="append",
        dest="plugins",
        default=default([]),
        help="register a plugin module by import path (repeatable)",
    )
    group.add_argument(
        "--setting",
        metavar="KEY=VALUE",
        action="append",
        dest="settings",
        default=default([]),
        help="a plugin setting; VALUE is read as JSON when it parses (repeatable)",
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=default(False), help="log at INFO"
    )


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, *, summary: str
) -> argparse.ArgumentParser:
    """A command's parser, with ``--help`` and the global options (which may follow it)."""
    parser = commands.add_parser(name, help=summary, description=summary)
    add_global_options(parser, defaults=False)
    return parser


def store_url(args: argparse.Namespace) -> str:
    url = args.store or os.environ.get(STORE_ENV)
    if not url:
        raise ConfigurationError(
            f"no store: pass --store URL or set {STORE_ENV} (e.g. sqlite:///billing.sqlite3)",
            field="store",
        )
    return str(url)


def _settings(pairs: list[str]) -> Mapping[str, Any]:
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigurationError(
                f"must be KEY=VALUE, not {pair!r}", field="setting", value=pair
            )
        try:
            settings[key] = json.loads(text)
        except ValueError:
            settings[key] = text
    return settings


def open_plugins(args: argparse.Namespace) -> Plugins:
    """The plugins: entry points, the built-ins and every ``--plugin`` module."""
    plugins = Plugins(settings=_settings(args.settings))
    for name in args.plugins:
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            raise ConfigurationError(
                f"cannot import plugin module {name!r}: {error}", field="plugin", value=name
            ) from None
        plugins.register(module, name=name)
    plugins.check_settings()
    return plugins


def open_store(url: str, plugins: Plugins) -> Store:
    """Open the store without migrating it; a SQL schema must be at the latest revision."""
    scheme = url.partition("://")[0].partition("+")[0].lower()
    if scheme not in SQL_SCHEMES:
        return plugins.store(url)
    require_latest(url)  # before the store opens: a missing SQLite file stays missing
    return plugins.store(url, create=False)


def open_engine(
    args: argparse.Namespace, *, gateway_required: bool, worker_id: str | None = None
) -> BillingEngine:
    """The engine the global options describe. ``gateway_required``: refuse to fall back on a
    default gateway (commands that move or record money name theirs)."""
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    gateway = args.gateway or os.environ.get(GATEWAY_ENV) or None
    if gateway_required and gateway is None:
        raise ConfigurationError(
            f"this command moves or records money: name the gateway with --gateway NAME (or "
            f"{GATEWAY_ENV}): 'sandbox' for fake payments, or your gateway plugin's name",
            field="gateway",
        )
    plugins = open_plugins(args)
    store = open_store(store_url(args), plugins)
    try:
        return BillingEngine(store=store, plugins=plugins, gateway=gateway, worker_id=worker_id)
    except BaseException:
        store.close()
        raise
