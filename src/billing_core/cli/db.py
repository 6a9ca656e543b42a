"""``billing-core db upgrade`` and ``billing-core db current``: the SQL store's schema.

``upgrade`` runs the Alembic migrations shipped in ``billing_core/plugins/migrations`` up to the
latest revision (idempotent; concurrent upgrades wait for each other). ``current`` prints the
database's revision and whether it is the latest, and exits 1 when it is not. They are the only
commands that need no gateway and the only one (``upgrade``) that changes a schema.
"""

from __future__ import annotations

import argparse

from ..errors import ConfigurationError
from ..plugins.builtins import SQL_SCHEMES
from ..plugins.sql_store import upgrade
from .runtime import Exit, add_command, store_url
from .schema import SchemaRevision, schema_revision

__all__ = ["register"]


def _sql_url(args: argparse.Namespace) -> str:
    url = store_url(args)
    if url.partition("://")[0].partition("+")[0].lower() not in SQL_SCHEMES:
        raise ConfigurationError(
            "db commands work on a SQL store (sqlite:///... or postgresql+psycopg://...)",
            field="store",
        )
    return url


def _describe(revision: SchemaRevision) -> str:
    state = "the latest" if revision.latest else f"not the latest ({revision.head})"
    return f"revision {revision.current or 'none'}, {state}"


def _current(args: argparse.Namespace) -> int:
    revision = schema_revision(_sql_url(args))
    print(f"{revision.url}: {_describe(revision)}")
    return Exit.OK if revision.latest else Exit.DENIED


def _upgrade(args: argparse.Namespace) -> int:
    url = _sql_url(args)
    before = schema_revision(url)
    if before.latest:
        print(f"{before.url}: already at revision {before.head}, the latest")
        return Exit.OK
    upgrade(url)
    after = schema_revision(url)
    print(f"{after.url}: upgraded from revision {before.current or 'none'} to {after.current}")
    return Exit.OK if after.latest else Exit.FAILED


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = add_command(commands, "db", summary="The SQL store's schema: upgrade, current.")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    add_command(
        actions, "upgrade", summary="Migrate the database to the latest revision."
    ).set_defaults(handler=_upgrade)
    add_command(
        actions, "current", summary="Print the database's revision and whether it is the latest."
    ).set_defaults(handler=_current)
