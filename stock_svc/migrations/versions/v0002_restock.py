"""Create stock_restock: one row per PutSku request_id (idempotent restock, owed Redis halves).

Revision ID: stock_0002
Revises: stock_0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "stock_0002"
down_revision: str | None = "stock_0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create stock_restock and its index of owed Redis halves."""
    op.create_table(
        "stock_restock",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("redis_done", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("done_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name="pk_stock_restock"),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_stock_restock_owed", "stock_restock", ["redis_done", "created_at"])


def downgrade() -> None:
    """Drop stock_restock."""
    op.drop_index("ix_stock_restock_owed", table_name="stock_restock")
    op.drop_table("stock_restock")
