"""SQLite connections of the store runner (stdlib ``sqlite3``) and the pool of reader threads."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from meshkit.infra.db import SQLITE_BUSY_TIMEOUT_MS, apply_sqlite_pragmas
from meshkit.store.conn import Params, Row, Unit
from meshkit.store.dialect import SQLITE, Dialect
from meshkit.store.errors import sqlite_transient, transient_errors
from meshkit.store.threads import ConnectionThreads

T = TypeVar("T")

CACHED_STATEMENTS = 1024  # every distinct SQL text of a process stays prepared


def open_sqlite(path: str, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection with the settings of :mod:`meshkit.infra.db` (WAL, NORMAL sync, busy timeout, FKs).

    ``isolation_level=None``: the runner issues BEGIN/COMMIT itself. A reader connection is
    ``query_only``, so a "read" unit that writes fails instead of racing the writer.
    """
    if path not in ("", ":memory:"):
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(
        path,
        timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,  # opened on one thread, used only by the thread that owns it
        cached_statements=CACHED_STATEMENTS,
    )
    apply_sqlite_pragmas(db)
    if read_only:
        db.execute("PRAGMA query_only=ON")
    return db


class SqliteConn:
    """:class:`~meshkit.store.conn.Conn` over one ``sqlite3`` connection."""

    __slots__ = ("_db",)

    dialect: Dialect = SQLITE

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; rows changed."""
        return self._db.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        """Run one statement per parameter row; total rows changed."""
        return self._db.executemany(sql, rows).rowcount

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row, or None."""
        row: Row | None = self._db.execute(sql, params).fetchone()
        return row

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row."""
        rows: list[Row] = self._db.execute(sql, params).fetchall()
        return rows


class SqliteReaders:
    """Read-only units on ``count`` threads, one connection each: never queued behind writes (WAL)."""

    def __init__(self, path: str, count: int) -> None:
        self._threads = ConnectionThreads(
            "store-reader", count, lambda: open_sqlite(path, read_only=True), sqlite3.Connection.close
        )

    def submit(self, unit: Unit[T]) -> asyncio.Future[T]:
        """Run ``unit`` in a read transaction on a reader thread."""
        return self._threads.submit(lambda db: _read(db, unit))

    def close(self) -> None:
        """Wait for running reads, then close every reader connection (blocking)."""
        self._threads.close()


def _read(db: sqlite3.Connection, unit: Unit[T]) -> T:
    with transient_errors(sqlite3.Error, sqlite_transient):
        db.execute("BEGIN")  # one snapshot for every statement of the unit
        try:
            return unit(SqliteConn(db))
        finally:
            db.execute("ROLLBACK")
