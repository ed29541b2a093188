"""Create the flash sale tables flash_sales and flash_tickets.

Revision ID: order_0002
Revises: order_0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "order_0002"
down_revision: str | None = "order_0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create both tables with the indexes of the quota snapshot and the two sweeps."""
    op.create_table(
        "flash_sales",
        sa.Column("sale_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("per_user_limit", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.BigInteger(), nullable=False),
        sa.Column("ends_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sale_id", name="pk_flash_sales"),
        mysql_engine="InnoDB",
    )
    op.create_table(
        "flash_tickets",
        sa.Column("ticket", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("sale_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_cents", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("order_id", sa.String(32), nullable=True),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("queued", sa.SmallInteger(), nullable=False),
        sa.Column("returned", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("ticket", name="pk_flash_tickets"),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_flash_tickets_sale_state", "flash_tickets", ["sale_id", "state"])
    op.create_index("ix_flash_tickets_state_queued", "flash_tickets", ["state", "queued", "created_at"])
    op.create_index("ix_flash_tickets_state_returned", "flash_tickets", ["state", "returned"])


def downgrade() -> None:
    """Drop the flash sale tables."""
    op.drop_table("flash_tickets")
    op.drop_table("flash_sales")
