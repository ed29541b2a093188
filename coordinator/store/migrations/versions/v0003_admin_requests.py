"""Operator requests recorded for the replica holding a transaction's lease.

``admin_request`` (JSON, NULL when none) is an operator's retry / force-abort / force-fail waiting for
the lease holder (or the next claimer); ``request_seq`` counts requests and pause flips, so a holder's
write is refused while it has not seen the latest one.

Revision ID: coordinator_0003
Revises: coordinator_0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "coordinator_0003"
down_revision: str | None = "coordinator_0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the two columns."""
    op.add_column("trans_global", sa.Column("admin_request", sa.JSON(), nullable=True))
    op.add_column(
        "trans_global", sa.Column("request_seq", sa.BigInteger(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_column("trans_global", "request_seq")
    op.drop_column("trans_global", "admin_request")
