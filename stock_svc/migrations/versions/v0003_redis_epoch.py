"""Create stock_redis_epoch: the Redis epochs stock_svc has seen, and when Redis data was found lost.

Revision ID: stock_0003
Revises: stock_0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "stock_0003"
down_revision: str | None = "stock_0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create stock_redis_epoch."""
    op.create_table(
        "stock_redis_epoch",
        sa.Column("epoch", sa.String(32), nullable=False),
        sa.Column("first_seen_at", sa.BigInteger(), nullable=False),
        sa.Column("lost_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("epoch", name="pk_stock_redis_epoch"),
        mysql_engine="InnoDB",
    )


def downgrade() -> None:
    """Drop stock_redis_epoch."""
    op.drop_table("stock_redis_epoch")
