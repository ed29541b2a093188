"""Which driver errors are worth a retry: they become :class:`~meshkit.errors.TransientError`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pymysql

from meshkit.errors import TransientError

# SQLite primary result codes of a lock, a full disk or a lost file: another try may succeed.
_SQLITE_TRANSIENT = frozenset({5, 6, 10, 13, 14, 15})  # BUSY LOCKED IOERR FULL CANTOPEN PROTOCOL
# MySQL/MariaDB: lock wait timeout, deadlock, too many connections, shutdown, connection refused/lost.
_MYSQL_TRANSIENT = frozenset({1040, 1053, 1205, 1213, 2002, 2003, 2006, 2013, 2055})


@contextmanager
def transient_errors(
    kind: type[Exception], translate: Callable[[BaseException], TransientError | None]
) -> Iterator[None]:
    """Re-raise the ``kind`` errors that ``translate`` maps as TransientError (from the original)."""
    try:
        yield
    except kind as exc:
        transient = translate(exc)
        if transient is None:
            raise
        raise transient from exc


def sqlite_transient(exc: BaseException) -> TransientError | None:
    """The TransientError that ``exc`` stands for, or None when retrying would not help."""
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in _SQLITE_TRANSIENT:
        return None
    return TransientError(f"database unavailable or locked: {exc}")


def mysql_code(exc: BaseException) -> int | None:
    """The MySQL error number of a PyMySQL error (0 for a closed connection), else None."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return 0
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def mysql_transient(exc: BaseException) -> TransientError | None:
    """The TransientError that ``exc`` stands for, or None when retrying would not help."""
    code = mysql_code(exc)
    if code is None or (code != 0 and code not in _MYSQL_TRANSIENT):
        return None
    return TransientError(f"database unavailable or locked: {exc}")


class UnitTransactionError(RuntimeError):
    """A unit of work ran a transaction-control statement (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE...).

    The runner begins and ends every unit's transaction; a unit that did it itself could commit other
    units' work (or its own half) behind its callers' backs, so the statement is refused and the unit
    fails alone.
    """

    def __init__(self, statement: str) -> None:
        super().__init__(
            f"a unit of work may not run {statement}: the store runner begins and ends its transaction"
        )
