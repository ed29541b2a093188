"""MySQL/MariaDB units of the store runner: a pool of PyMySQL connections, one thread each.

Each unit runs in its own transaction on one pooled connection with the fewest round trips: the
connection is in manual-commit mode, so the first statement opens the transaction (no BEGIN), and the
unit ends with one COMMIT (or ROLLBACK when it raised). Isolation is READ COMMITTED, as the SQLAlchemy
engines of :mod:`meshkit.infra.db` use; a read unit runs in one ``REPEATABLE READ`` read-only transaction
started ``WITH CONSISTENT SNAPSHOT``, so all its statements see the same snapshot.

A unit may not run transaction-control statements (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, SET autocommit...):
they are refused with :class:`~meshkit.store.errors.UnitTransactionError` before reaching the server.
A pooled connection the server closed while it was idle (``wait_timeout``, a restart) fails the unit's
first statement; the unit is then run once more on a fresh connection. Nothing of it was committed
(the lost transaction dies with its connection), but its Python code up to that statement runs twice.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, TypeAlias, TypeVar

import pymysql
import pymysql.cursors
from sqlalchemy.engine import URL

from meshkit.store.conn import Params, Row, Unit
from meshkit.store.dialect import MYSQL, Dialect, to_format_style
from meshkit.store.errors import UnitTransactionError, mysql_code, mysql_transient, transient_errors
from meshkit.store.threads import ConnectionThreads

T = TypeVar("T")
Connection: TypeAlias = "pymysql.connections.Connection[pymysql.cursors.Cursor]"

_INIT = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
# A read unit's transaction: one snapshot for all its statements (REPEATABLE READ for it alone).
_READ_ISOLATION = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
_READ_SNAPSHOT = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"
# Closed connection (0), server gone away, lost during query, lost before the query could be sent.
_CONNECTION_LOST = frozenset({0, 2006, 2013, 2055})
# Statements that end, begin or nest the unit's transaction (or commit it implicitly), by their first
# keyword(s) after any leading comments: a cheap check, not a parser.
_TRANSACTION_CONTROL = re.compile(
    r"(?:\s+|/\*.*?\*/|--[^\n]*|\#[^\n]*)*"
    r"(BEGIN|START|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|XA|LOCK|UNLOCK"
    r"|SET\s+(?:SESSION\s+|@@(?:SESSION\.)?)?(?:AUTOCOMMIT|TRANSACTION))\b",
    re.IGNORECASE | re.DOTALL,
)


@lru_cache(maxsize=1024)
def unit_sql(sql: str) -> str:
    """``sql`` of a unit in PyMySQL's format style; UnitTransactionError for transaction control."""
    control = _TRANSACTION_CONTROL.match(sql)
    if control is not None:
        raise UnitTransactionError(" ".join(control.group(1).upper().split()))
    return to_format_style(sql)


class MysqlConn:
    """:class:`~meshkit.store.conn.Conn` over one PyMySQL cursor (qmark SQL translated to ``%s``)."""

    __slots__ = ("_cursor", "used")

    dialect: Dialect = MYSQL

    def __init__(self, cursor: pymysql.cursors.Cursor) -> None:
        self._cursor = cursor
        self.used = False  # a statement of the unit completed on the server

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; rows changed."""
        changed = self._cursor.execute(unit_sql(sql), tuple(params))
        self.used = True
        return changed

    def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        """Run one statement per parameter row (multi-row INSERTs are batched by PyMySQL)."""
        changed = self._cursor.executemany(unit_sql(sql), [tuple(r) for r in rows]) or 0
        self.used = True
        return changed

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row, or None."""
        self.execute(sql, params)
        row: Row | None = self._cursor.fetchone()
        return row

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row."""
        self.execute(sql, params)
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
                return self._attempt(conn, unit, read_only, retry=True)
            except _LostBeforeUse:  # closed by the server while idle: once more on a fresh connection
                return self._attempt(self._threads.renew(conn), unit, read_only, retry=False)

    def _attempt(self, conn: Connection, unit: Unit[T], read_only: bool, *, retry: bool) -> T:
        with conn.cursor() as cursor:
            wrapped = MysqlConn(cursor)
            try:
                if read_only:
                    cursor.execute(_READ_ISOLATION)
                    cursor.execute(_READ_SNAPSHOT)
                value = unit(wrapped)
                if read_only:
                    conn.rollback()
                else:
                    conn.commit()
                return value
            except BaseException as exc:
                self._abandon(conn)
                if retry and not wrapped.used and mysql_code(exc) in _CONNECTION_LOST:
                    raise _LostBeforeUse from exc
                raise

    def _abandon(self, conn: Connection) -> None:
        """Roll the failed unit back; drop the connection when that is not possible any more."""
        try:
            conn.rollback()
        except pymysql.err.MySQLError:
            self._threads.drop(conn)


class _LostBeforeUse(Exception):
    """The connection was lost before any statement of the unit completed: the unit may run again."""


def _close(conn: Connection) -> None:
    conn.close()
