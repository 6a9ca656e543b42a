"""The initial schema: records, refund queue, usage, invoice lines, idempotency, audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

APPEND_ONLY = "audit_log is append-only"


def _seq() -> sa.Column[int]:
    # INTEGER PRIMARY KEY (the rowid) on SQLite, BIGSERIAL on PostgreSQL.
    return sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def _utc(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _keyed(name: str, *columns: sa.Column[object] | sa.Constraint) -> None:
    op.create_table(
        name,
        _seq(),
        sa.Column("id", sa.String, nullable=False),
        *columns,
        sa.Column("data", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("seq", name=f"pk_{name}"),
        sa.UniqueConstraint("id", name=f"uq_{name}_id"),
    )


def upgrade() -> None:
    _keyed("customers", sa.Column("reseller_id", sa.String, nullable=True))

    _keyed(
        "subscriptions",
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("state", sa.String, nullable=False),
    )
    op.create_index("ix_subscriptions_customer_id", "subscriptions", ["customer_id"])

    _keyed(
        "certificates",
        sa.Column("domain", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("customer_id", sa.String, nullable=True),
    )
    op.create_index("ix_certificates_domain", "certificates", ["domain"])

    _keyed(
        "transactions",
        sa.Column("customer_id", sa.String, nullable=True),
        sa.Column("parent_id", sa.String, nullable=True),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("units_scale", sa.Integer, nullable=False),
        sa.Column("amount_units", sa.BigInteger, nullable=False),
        sa.Column("refunded_units", sa.BigInteger, nullable=False),
        sa.Column("reserved_units", sa.BigInteger, nullable=False),
        _utc("created_utc"),
        sa.CheckConstraint(
            "amount_units >= 0 AND refunded_units >= 0 AND reserved_units >= 0 "
            "AND units_scale >= 0",
            name="ck_transactions_non_negative",
        ),
        sa.CheckConstraint(
            "refunded_units + reserved_units <= amount_units",
            name="ck_transactions_refund_within_amount",
        ),
    )
    op.create_index("ix_transactions_customer_id", "transactions", ["customer_id"])
    op.create_index("ix_transactions_parent_id", "transactions", ["parent_id"])

    _keyed(
        "refund_queue",
        sa.Column("refund_transaction_id", sa.String, nullable=False),
        sa.Column("original_transaction_id", sa.String, nullable=False),
        sa.Column("state", sa.String, nullable=False),
        _utc("next_attempt_utc", nullable=True),
        sa.Column("claimed_by", sa.String, nullable=True),
        _utc("lease_until_utc", nullable=True),
    )
    op.create_index(
        "ix_refund_queue_state_next_attempt_utc", "refund_queue", ["state", "next_attempt_utc"]
    )

    _keyed(
        "usage_events",
        sa.Column("subscription_id", sa.String, nullable=True),
        sa.Column("metric", sa.String, nullable=True),
        _utc("at_utc"),
    )
    op.create_index(
        "ix_usage_events_subscription_id_at_utc", "usage_events", ["subscription_id", "at_utc"]
    )

    op.create_table(
        "invoice_lines",
        _seq(),
        sa.Column("subscription_id", sa.String, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_invoice_lines"),
    )
    op.create_index("ix_invoice_lines_subscription_id", "invoice_lines", ["subscription_id"])

    op.create_table(
        "idempotency",
        sa.Column("key", sa.String, nullable=False),
        sa.Column("operation", sa.String, nullable=False),
        sa.Column("state", sa.String, nullable=False),
        _utc("created_utc"),
        sa.Column("data", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_idempotency"),
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        _utc("at_utc"),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("subject_id", sa.String, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_subject_id", "audit_log", ["subject_id"])
    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION billing_core_audit_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION '{APPEND_ONLY}' USING ERRCODE = 'restrict_violation'; "
            "END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION billing_core_audit_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION billing_core_audit_append_only()"
        )
    else:
        raise NotImplementedError(
            f"billing_core's SQL store supports sqlite and postgresql, not {dialect}"
        )


def downgrade() -> None:
    for table in (
        "audit_log",
        "idempotency",
        "invoice_lines",
        "usage_events",
        "refund_queue",
        "transactions",
        "certificates",
        "subscriptions",
        "customers",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS billing_core_audit_append_only()")
