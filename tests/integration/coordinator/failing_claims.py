"""Make the coordinator's claims fail for real: its transactions table is renamed away for a while."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


@asynccontextmanager
async def table_away(db_engine: AsyncEngine) -> AsyncIterator[None]:
    """While inside, ``trans_global`` does not exist: every claim statement fails (SQLite and MariaDB)."""
    async with db_engine.begin() as conn:
        await conn.execute(text("ALTER TABLE trans_global RENAME TO trans_global_away"))
    try:
        yield
    finally:
        async with db_engine.begin() as conn:
            await conn.execute(text("ALTER TABLE trans_global_away RENAME TO trans_global"))
