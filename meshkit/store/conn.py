"""The connection a unit of work gets: prepared SQL with ``?`` placeholders, on any supported database.

A *unit of work* is a plain synchronous function of a :class:`Conn`; the :class:`~meshkit.store.StoreRunner`
runs it inside one transaction on its own thread and commits it (or rolls it back when it raises)::

    def reserve(conn: Conn) -> int:
        return conn.execute("UPDATE stock SET n = n - ? WHERE sku = ? AND n >= ?", (qty, sku, qty))

SQL is written once with qmark (``?``) placeholders; on MySQL/MariaDB the runner translates them to
``%s``. Dialect differences that SQL cannot hide (insert-ignore, share locks) come from
:attr:`Conn.dialect`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from meshkit.store.dialect import Dialect

T = TypeVar("T")

Params = Sequence[Any]
Row = tuple[Any, ...]


class Conn(Protocol):
    """What a unit of work may do: run prepared statements inside the runner's transaction.

    A unit never commits, rolls back or begins: the runner does, around it (a unit that tries fails
    with :class:`~meshkit.store.errors.UnitTransactionError`, and nothing of it is committed).
    """

    @property
    def dialect(self) -> Dialect:
        """The database's SQL dialect helpers."""
        ...

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed (INSERT/UPDATE/DELETE), -1 for others."""
        ...

    def executemany(self, sql: str, rows: Iterable[Params]) -> int:
        """Run one statement once per parameter row; the total number of rows changed."""
        ...

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query, or None."""
        ...

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of a query."""
        ...


Unit = Callable[[Conn], T]
"""A unit of work: a synchronous function of a :class:`Conn`, run in one transaction by the runner."""
