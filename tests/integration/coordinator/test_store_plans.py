"""Every operator query and the retention walk read an index of trans_global: never a full scan or sort.

SQLite's ``EXPLAIN QUERY PLAN`` and MariaDB's ``EXPLAIN`` of the statements the store really runs (the
builders in :mod:`coordinator.store.queries` and :mod:`coordinator.store.retention`), on a store
holding mostly finished transactions of every mode, like a coordinator that has run for a while.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from coordinator.engine.model import Mode, Status
from coordinator.store.queries import encode_cursor, list_statement, stats_statements, stuck_statement
from coordinator.store.retention import expired_statement
from coordinator.store.sql import migrate
from coordinator.store.tables import trans_branch_op, trans_global
from meshkit.infra.db import is_mysql

ROWS = 3000
NOW = 1_700_000_000_000
CURSOR = encode_cursor(NOW - 1000, "g-001000")


def row(i: int) -> dict[str, Any]:
    """Transaction ``i``: one in ten unfinished, the others finished; modes and statuses mixed."""
    unfinished = i % 10 == 0
    status = (
        (Status.PREPARED, Status.SUBMITTED, Status.ABORTING)[i % 3] if unfinished else Status(3 + i % 2 * 2)
    )
    created = NOW - ROWS + i
    return {
        "gid": f"g-{i:06d}",
        "mode": int(Mode(1 + i % 3)),
        "status": int(status),
        "reason": "",
        "options": {},
        "query_prepared": "",
        "created_at": created,
        "updated_at": created,
        "finished_at": None if unfinished else created + 5,
        "next_run_at": created if unfinished else None,
        "version": 1,
        "retry_paused": False,
        "stuck": i % 20 == 0,
    }


def op(i: int) -> dict[str, Any]:
    """The one op of transaction ``i``."""
    return {
        "gid": f"g-{i:06d}",
        "branch_id": "01",
        "op": "action",
        "target": "t",
        "payload": b"",
        "position": 1,
        "status": "done",
        "attempts": i % 5,
        "last_error": "",
        "updated_at": NOW,
    }


@pytest.fixture
async def filled(db_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """``db_engine`` migrated and holding :data:`ROWS` transactions, its statistics up to date."""
    await migrate(db_engine)
    async with db_engine.begin() as conn:
        await conn.execute(trans_global.insert(), [row(i) for i in range(ROWS)])
        await conn.execute(trans_branch_op.insert(), [op(i) for i in range(ROWS)])
    if is_mysql(db_engine):
        async with db_engine.begin() as conn:
            await conn.execute(text("ANALYZE TABLE trans_global, trans_branch_op"))
    yield db_engine


LIST_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "all": ({}, "ix_trans_global_created"),
    "status": ({"status": Status.SUCCEEDED}, "ix_trans_global_status_created"),
    "mode": ({"mode": Mode.SAGA}, "ix_trans_global_mode_created"),
    "mode_status": ({"mode": Mode.SAGA, "status": Status.FAILED}, "ix_trans_global_mode_status_created"),
    "created_range": (
        {"created_after": NOW - 2000, "created_before": NOW - 500},
        "ix_trans_global_created",
    ),
    "status_created_cursor": (
        {"status": Status.SUCCEEDED, "created_after": NOW - 2500, "cursor": CURSOR},
        "ix_trans_global_status_created",
    ),
    "mode_cursor": ({"mode": Mode.TCC, "cursor": CURSOR}, "ix_trans_global_mode_created"),
    "mode_status_range_cursor": (
        {"mode": Mode.MSG, "status": Status.SUCCEEDED, "created_before": NOW, "cursor": CURSOR},
        "ix_trans_global_mode_status_created",
    ),
}


@pytest.mark.parametrize("case", list(LIST_CASES))
async def test_list_filters_read_their_index(filled: AsyncEngine, case: str) -> None:
    filters, index = LIST_CASES[case]
    await assert_plan(filled, list_statement(**filters).limit(51), index)


@pytest.mark.parametrize("min_attempts", [0, 3])
async def test_stuck_reads_the_unfinished_end_of_the_finished_index(
    filled: AsyncEngine, min_attempts: int
) -> None:
    stmt = stuck_statement(created_by=NOW - 60_000, min_attempts=min_attempts).limit(100)
    await assert_plan(filled, stmt, "ix_trans_global_finished_created")


@pytest.mark.parametrize("include_finished", [True, False])
async def test_stats_read_the_counters_and_the_unfinished_rows_only(
    filled: AsyncEngine, include_finished: bool
) -> None:
    counters, unfinished = stats_statements(include_finished=include_finished)
    await assert_plan(filled, counters, None)
    await assert_plan(filled, unfinished, "ix_trans_global_finished_created")


async def test_retention_walks_the_finished_index(filled: AsyncEngine) -> None:
    await assert_plan(
        filled, expired_statement(NOW - 7 * 86_400_000, 500), "ix_trans_global_finished_created"
    )


async def assert_plan(engine: AsyncEngine, stmt: Select[*tuple[Any, ...]], index: str | None) -> None:
    """``stmt`` reads trans_global through ``index`` (None: does not read trans_global) without a sort."""
    sql = str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    if is_mysql(engine):
        async with engine.connect() as conn:
            plan = [dict(r) for r in (await conn.execute(text(f"EXPLAIN {sql}"))).mappings()]
        on_global = [r for r in plan if r["table"] == "trans_global"]
        assert [r["key"] for r in on_global] == ([index] if index else []), plan
        for step in plan:
            # trans_count is a row per (mode, status): reading all of it is the point.
            assert step["type"] != "ALL" or step["table"] == "trans_count", plan
            assert "filesort" not in (step["Extra"] or "") and "temporary" not in (step["Extra"] or ""), plan
        return
    async with engine.connect() as conn:
        details = [str(r[-1]) for r in (await conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))).all()]
    reads_global = [d for d in details if "trans_global" in d]
    uses = re.compile(rf"USING (COVERING )?INDEX {index}\b")
    assert all(uses.search(d) for d in reads_global) and len(reads_global) == (1 if index else 0), details
    assert not any("TEMP B-TREE" in d for d in details), details
    assert not any(re.fullmatch(r"SCAN trans_(global|branch_op)", d) for d in details), details
