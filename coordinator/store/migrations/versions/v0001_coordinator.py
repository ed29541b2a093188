"""Create the coordinator tables trans_global, trans_branch_op and trans_event.

Revision ID: coordinator_0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "coordinator_0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the three tables and the indexes of the due-work scan, lists and history."""
    op.create_table(
        "trans_global",
        sa.Column("gid", sa.String(128), nullable=False),
        sa.Column("mode", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("query_prepared", sa.String(512), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("timeout_at", sa.BigInteger(), nullable=True),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.Column("next_run_at", sa.BigInteger(), nullable=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("lease_until", sa.BigInteger(), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("retry_paused", sa.Boolean(), nullable=False),
        sa.Column("stuck", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("gid", name="pk_trans_global"),
        mysql_engine="InnoDB",
    )
    # Finished rows have next_run_at NULL, so this index holds exactly the unfinished, due-able work.
    op.create_index("ix_trans_global_next_run_at", "trans_global", ["next_run_at"])
    op.create_index("ix_trans_global_status_created", "trans_global", ["status", "created_at", "gid"])
    op.create_index("ix_trans_global_created", "trans_global", ["created_at", "gid"])
    op.create_table(
        "trans_branch_op",
        sa.Column("gid", sa.String(128), nullable=False),
        sa.Column("branch_id", sa.String(64), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column(
            "payload", sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("depends_on", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(1024), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("gid", "branch_id", "op", name="pk_trans_branch_op"),
        mysql_engine="InnoDB",
    )
    op.create_table(
        "trans_event",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("gid", sa.String(128), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("from_status", sa.SmallInteger(), nullable=True),
        sa.Column("to_status", sa.SmallInteger(), nullable=True),
        sa.Column("branch_id", sa.String(64), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("detail", sa.String(2048), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_trans_event"),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_trans_event_gid", "trans_event", ["gid", "id"])


def downgrade() -> None:
    """Drop the coordinator tables."""
    op.drop_table("trans_event")
    op.drop_table("trans_branch_op")
    op.drop_table("trans_global")
