"""Invoices: the invoices, a gapless number counter per prefix, credit memos, coupon
redemptions, tax profiles and pending invoice lines.

``invoice_lines`` gains ``currency`` (backfilled from each line's JSON), ``billed_on`` (the date
from which the line is due; NULL: at once) and ``invoice_id`` (NULL while pending; set once, by
the issuing transaction that takes the line).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def _seq() -> sa.Column[int]:
    return sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "invoices",
        _seq(),
        sa.Column("id", sa.String, nullable=False),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("number", sa.String, nullable=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_invoices"),
        sa.UniqueConstraint("id", name="uq_invoices_id"),
        sa.UniqueConstraint("number", name="uq_invoices_number"),
    )
    op.create_index("ix_invoices_customer_id", "invoices", ["customer_id"])
    op.create_table(
        "invoice_counters",
        sa.Column("prefix", sa.String, nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("prefix", name="pk_invoice_counters"),
    )
    op.create_table(
        "credit_memos",
        _seq(),
        sa.Column("id", sa.String, nullable=False),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_credit_memos"),
        sa.UniqueConstraint("id", name="uq_credit_memos_id"),
    )
    op.create_index("ix_credit_memos_customer_id", "credit_memos", ["customer_id"])
    op.create_table(
        "coupon_redemptions",
        _seq(),
        sa.Column("id", sa.String, nullable=False),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("coupon_id", sa.String, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_coupon_redemptions"),
        sa.UniqueConstraint("id", name="uq_coupon_redemptions_id"),
    )
    op.create_index("ix_coupon_redemptions_customer_id", "coupon_redemptions", ["customer_id"])
    op.create_index("ix_coupon_redemptions_coupon_id", "coupon_redemptions", ["coupon_id"])
    op.create_table(
        "tax_profiles",
        _seq(),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_tax_profiles"),
        sa.UniqueConstraint("customer_id", name="uq_tax_profiles_customer_id"),
    )
    with op.batch_alter_table("invoice_lines") as batch:
        batch.add_column(sa.Column("currency", sa.String(3), nullable=True))
        batch.add_column(sa.Column("billed_on", sa.Date, nullable=True))
        batch.add_column(sa.Column("invoice_id", sa.String, nullable=True))
    op.create_index("ix_invoice_lines_invoice_id", "invoice_lines", ["invoice_id"])
    lines = sa.table(
        "invoice_lines",
        sa.column("seq", sa.BigInteger),
        sa.column("data", sa.Text),
        sa.column("currency", sa.String),
    )
    conn = op.get_bind()
    for seq, data in conn.execute(sa.select(lines.c.seq, lines.c.data)).all():
        currency = json.loads(data)["amount"]["currency"]
        conn.execute(sa.update(lines).where(lines.c.seq == seq).values(currency=currency))


def downgrade() -> None:
    op.drop_index("ix_invoice_lines_invoice_id", table_name="invoice_lines")
    with op.batch_alter_table("invoice_lines") as batch:
        batch.drop_column("invoice_id")
        batch.drop_column("billed_on")
        batch.drop_column("currency")
    op.drop_table("tax_profiles")
    op.drop_table("coupon_redemptions")
    op.drop_table("credit_memos")
    op.drop_table("invoice_counters")
    op.drop_index("ix_invoices_customer_id", table_name="invoices")
    op.drop_table("invoices")
