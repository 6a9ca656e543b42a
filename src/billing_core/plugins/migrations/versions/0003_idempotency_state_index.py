"""An index on the idempotency keys still in progress, by operation.

Every new key asks the store for the unresolved keys of its operation (a new key for a request
whose earlier key is unresolved is refused), and ``reconcile()`` asks for them too. Completed keys
accumulate forever, so without this index each new key would scan the whole table.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

INDEX = "ix_idempotency_state_operation"


def upgrade() -> None:
    op.create_index(INDEX, "idempotency", ["state", "operation"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="idempotency")
