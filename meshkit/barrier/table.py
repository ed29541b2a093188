"""The ``tx_barrier`` table (created by the ``barrier`` component's migrations, not by this module)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import BigInteger, Column, Index, MetaData, String, Table

# Pass to meshkit.infra.migrate.upgrade(engine, "barrier", BARRIER_VERSIONS).
BARRIER_VERSIONS = Path(__file__).resolve().parent / "migrations" / "versions"

GID_LEN = 128
BRANCH_LEN = 64
OP_LEN = 16

metadata = MetaData()

tx_barrier = Table(
    "tx_barrier",
    metadata,
    Column("gid", String(GID_LEN), primary_key=True),
    Column("branch_id", String(BRANCH_LEN), primary_key=True),
    Column("op", String(OP_LEN), primary_key=True),
    Column("reason", String(OP_LEN), nullable=False),
    Column("created_at", BigInteger, nullable=False),  # epoch milliseconds from the injected clock
    Index("ix_tx_barrier_created_at", "created_at"),
)
