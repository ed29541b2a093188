"""Create the order tables orders, order_items, order_history and order_requests.

Revision ID: order_0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "order_0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the four tables with the indexes of lists, the deadline sweep and the request sweep."""
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("gid", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("points_used", sa.BigInteger(), nullable=False),
        sa.Column("amount_due_cents", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.SmallInteger(), nullable=False),
        sa.Column("payment_id", sa.String(128), nullable=True),
        sa.Column("paying_gid", sa.String(128), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("pay_deadline", sa.BigInteger(), nullable=True),
        sa.Column("paid_at", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name="pk_orders"),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_orders_user_created", "orders", ["user_id", "created_at", "order_id"])
    op.create_index("ix_orders_status_deadline", "orders", ["status", "pay_deadline"])
    op.create_table(
        "order_items",
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("merchant_id", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_cents", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "line_no", name="pk_order_items"),
        mysql_engine="InnoDB",
    )
    op.create_table(
        "order_history",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("gid", sa.String(128), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_order_history"),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_order_history_order", "order_history", ["order_id", "id"])
    op.create_table(
        "order_requests",
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("gid", sa.String(128), nullable=False),
        sa.Column("order_ids", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("lease_until", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_order_requests"),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_order_requests_state_lease", "order_requests", ["state", "lease_until"])


def downgrade() -> None:
    """Drop the order tables."""
    op.drop_table("order_requests")
    op.drop_table("order_history")
    op.drop_table("order_items")
    op.drop_table("orders")
