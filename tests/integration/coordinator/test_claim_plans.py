"""The claims of due work read an index, never the whole table, however many finished rows are stored.

``EXPLAIN QUERY PLAN`` (SQLite) and ``EXPLAIN`` (MariaDB) of the statements the store runs to claim:
the sweeper's (due rows, most overdue first, on ``ix_trans_global_next_run_at`` without a sort: finished
rows have no ``next_run_at``, so they are outside the range) and the timer hints' batch claim (by primary
key or that same range). The store is the one of ``test_store_plans.py``: mostly finished transactions.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from coordinator.store.sql import DUE_WHERE, hinted_where
from meshkit.infra.db import is_mysql
from tests.integration.coordinator.test_store_plans import NOW, filled

__all__ = ["filled"]  # the fixture, shared

NEXT_RUN = r"ix_trans_global_next_run_at \(next_run_at<\?\)"
BY_GID = r"sqlite_autoindex_trans_global_1 \(gid=\?\)"


async def plan(engine: AsyncEngine, sql: str, params: tuple[Any, ...]) -> list[str]:
    """The plan of ``sql`` (``?`` placeholders), one string per step."""
    async with engine.connect() as conn:
        if is_mysql(engine):
            result = await conn.exec_driver_sql(f"EXPLAIN {sql.replace('?', '%s')}", params)
            return [
                f"table={r['table']} type={r['type']} key={r['key']} extra={r['Extra']}"
                for r in result.mappings()
            ]
        result = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
        return [str(r[-1]) for r in result.all()]


async def test_the_sweepers_claim_reads_the_due_range_of_the_next_run_index(filled: AsyncEngine) -> None:
    steps = await plan(filled, f"SELECT * FROM trans_global WHERE {DUE_WHERE}", (NOW, NOW, False, 100))
    assert len(steps) == 1, steps
    if is_mysql(filled):
        assert re.search(r"type=range key=ix_trans_global_next_run_at ", steps[0]), steps
        assert "filesort" not in steps[0] and "temporary" not in steps[0], steps
        return
    assert re.fullmatch(rf"SEARCH trans_global USING INDEX {NEXT_RUN}", steps[0]), steps


async def test_the_batch_claim_of_hinted_gids_reads_by_gid_or_the_due_range(filled: AsyncEngine) -> None:
    gids = tuple(f"g-{i:06d}" for i in range(0, 2560, 10))
    sql = f"SELECT * FROM trans_global WHERE {hinted_where(len(gids))} AND retry_paused = ?"
    steps = await plan(filled, sql, (*gids, NOW, NOW, False))
    assert len(steps) == 1, steps
    if is_mysql(filled):
        assert re.search(r"type=range key=(PRIMARY|ix_trans_global_next_run_at) ", steps[0]), steps
        return
    assert re.fullmatch(rf"SEARCH trans_global USING INDEX ({BY_GID}|{NEXT_RUN})", steps[0]), steps
