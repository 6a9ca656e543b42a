"""Alembic environment of the SQL store's schema.

Run programmatically by ``billing_core.plugins.sql_store.upgrade`` (no ``alembic.ini`` needed):
the caller opens a connection, begins a transaction and passes the connection as
``config.attributes["connection"]``. The revision history is kept in its own table,
``billing_core_alembic_version``, so a host application's own Alembic history can share the
database.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

VERSION_TABLE = "billing_core_alembic_version"


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "billing_core migrations run on a connection passed as "
            'config.attributes["connection"]; use billing_core.plugins.sql_store.upgrade(url)'
        )
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table=VERSION_TABLE,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("billing_core migrations run online only (on a live connection)")
run_migrations()
