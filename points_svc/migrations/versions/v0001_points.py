"""Create the points tables points_account and points_log.

Revision ID: points_0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "points_0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create points_account (non-negative balance and frozen) and points_log (unique per trade/type)."""
    op.create_table(
        "points_account",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("frozen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_points_account"),
        sa.CheckConstraint("balance >= 0", name="ck_points_account_balance"),
        sa.CheckConstraint("frozen >= 0", name="ck_points_account_frozen"),
        mysql_engine="InnoDB",
    )
    op.create_table(
        "points_log",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("out_trade_no", sa.String(128), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("gid", sa.String(128), nullable=False),
        sa.Column("branch_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_points_log"),
        sa.UniqueConstraint("out_trade_no", "type", name="uq_points_log_trade_type"),
        sa.CheckConstraint("amount > 0", name="ck_points_log_amount"),
        sa.CheckConstraint("type IN ('grant', 'freeze', 'deduct', 'refund')", name="ck_points_log_type"),
        sa.CheckConstraint(
            "state IN ('trying', 'confirmed', 'cancelled', 'done')", name="ck_points_log_state"
        ),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_points_log_user", "points_log", ["user_id", "type", "state"])
    op.create_index("ix_points_log_type_state", "points_log", ["type", "state"])


def downgrade() -> None:
    """Drop the points tables."""
    op.drop_index("ix_points_log_type_state", table_name="points_log")
    op.drop_index("ix_points_log_user", table_name="points_log")
    op.drop_table("points_log")
    op.drop_table("points_account")
