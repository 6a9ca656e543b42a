"""The SQL store's tables, as SQLAlchemy Core ``Table`` objects (the shape migration 0001 creates).

Every record is kept whole as its exact JSON form (``billing_core.serialization``) in a ``data``
text column: decimals keep their digits and trailing zeros, datetimes their offset and IANA zone.
Beside it sit the columns the store queries, orders or constrains on:

* ``seq``: an integer key in insertion order (an upsert keeps it), the order of every list;
* ids and foreign ids, states, domains, subscription ids (indexed where queried);
* ``*_utc`` instants in UTC (``UtcDateTime``) for range queries and claim order;
* on ``transactions``, the amount, refunded and reserved totals as exact integers at a per-row
  scale (``units_scale`` decimal places), so the database itself can CHECK
  ``refunded_units + reserved_units <= amount_units``.

``audit_log`` is append-only: a trigger rejects UPDATE and DELETE (on PostgreSQL also TRUNCATE).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from ..errors import InvalidAmountError
from ..model import Transaction

__all__ = [
    "AUDIT_TRIGGER_MESSAGE",
    "CHECK_REFUND_WITHIN_AMOUNT",
    "MAX_UNITS",
    "UtcDateTime",
    "audit_log",
    "certificates",
    "customers",
    "idempotency",
    "invoice_lines",
    "metadata",
    "refund_queue",
    "subscriptions",
    "transaction_units",
    "transactions",
    "usage_events",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}
CHECK_REFUND_WITHIN_AMOUNT = "ck_transactions_refund_within_amount"
AUDIT_TRIGGER_MESSAGE = "audit_log is append-only"
MAX_UNITS = 2**63 - 1


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware datetime stored as UTC: ``timestamptz`` on PostgreSQL, naive-UTC text on SQLite
    (fixed-width, so text order is time order). Reads back as an aware UTC datetime."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _seq() -> sa.Column[int]:
    # INTEGER PRIMARY KEY on SQLite (the rowid), BIGSERIAL on PostgreSQL.
    return sa.Column(
        "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True
    )


metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

customers = sa.Table(
    "customers",
    metadata,
    _seq(),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("reseller_id", sa.String, nullable=True),
    sa.Column("data", sa.Text, nullable=False),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    _seq(),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("customer_id", sa.String, nullable=False, index=True),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
)

certificates = sa.Table(
    "certificates",
    metadata,
    _seq(),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("domain", sa.String, nullable=False, index=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("customer_id", sa.String, nullable=True),
    sa.Column("data", sa.Text, nullable=False),
)

transactions = sa.Table(
    "transactions",
    metadata,
    _seq(),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("customer_id", sa.String, nullable=True, index=True),
    sa.Column("parent_id", sa.String, nullable=True, index=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("units_scale", sa.Integer, nullable=False),
    sa.Column("amount_units", sa.BigInteger, nullable=False),
    sa.Column("refunded_units", sa.BigInteger, nullable=False),
    sa.Column("reserved_units", sa.BigInteger, nullable=False),
    sa.Column("created_utc", UtcDateTime, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.CheckConstraint(
        "amount_units >= 0 AND refunded_units >= 0 AND reserved_units >= 0 AND units_scale >= 0",
        name="non_negative",
    ),
    sa.CheckConstraint("refunded_units + reserved_units <= amount_units", name="refund_within_amount"),
)

refund_queue = sa.Table(
    "refund_queue",
    metadata,
    _seq(),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("refund_transaction_id", sa.String, nullable=False),
    sa.Column("original_transaction_id", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("next_attempt_utc", UtcDateTime, nullable=True),
    sa.Column("claimed_by", sa.String, nullable=True),
    sa.Column("lease_until_utc", UtcDateTime, nullable=True),
    sa.Column("data", sa.Text, nullable=False),
    sa.Index("ix_refund_queue_state_next_attempt_utc", "state", "next_attempt_utc"),
)

usage_events = sa.Table(
    "usage_events",
    metadata,
    _seq(),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("subscription_id", sa.String, nullable=True),
    sa.Column("metric", sa.String, nullable=True),
    sa.Column("at_utc", UtcDateTime, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Index("ix_usage_events_subscription_id_at_utc", "subscription_id", "at_utc"),
)

invoice_lines = sa.Table(
    "invoice_lines",
    metadata,
    _seq(),
    sa.Column("subscription_id", sa.String, nullable=False, index=True),
    sa.Column("data", sa.Text, nullable=False),
)

idempotency = sa.Table(
    "idempotency",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("operation", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("created_utc", UtcDateTime, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("at_utc", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("subject_id", sa.String, nullable=False, index=True),
    sa.Column("data", sa.Text, nullable=False),
)


def _units(value: Decimal, scale: int) -> int:
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: Money refuses NaN and infinities
    magnitude = int("".join(map(str, digits)) or "0") * 10 ** (exponent + scale)
    return -magnitude if sign else magnitude


def transaction_units(txn: Transaction) -> dict[str, Any]:
    """The exact integer columns of a transaction: its three totals scaled by a common power of ten.

    ``19.99`` and ``0.005`` at scale 3 are ``19990`` and ``5``. The scale is the most decimal
    places any of the three carries, never less than 0.
    """
    amounts = (txn.amount.amount, txn.refunded.amount, txn.reserved.amount)
    scale = 0
    for a in amounts:
        exponent = a.as_tuple().exponent
        assert isinstance(exponent, int)
        scale = max(scale, -exponent)
    units = [_units(a, scale) for a in amounts]
    for name, u in zip(("amount", "refunded", "reserved"), units, strict=True):
        if abs(u) > MAX_UNITS:
            raise InvalidAmountError(
                f"has too many digits for the SQL store ({u} units at scale {scale} exceed 2**63)",
                field=f"transaction.{name}",
                value=getattr(txn, name),
            )
    return {
        "currency": txn.amount.currency,
        "units_scale": scale,
        "amount_units": units[0],
        "refunded_units": units[1],
        "reserved_units": units[2],
    }
