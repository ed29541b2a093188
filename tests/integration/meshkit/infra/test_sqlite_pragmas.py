"""Every SQLite connection of the mesh runs with the same settings (meshkit.infra.db.apply_sqlite_pragmas)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text

from meshkit.infra.db import SQLITE_BUSY_TIMEOUT_MS, create_engine
from meshkit.settings.config import DbSettings
from meshkit.store.sqlite import open_sqlite

EXPECTED = {
    "journal_mode": "wal",
    "synchronous": 1,
    "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
    "foreign_keys": 1,
}


def _settings(db: sqlite3.Connection) -> dict[str, object]:
    return {name: db.execute(f"PRAGMA {name}").fetchone()[0] for name in EXPECTED}


def test_store_runner_connections_are_wal_normal_sync_with_busy_timeout_and_foreign_keys(
    tmp_path: Path,
) -> None:
    db = open_sqlite(str(tmp_path / "runner.db"))
    try:
        assert _settings(db) == EXPECTED
    finally:
        db.close()


async def test_async_engine_connections_have_the_same_settings(tmp_path: Path) -> None:
    engine = create_engine(DbSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}"))
    try:
        async with engine.connect() as conn:
            seen = {name: (await conn.execute(text(f"PRAGMA {name}"))).scalar() for name in EXPECTED}
        assert seen == EXPECTED
    finally:
        await engine.dispose()
