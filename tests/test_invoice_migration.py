"""Migration 0005 on a database made before it: the invoice lines already stored become pending
lines in their currency, and the new tables are there; its downgrade removes them again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from billing_core import InvoiceLine, Money
from billing_core.plugins import sql_store
from billing_core.plugins.sql_schema import encode
from billing_core.plugins.sql_store import SqlStore, upgrade

NEW = {"invoices", "invoice_counters", "credit_memos", "coupon_redemptions", "tax_profiles"}


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    else:
        yield request.getfixturevalue("postgres_schema_url")


def _revision_of(path: str) -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(sql_store.MIGRATIONS))
    for rev in script.walk_revisions():
        if rev.path is not None and rev.path.endswith(path):
            return str(rev.revision)
    raise AssertionError(f"no migration {path}")


def test_stored_lines_become_pending_in_their_currency(url: str) -> None:
    invoices_rev = _revision_of("_invoices.py")
    from alembic.script import ScriptDirectory

    before = ScriptDirectory(str(sql_store.MIGRATIONS)).get_revision(invoices_rev).down_revision
    assert isinstance(before, str)
    upgrade(url, before)
    engine = sql_store.make_engine(url)
    try:
        usd = InvoiceLine(description="seats", amount=Money("148.77", "USD"))
        jpy = InvoiceLine(description="usage", amount=Money("300", "JPY"))
        with engine.begin() as conn:
            assert not NEW & set(sa.inspect(conn).get_table_names())
            for sub, line in (("s-1", usd), ("s-2", jpy)):
                conn.execute(
                    sa.text("INSERT INTO invoice_lines (subscription_id, data) VALUES (:s, :d)"),
                    {"s": sub, "d": encode(line, "line")},
                )
        with SqlStore(url) as store:  # create=True: up to the latest revision
            assert set(sa.inspect(store.engine).get_table_names()) >= NEW
            with store.session() as s:
                assert s.pending_line_groups(up_to=date(2026, 1, 1)) == [
                    ("s-1", "USD"),
                    ("s-2", "JPY"),
                ]
                assert s.pending_invoice_lines("s-1") == [usd]
                taken = s.take_pending_lines(
                    ["s-2"], currency="JPY", up_to=date(2026, 1, 1), invoice_id="in-1"
                )
                assert taken == [jpy]
        from alembic import command
        from alembic.config import Config

        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(sql_store.MIGRATIONS))
            config.attributes["connection"] = conn
            command.downgrade(config, before)
        assert not NEW & set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
