"""Create the stock tables stock_sku and stock_log.

Revision ID: stock_0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "stock_0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create stock_sku (SKUs and durable stock) and stock_log (one row per branch, SKU and kind)."""
    op.create_table(
        "stock_sku",
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("initial", sa.BigInteger(), nullable=False),
        sa.Column("available", sa.BigInteger(), nullable=False),
        sa.Column("sold", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sku", name="pk_stock_sku"),
        mysql_engine="InnoDB",
    )
    op.create_table(
        "stock_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column("gid", sa.String(128), nullable=False),
        sa.Column("branch_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("order_ids", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stock_log"),
        sa.UniqueConstraint("gid", "branch_id", "sku", "kind", name="uq_stock_log_branch_sku"),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_stock_log_sku", "stock_log", ["sku", "id"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index("ix_stock_log_sku", table_name="stock_log")
    op.drop_table("stock_log")
    op.drop_table("stock_sku")
