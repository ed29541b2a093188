"""The coordinator's tables (created by the ``coordinator`` component's migrations, see :data:`VERSIONS`).

* ``trans_global``: one row per global transaction. ``next_run_at`` is when a driver should look at
  it next (NULL once finished, so the due-work scan on its index only sees unfinished work);
  ``owner``/``lease_until`` say which replica drives it until when; ``version`` is bumped by every
  claim and every write (compare-and-set). ``admin_request`` is an operator's request waiting for the
  lease holder; ``request_seq`` counts requests and pause flips (a holder's write needs the latest).
* ``trans_branch_op``: one row per (branch, op) with its status, attempts, last error, next attempt.
* ``trans_event``: the history, append-only.
* ``trans_count``: how many transactions have each (mode, status), kept exact by triggers on
  ``trans_global`` in the same commit as the row change (migration ``coordinator_0004``).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
)
from sqlalchemy.dialects import mysql

# Pass to meshkit.infra.migrate.upgrade(engine, "coordinator", VERSIONS).
VERSIONS = Path(__file__).resolve().parent / "migrations" / "versions"
COMPONENT = "coordinator"

GID_LEN = 128
BRANCH_LEN = 64
OP_LEN = 16
TARGET_LEN = 512
REASON_LEN = 1024
ERROR_LEN = 1024
OWNER_LEN = 128
ACTOR_LEN = 200
DETAIL_LEN = 2048

# 64 KiB payloads do not fit MySQL's BLOB (65535 bytes): MEDIUMBLOB there.
Payload = LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")
EventId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

trans_global = Table(
    "trans_global",
    metadata,
    Column("gid", String(GID_LEN), primary_key=True),
    Column("mode", SmallInteger, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("reason", String(REASON_LEN), nullable=False, default=""),
    Column("options", JSON, nullable=False),
    Column("query_prepared", String(TARGET_LEN), nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("timeout_at", BigInteger, nullable=True),
    Column("finished_at", BigInteger, nullable=True),
    Column("next_run_at", BigInteger, nullable=True),
    Column("owner", String(OWNER_LEN), nullable=True),
    Column("lease_until", BigInteger, nullable=True),
    Column("version", BigInteger, nullable=False),
    Column("retry_paused", Boolean, nullable=False, default=False),
    Column("stuck", Boolean, nullable=False, default=False),
    Column("admin_request", JSON(none_as_null=True), nullable=True),
    Column("request_seq", BigInteger, nullable=False, default=0, server_default="0"),
    Index("ix_trans_global_next_run_at", "next_run_at"),
    Index("ix_trans_global_status_created", "status", "created_at", "gid"),
    Index("ix_trans_global_created", "created_at", "gid"),
    Index("ix_trans_global_mode_created", "mode", "created_at", "gid"),
    Index("ix_trans_global_mode_status_created", "mode", "status", "created_at", "gid"),
    # finished_at is NULL exactly while unfinished: Stuck and Stats read that end, retention the other.
    Index("ix_trans_global_finished_created", "finished_at", "created_at", "gid"),
)

trans_count = Table(
    "trans_count",
    metadata,
    Column("mode", SmallInteger, primary_key=True),
    Column("status", SmallInteger, primary_key=True),
    Column("n", BigInteger, nullable=False),
)

trans_branch_op = Table(
    "trans_branch_op",
    metadata,
    Column("gid", String(GID_LEN), primary_key=True),
    Column("branch_id", String(BRANCH_LEN), primary_key=True),
    Column("op", String(OP_LEN), primary_key=True),
    Column("target", String(TARGET_LEN), nullable=False),
    Column("payload", Payload, nullable=False),
    Column("position", Integer, nullable=False),
    Column("depends_on", JSON, nullable=True),
    Column("status", String(OP_LEN), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String(ERROR_LEN), nullable=False, default=""),
    Column("next_attempt_at", BigInteger, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
)

trans_event = Table(
    "trans_event",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("gid", String(GID_LEN), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("kind", String(OP_LEN), nullable=False),
    Column("from_status", SmallInteger, nullable=True),
    Column("to_status", SmallInteger, nullable=True),
    Column("branch_id", String(BRANCH_LEN), nullable=False, default=""),
    Column("op", String(OP_LEN), nullable=False, default=""),
    Column("actor", String(ACTOR_LEN), nullable=False),
    Column("detail", String(DETAIL_LEN), nullable=False, default=""),
    Index("ix_trans_event_gid", "gid", "id"),
)
