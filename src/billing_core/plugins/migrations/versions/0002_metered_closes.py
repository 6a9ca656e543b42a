"""Metered periods closed: one row per (subscription, metric, start, end), a unique key.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

COLUMNS = ("subscription_id", "metric_key", "start_utc", "end_utc")


def upgrade() -> None:
    op.create_table(
        "metered_closes",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscription_id", sa.String, nullable=False),
        sa.Column("metric_key", sa.String, nullable=False),
        sa.Column("start_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_metered_closes"),
        sa.UniqueConstraint(*COLUMNS, name="uq_metered_closes_" + "_".join(COLUMNS)),
    )


def downgrade() -> None:
    op.drop_table("metered_closes")
