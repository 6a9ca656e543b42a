"""The SQL store's schema revision: where a database is, and where the migrations end.

The revision is read through the migrations' own Alembic environment
(``billing_core/plugins/migrations/env.py``), so the version table it keeps is the one consulted.
``upgrade`` itself is ``billing_core.plugins.sql_store.upgrade``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..errors import ConfigurationError
from ..plugins.manager import redact_url
from ..plugins.sql_schema import is_memory_sqlite
from ..plugins.sql_store import MIGRATIONS, make_engine

__all__ = ["SchemaRevision", "head_revision", "require_latest", "schema_revision"]


@attrs.frozen(kw_only=True)
class SchemaRevision:
    """Where the database's schema is (``current``, ``None`` before the first upgrade) and the
    latest revision the installed billing_core ships (``head``)."""

    url: str
    current: str | None
    head: str

    @property
    def latest(self) -> bool:
        return self.current == self.head


def _config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return config


def head_revision() -> str:
    """The latest revision the installed billing_core's migrations reach."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(_config()).get_current_head())


def schema_revision(bind: str | Engine) -> SchemaRevision:
    """Read the database's revision (without changing anything) and the migrations' head."""
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    config = _config()
    script = ScriptDirectory.from_config(config)
    head = head_revision()
    if isinstance(bind, str) and _missing_sqlite_file(bind):  # reading must not create it
        shown = sa.make_url(bind).render_as_string(hide_password=True)
        return SchemaRevision(url=shown, current=None, head=head)
    engine = bind if isinstance(bind, Engine) else make_engine(bind)
    heads: list[str] = []

    def read(_revision: Any, context: Any) -> list[Any]:
        heads.extend(context.get_current_heads())
        return []

    try:
        with engine.connect() as conn, conn.begin():
            config.attributes["connection"] = conn
            with EnvironmentContext(config, script, fn=read):
                script.run_env()
    except sa.exc.OperationalError as error:
        raise ConfigurationError(
            f"cannot read the database: {error.orig}",
            field="store",
            value=redact_url(engine.url.render_as_string()),
        ) from None
    finally:
        if engine is not bind:
            engine.dispose()
    return SchemaRevision(
        url=engine.url.render_as_string(hide_password=True),
        current=heads[0] if heads else None,
        head=head,
    )


def _missing_sqlite_file(url: str) -> bool:
    u = sa.make_url(url)
    return (
        u.get_backend_name() == "sqlite"
        and not is_memory_sqlite(u)
        and not Path(str(u.database)).exists()
    )


def require_latest(bind: str | Engine) -> SchemaRevision:
    """The revision, when it is the latest; a ``ConfigurationError`` saying to upgrade when not."""
    revision = schema_revision(bind)
    if not revision.latest:
        raise ConfigurationError(
            f"the database's schema is at revision {revision.current or 'none'}, not the latest "
            f"{revision.head}: run `billing-core db upgrade` first",
            field="store",
        )
    return revision
