"""Operator queries at scale: status counters kept by triggers, indexes for every List/Stuck filter.

* ``trans_count(mode, status, n)``: how many transactions have each (mode, status). Triggers on
  ``trans_global`` (insert, status/mode change, delete) keep it exact in the same commit as the row
  change, whoever writes; Stats reads these few rows instead of counting every transaction. Every
  (mode, status) row is created here (n = 0, then backfilled), so the triggers only ever update an
  existing row and concurrent writers on MariaDB never race to insert one.
* ``ix_trans_global_mode_created``, ``ix_trans_global_mode_status_created``: List by mode, and by mode
  and status, newest first, without a sort (status alone has ``ix_trans_global_status_created``).
* ``ix_trans_global_finished_created`` replaces ``ix_trans_global_finished``: unfinished rows have
  ``finished_at`` NULL, so ``finished_at IS NULL`` ordered by creation serves Stuck and the unfinished
  part of Stats; its ``finished_at`` prefix still serves the retention walk.

Revision ID: coordinator_0004
Revises: coordinator_0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "coordinator_0004"
down_revision: str | None = "coordinator_0003"
branch_labels: str | None = None
depends_on: str | None = None

# The values of coordinator.engine.model.Mode / Status when this revision was written.
_MODES = (1, 2, 3)
_STATUSES = (1, 2, 3, 4, 5)
_TRIGGERS = ("trans_count_insert", "trans_count_update", "trans_count_delete")


def _bump(sign: str, row: str) -> str:
    return f"UPDATE trans_count SET n = n {sign} 1 WHERE mode = {row}.mode AND status = {row}.status"


_ADD, _REMOVE = _bump("+", "NEW"), _bump("-", "OLD")
_CHANGED = "OLD.status <> NEW.status OR OLD.mode <> NEW.mode"
_ON = "ON trans_global"

_SQLITE_TRIGGERS = (
    f"CREATE TRIGGER trans_count_insert AFTER INSERT {_ON} BEGIN {_ADD}; END",
    f"CREATE TRIGGER trans_count_update AFTER UPDATE OF status, mode {_ON}"
    f" WHEN {_CHANGED} BEGIN {_REMOVE}; {_ADD}; END",
    f"CREATE TRIGGER trans_count_delete AFTER DELETE {_ON} BEGIN {_REMOVE}; END",
)
_MYSQL_TRIGGERS = (
    f"CREATE TRIGGER trans_count_insert AFTER INSERT {_ON} FOR EACH ROW {_ADD}",
    f"CREATE TRIGGER trans_count_update AFTER UPDATE {_ON} FOR EACH ROW"
    f" BEGIN IF {_CHANGED} THEN {_REMOVE}; {_ADD}; END IF; END",
    f"CREATE TRIGGER trans_count_delete AFTER DELETE {_ON} FOR EACH ROW {_REMOVE}",
)


def upgrade() -> None:
    """Create and backfill the counters, their triggers, and the indexes of List and Stuck."""
    op.create_table(
        "trans_count",
        sa.Column("mode", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("mode", "status", name="pk_trans_count"),
        mysql_engine="InnoDB",
    )
    counts = sa.table("trans_count", sa.column("mode"), sa.column("status"), sa.column("n"))
    op.bulk_insert(counts, [{"mode": m, "status": s, "n": 0} for m in _MODES for s in _STATUSES])
    mysql = op.get_bind().dialect.name in ("mysql", "mariadb")
    for statement in _MYSQL_TRIGGERS if mysql else _SQLITE_TRIGGERS:
        op.execute(statement)
    # Exact when nothing writes during the upgrade (SQLite: one locked transaction; MariaDB commits
    # each DDL at once, so stop replicas of the previous version first, as for every upgrade).
    op.execute(
        "UPDATE trans_count SET n = (SELECT COUNT(*) FROM trans_global t"
        " WHERE t.mode = trans_count.mode AND t.status = trans_count.status)"
    )
    op.create_index("ix_trans_global_mode_created", "trans_global", ["mode", "created_at", "gid"])
    op.create_index(
        "ix_trans_global_mode_status_created", "trans_global", ["mode", "status", "created_at", "gid"]
    )
    op.create_index("ix_trans_global_finished_created", "trans_global", ["finished_at", "created_at", "gid"])
    op.drop_index("ix_trans_global_finished", table_name="trans_global")


def downgrade() -> None:
    """Back to revision 0003."""
    op.create_index("ix_trans_global_finished", "trans_global", ["finished_at"])
    op.drop_index("ix_trans_global_finished_created", table_name="trans_global")
    op.drop_index("ix_trans_global_mode_status_created", table_name="trans_global")
    op.drop_index("ix_trans_global_mode_created", table_name="trans_global")
    for name in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("trans_count")
