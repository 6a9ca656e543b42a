"""Typed store errors and hostile ids (issue 11, observation 7).

Every store and driver error reaches the caller as a ``BillingError`` that says what to do
(``StoreUnavailableError``, ``SchemaVersionError``, ``InvalidValueError`` for a value the database
refuses); ids and idempotency keys are checked by one validator (``rules.limits.identifier``)
before anything is written, so a hostile string names its field and leaves no key stuck.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_core import (
    BillingEngine,
    BillingError,
    Customer,
    InvalidTypeError,
    InvalidValueError,
    Money,
    SchemaVersionError,
    StoreError,
    StoreUnavailableError,
)
from billing_core.engine import ChargeOutcome
from billing_core.plugins.manager import Plugins
from billing_core.plugins.sql_store import SqlStore
from billing_core.rules import limits
from billing_core.rules.permissions import Actor
from billing_core.testing.clock import ManualClock

ADMIN = Actor(id="ada", role="admin")
START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
TEN = Money("10.00", "USD")

HOSTILE = {
    "a NUL byte": "c1\x00; DROP TABLE idempotency",
    "9 kB": "k" * 9000,
    "a lone surrogate": "key-\ud800",
    "a control character": "key\x1b[31m",
    "a line break": "key\nsecond line",
}


def _engine(store: str | SqlStore) -> BillingEngine:
    clock = ManualClock(START)
    engine = BillingEngine(
        store=store, clock=clock, plugins=Plugins(clock=clock, entry_points=False)
    )
    engine.add_customer(Customer(id="c1", company="Acme"), actor=ADMIN)
    return engine


def _url(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BillingEngine]:
    made = _engine(_url(request, tmp_path, str(request.param)))
    yield made
    made.store.close()


def _keys(engine: BillingEngine, key: str) -> object:
    with engine.store.session() as s:
        return s.get_idempotency(key) if len(key) <= limits.MAX_ID_LENGTH else None


# -- hostile ids -------------------------------------------------------------------------------
@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_a_hostile_idempotency_key_is_refused_naming_it(engine: BillingEngine, what: str) -> None:
    key = HOSTILE[what]
    with pytest.raises(InvalidValueError, match=r"@ \$\.idempotency_key$"):
        engine.charge("c1", TEN, idempotency_key=key, actor=ADMIN)
    assert engine.transactions() == []
    assert engine.charge("c1", TEN, idempotency_key="k", actor=ADMIN).outcome is (
        ChargeOutcome.CHARGED
    )


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_a_hostile_id_is_refused_and_leaves_no_key(engine: BillingEngine, what: str) -> None:
    with pytest.raises(InvalidValueError, match=r"@ \$\.transaction_id$"):
        engine.refund_transaction(HOSTILE[what], amount=TEN, idempotency_key="r", actor=ADMIN)
    with pytest.raises(InvalidValueError, match=r"@ \$\.customer_id$"):
        engine.charge(HOSTILE[what], TEN, idempotency_key="c", actor=ADMIN)
    with engine.store.session() as s:
        assert s.get_idempotency("r") is None and s.get_idempotency("c") is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_one_validator_accepts_exactly_the_printable_ids(text: str) -> None:
    printable = all(c.isprintable() and not "\ud800" <= c <= "\udfff" for c in text)
    good = bool(text.strip()) and len(text) <= limits.MAX_ID_LENGTH and printable
    try:
        assert limits.identifier(text, "id") == text
        assert good, repr(text)
    except InvalidValueError:
        assert not good
    except InvalidTypeError:
        assert not text.strip()


# -- an unusable store -------------------------------------------------------------------------
def test_a_refused_connection_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailableError, match="check that it is running"):
        SqlStore("postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2")


def test_a_read_only_sqlite_file_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "billing.sqlite3"
    _engine(f"sqlite:///{path}").store.close()
    store = SqlStore(f"sqlite:///file:{path}?mode=ro&uri=true", create=False)
    engine = BillingEngine(store=store, clock=ManualClock(START))
    with pytest.raises(StoreUnavailableError, match="writable"):
        engine.charge("c1", TEN, idempotency_key="k", actor=ADMIN)
    store.close()


def test_a_deleted_sqlite_file_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "billing.sqlite3"
    engine = _engine(f"sqlite:///{path}")
    engine.store.close()
    for leftover in tmp_path.glob("billing.sqlite3*"):
        leftover.unlink()
    with pytest.raises(StoreUnavailableError, match="no such table"):
        engine.charge("c1", TEN, idempotency_key="k", actor=ADMIN)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_schema_at_a_newer_revision_is_a_schema_version_error(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    url = _url(request, tmp_path, kind)
    store = SqlStore(url)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE billing_core_alembic_version SET version_num = '0099'"))
    store.close()
    with pytest.raises(SchemaVersionError, match="newer billing_core") as raised:
        SqlStore(url)
    assert isinstance(raised.value, StoreError) and isinstance(raised.value, BillingError)
