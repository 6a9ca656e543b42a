"""The SQL store's collection tables (migration 0004): wallets and blocklist entries.

Kept apart from ``sql_store`` (which would grow past its size) as a mixin of its session:

* ``wallets``: one row per customer (``customer_id`` unique), the ``Wallet`` whole as JSON;
* ``blocklist``: one row per entry (``id`` unique), its kind and normalised value beside the
  JSON (indexed together, for hosts that query them), lifted entries kept.

Both live on ``sql_schema.metadata``, so the migrated schema is checked against them like every
other table (``tests/test_stores.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from ..blocklists import BlocklistEntry
from ..model import Customer
from ..wallets import Wallet
from ._store_common import check_instance
from .sql_schema import customers, encode, metadata

__all__ = ["CollectionSessionMixin", "blocklist", "wallets"]

T = TypeVar("T")


def _seq() -> sa.Column[int]:
    return sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True)


wallets = sa.Table(
    "wallets",
    metadata,
    _seq(),
    sa.Column("customer_id", sa.String, nullable=False, unique=True),
    sa.Column("data", sa.Text, nullable=False),
)

blocklist = sa.Table(
    "blocklist",
    metadata,
    _seq(),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("value", sa.String, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Index("ix_blocklist_kind_value", "kind", "value"),
)


class CollectionSessionMixin:
    """Wallet, blocklist and customer-list methods of ``_SqlSession``."""

    if TYPE_CHECKING:

        def _get(
            self, table: sa.Table, key: str, value: str, cls: type[T], lock: bool
        ) -> T | None: ...
        def _upsert(self, table: sa.Table, key: str, values: dict[str, Any]) -> None: ...
        def _list(self, table: sa.Table, cls: type[T], *where: Any) -> list[T]: ...

    def list_customers(self) -> list[Customer]:
        return self._list(customers, Customer)

    def get_wallet(self, customer_id: str, *, lock: bool = False) -> Wallet | None:
        return self._get(wallets, "customer_id", customer_id, Wallet, lock)

    def put_wallet(self, wallet: Wallet) -> None:
        check_instance(wallet, Wallet, "wallet")
        data = encode(wallet, "wallet")
        self._upsert(wallets, "customer_id", {"customer_id": wallet.customer_id, "data": data})

    def get_blocklist_entry(self, entry_id: str) -> BlocklistEntry | None:
        return self._get(blocklist, "id", entry_id, BlocklistEntry, False)

    def put_blocklist_entry(self, entry: BlocklistEntry) -> None:
        check_instance(entry, BlocklistEntry, "entry")
        values = {
            "id": entry.id,
            "kind": entry.kind.value,
            "value": entry.value,
            "data": encode(entry, "entry"),
        }
        self._upsert(blocklist, "id", values)

    def list_blocklist(self) -> list[BlocklistEntry]:
        return self._list(blocklist, BlocklistEntry)
