"""Index trans_global.finished_at for the retention cleanup of finished transactions.

Revision ID: coordinator_0002
Revises: coordinator_0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision: str = "coordinator_0002"
down_revision: str | None = "coordinator_0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the index the retention cleanup scans."""
    op.create_index("ix_trans_global_finished", "trans_global", ["finished_at"])


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_trans_global_finished", table_name="trans_global")
