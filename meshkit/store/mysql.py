"""MySQL/MariaDB units of the store runner: a pool of PyMySQL connections, one thread each.

Each unit runs in its own transaction on one pooled connection with the fewest round trips: the
connection is in manual-commit mode, so the first statement opens the transaction (no BEGIN), and the
unit ends with one COMMIT (or ROLLBACK when it raised). Isolation is READ COMMITTED, as the SQLAlchemy
engines of :mod:`meshkit.infra.db` use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, TypeAlias, TypeVar

import pymysql
import pymysql.cursors
from sqlalchemy.engine import URL

from meshkit.store.conn import Params, Row, Unit
from meshkit.store.dialect import MYSQL, Dialect, to_format_style
from meshkit.store.errors import mysql_transient, transient_errors
from meshkit.store.threads import ConnectionThreads

T = TypeVar("T")
Connection: TypeAlias = "pymysql.connections.Connection[pymysql.cursors.Cursor]"

_INIT = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"


class MysqlConn:
    """:class:`~meshkit.store.conn.Conn` over one PyMySQL cursor (qmark SQL translated to ``%s``)."""

    __slots__ = ("_cursor",)

    dialect: Dialect = MYSQL

    def __init__(self, cursor: pymysql.cursors.Cursor) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; rows changed."""
        return self._cursor.execute(to_format_style(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        """Run one statement per parameter row (multi-row INSERTs are batched by PyMySQL)."""
        return self._cursor.executemany(to_format_style(sql), [tuple(r) for r in rows]) or 0

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row, or None."""
        self._cursor.execute(to_format_style(sql), tuple(params))
        row: Row | None = self._cursor.fetchone()
        return row

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row."""
        self._cursor.execute(to_format_style(sql), tuple(params))
        return list(self._cursor.fetchall())


def connect_args(url: URL) -> dict[str, Any]:
    """PyMySQL ``connect`` arguments for a SQLAlchemy MySQL URL."""
    args: dict[str, Any] = {
        "host": url.host or "127.0.0.1",
        "port": url.port or 3306,
        "user": url.username or "root",
        "password": url.password or "",
        "database": url.database,
        "charset": str(url.query.get("charset", "utf8mb4")),
        "autocommit": False,
        "init_command": _INIT,
    }
    socket = url.query.get("unix_socket")
    if socket:
        args["unix_socket"] = str(socket)
    return args


class MysqlPool:
    """Units on ``size`` threads, each owning one connection (opened on first use, reopened after a loss)."""

    def __init__(self, url: URL, size: int) -> None:
        args = connect_args(url)
        self._threads: ConnectionThreads[Connection] = ConnectionThreads(
            "store-mysql", size, lambda: pymysql.connect(**args), _close
        )

    def submit(self, unit: Unit[T], *, read_only: bool = False) -> asyncio.Future[T]:
        """Run ``unit`` in its own transaction on a pool thread (a read-only unit ends in ROLLBACK)."""
        return self._threads.submit(lambda conn: self._run(conn, unit, read_only))

    def close(self) -> None:
        """Wait for running units, then close every connection (blocking)."""
        self._threads.close()

    def _run(self, conn: Connection, unit: Unit[T], read_only: bool) -> T:
        with transient_errors(pymysql.err.MySQLError, mysql_transient):
            try:
                with conn.cursor() as cursor:
                    value = unit(MysqlConn(cursor))
                if read_only:
                    conn.rollback()
                else:
                    conn.commit()
                return value
            except BaseException:
                self._abandon(conn)
                raise

    def _abandon(self, conn: Connection) -> None:
        """Roll the failed unit back; drop the connection when that is not possible any more."""
        try:
            conn.rollback()
        except pymysql.err.MySQLError:
            self._threads.drop(conn)


def _close(conn: Connection) -> None:
    conn.close()
