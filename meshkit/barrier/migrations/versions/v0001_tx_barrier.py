"""Create the subtransaction barrier table tx_barrier.

Revision ID: barrier_0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "barrier_0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create tx_barrier(gid, branch_id, op, reason, created_at) with its created_at index."""
    op.create_table(
        "tx_barrier",
        sa.Column("gid", sa.String(128), nullable=False),
        sa.Column("branch_id", sa.String(64), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("gid", "branch_id", "op", name="pk_tx_barrier"),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_tx_barrier_created_at", "tx_barrier", ["created_at"])


def downgrade() -> None:
    """Drop tx_barrier."""
    op.drop_index("ix_tx_barrier_created_at", table_name="tx_barrier")
    op.drop_table("tx_barrier")
