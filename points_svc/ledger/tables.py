"""The points tables (created by ``points_svc/migrations``, not by this module).

``points_account``: one row per user, ``balance`` and ``frozen`` never negative (CHECK constraints,
enforced by SQLite and MariaDB/MySQL 8.0.16+). ``points_log``: every movement, unique per
``(out_trade_no, type)``; the audit totals are sums over it (see :mod:`points_svc.ledger.values`).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from points_svc.ledger.validation import MAX_OUT_TRADE_NO_LEN, MAX_USER_ID_LEN

# Pass to meshkit.infra.migrate.upgrade(engine, "points", POINTS_VERSIONS).
POINTS_VERSIONS = Path(__file__).resolve().parents[1] / "migrations" / "versions"
COMPONENT = "points"

GID_LEN = 128
BRANCH_LEN = 64
KIND_LEN = 16

metadata = MetaData()

accounts = Table(
    "points_account",
    metadata,
    Column("user_id", String(MAX_USER_ID_LEN), primary_key=True),
    Column("balance", BigInteger, nullable=False),
    Column("frozen", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),  # epoch ms from the injected clock
    Column("updated_at", BigInteger, nullable=False),
    CheckConstraint("balance >= 0", name="ck_points_account_balance"),
    CheckConstraint("frozen >= 0", name="ck_points_account_frozen"),
)

points_log = Table(
    "points_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("out_trade_no", String(MAX_OUT_TRADE_NO_LEN), nullable=False),
    Column("type", String(KIND_LEN), nullable=False),
    Column("user_id", String(MAX_USER_ID_LEN), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("state", String(KIND_LEN), nullable=False),
    Column("gid", String(GID_LEN), nullable=False),  # "" for public Grant / Refund
    Column("branch_id", String(BRANCH_LEN), nullable=False),
    # Refunds: the spending (hold row) given back; "" on other rows (points_0002).
    Column("spending_type", String(KIND_LEN), nullable=False, server_default=""),
    Column("spending_out_trade_no", String(MAX_OUT_TRADE_NO_LEN), nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("out_trade_no", "type", name="uq_points_log_trade_type"),
    CheckConstraint("amount > 0", name="ck_points_log_amount"),
    CheckConstraint("type IN ('grant', 'freeze', 'deduct', 'refund')", name="ck_points_log_type"),
    CheckConstraint("state IN ('trying', 'confirmed', 'cancelled', 'done')", name="ck_points_log_state"),
    Index("ix_points_log_user", "user_id", "type", "state"),
    Index("ix_points_log_type_state", "type", "state"),
    Index("ix_points_log_spending", "spending_out_trade_no", "spending_type"),
)
