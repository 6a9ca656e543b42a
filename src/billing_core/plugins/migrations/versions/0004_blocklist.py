"""Collection: blocklist entries and customer wallets (payment instruments).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def _seq() -> sa.Column[int]:
    return sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "blocklist",
        _seq(),
        sa.Column("id", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("value", sa.String, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_blocklist"),
        sa.UniqueConstraint("id", name="uq_blocklist_id"),
    )
    op.create_index("ix_blocklist_kind_value", "blocklist", ["kind", "value"])
    op.create_table(
        "wallets",
        _seq(),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_wallets"),
        sa.UniqueConstraint("customer_id", name="uq_wallets_customer_id"),
    )


def downgrade() -> None:
    op.drop_table("wallets")
    op.drop_index("ix_blocklist_kind_value", table_name="blocklist")
    op.drop_table("blocklist")
