"""Refunds name the spending they give back: points_log.spending_type / spending_out_trade_no.

Rows written before this revision keep ``""`` (no spending named); ``meshctl audit`` lists such refunds.

Revision ID: points_0002
Revises: points_0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "points_0002"
down_revision: str | None = "points_0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the spending columns (default "") and the index summing a spending's refunds."""
    op.add_column("points_log", sa.Column("spending_type", sa.String(16), nullable=False, server_default=""))
    op.add_column(
        "points_log", sa.Column("spending_out_trade_no", sa.String(128), nullable=False, server_default="")
    )
    op.create_index("ix_points_log_spending", "points_log", ["spending_out_trade_no", "spending_type"])


def downgrade() -> None:
    """Drop the spending columns and their index."""
    op.drop_index("ix_points_log_spending", table_name="points_log")
    with op.batch_alter_table("points_log") as batch:
        batch.drop_column("spending_out_trade_no")
        batch.drop_column("spending_type")
