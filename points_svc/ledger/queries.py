"""Queries on the points tables.

The hot path (every branch op, Grant, Refund, GetAccount) is units of work on the process's
:class:`~meshkit.store.StoreRunner`: the module functions below take the unit's
:class:`~meshkit.store.Conn` and run raw ``?`` SQL in its transaction. :class:`PointsRepo` keeps the
off-path audit on SQLAlchemy (one snapshot of every total).

Balance changes are single conditional UPDATEs (``... WHERE balance >= ?``), never read-then-write,
so concurrent tries on one account serialise on its row lock and none can overdraw it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from meshkit.errors import TransientError
from meshkit.infra.db import is_mysql
from meshkit.store import Conn
from points_svc.ledger.tables import accounts, points_log
from points_svc.ledger.values import (
    AUDITED_TYPES,
    HOLD_TYPES,
    Account,
    AuditReport,
    EntryState,
    EntryType,
    LogEntry,
    Movement,
    SpendingRef,
)


@dataclass(frozen=True, slots=True)
class LogRow:
    """A points log row as the domain needs it (``id`` to update it in place)."""

    id: int
    entry: LogEntry


@dataclass(frozen=True, slots=True)
class Origin:
    """Who wrote a log row: the transaction branch (``gid``/``branch_id``, empty for public RPCs)."""

    gid: str = ""
    branch_id: str = ""


# The log columns an entry is read from, in the order of :func:`_entry`.
_ENTRY_NAMES = (
    "id",
    "out_trade_no",
    "type",
    "user_id",
    "amount",
    "state",
    "gid",
    "spending_type",
    "spending_out_trade_no",
)
_ENTRY_COLUMNS = ", ".join(_ENTRY_NAMES)
_LOG_INSERT_COLUMNS = (
    "spending_type",
    "spending_out_trade_no",
    "out_trade_no",
    "type",
    "user_id",
    "amount",
    "state",
    "gid",
    "branch_id",
    "created_at",
    "updated_at",
)
_SUM_REFUNDED_OF = (
    "SELECT COALESCE(SUM(amount), 0) FROM points_log "
    "WHERE type = ? AND spending_out_trade_no = ? AND spending_type = ?"
)
_HOLD_MARKS = ", ".join("?" for _ in HOLD_TYPES)
_SPENT_AND_REFUNDED = (
    "SELECT "
    "(SELECT COALESCE(SUM(amount), 0) FROM points_log "
    f"WHERE user_id = ? AND type IN ({_HOLD_MARKS}) AND state = ?), "
    "(SELECT COALESCE(SUM(amount), 0) FROM points_log WHERE user_id = ? AND type = ?)"
)
_CREDIT_SQLITE = (
    "INSERT INTO points_account (user_id, balance, frozen, created_at, updated_at) VALUES (?, ?, 0, ?, ?) "
    "ON CONFLICT (user_id) DO UPDATE SET balance = balance + excluded.balance, "
    "updated_at = excluded.updated_at"
)
_CREDIT_MYSQL = (
    "INSERT INTO points_account (user_id, balance, frozen, created_at, updated_at) VALUES (?, ?, 0, ?, ?) "
    "ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance), updated_at = VALUES(updated_at)"
)
_HOLD = (
    "UPDATE points_account SET balance = balance - ?, frozen = frozen + ?, updated_at = ? "
    "WHERE user_id = ? AND balance >= ?"
)
_SPEND_HELD = (
    "UPDATE points_account SET frozen = frozen - ?, updated_at = ? WHERE user_id = ? AND frozen >= ?"
)
_RELEASE_HELD = (
    "UPDATE points_account SET frozen = frozen - ?, balance = balance + ?, updated_at = ? "
    "WHERE user_id = ? AND frozen >= ?"
)
_REARM = (
    "UPDATE points_log SET state = ?, user_id = ?, amount = ?, gid = ?, branch_id = ?, updated_at = ? "
    "WHERE id = ? AND state = ?"
)
_MOVE = "UPDATE points_log SET state = ?, updated_at = ? WHERE id = ? AND state = ?"


# ---------------------------------------------------------------------- units: the log


def insert_entry(
    conn: Conn,
    kind: EntryType,
    state: EntryState,
    move: Movement,
    *,
    origin: Origin,
    now: int,
    spending: SpendingRef | None = None,
) -> bool:
    """Insert-ignore a log row; True when inserted, False when ``(out_trade_no, type)`` exists."""
    sql = conn.dialect.insert_ignore("points_log", _LOG_INSERT_COLUMNS)
    row = (
        spending.type.value if spending else "",
        spending.out_trade_no if spending else "",
        move.out_trade_no,
        kind.value,
        move.user_id,
        move.amount,
        state.value,
        origin.gid,
        origin.branch_id,
        now,
        now,
    )
    return conn.execute(sql, row) == 1


def entry(conn: Conn, out_trade_no: str, kind: EntryType, *, lock: bool = False) -> LogRow | None:
    """The log row of ``(out_trade_no, kind)``; with ``lock`` read for update (newest version)."""
    sql = f"SELECT {_ENTRY_COLUMNS} FROM points_log WHERE out_trade_no = ? AND type = ?"
    row = conn.fetchone(sql + conn.dialect.for_update if lock else sql, (out_trade_no, kind.value))
    return None if row is None else LogRow(id=int(row[0]), entry=_entry(row))


def rearm_entry(conn: Conn, row_id: int, move: Movement, origin: Origin, now: int) -> bool:
    """Turn a cancelled TCC row into a new try of ``origin``; False when it is no longer cancelled."""
    params = (
        EntryState.TRYING.value,
        move.user_id,
        move.amount,
        origin.gid,
        origin.branch_id,
        now,
        row_id,
        EntryState.CANCELLED.value,
    )
    return conn.execute(_REARM, params) == 1


def move_entry(conn: Conn, row_id: int, src: EntryState, dst: EntryState, now: int) -> bool:
    """Compare-and-set a row's state from ``src`` to ``dst``; True when it was ``src``."""
    return conn.execute(_MOVE, (dst.value, now, row_id, src.value)) == 1


def refunded_of(conn: Conn, spending: SpendingRef) -> int:
    """The sum of the refunds naming ``spending``, as this transaction sees it."""
    params = (EntryType.REFUND.value, spending.out_trade_no, spending.type.value)
    row = conn.fetchone(_SUM_REFUNDED_OF, params)
    return int(row[0]) if row is not None else 0


def spent_and_refunded(conn: Conn, user_id: str) -> tuple[int, int]:
    """``(confirmed spending, refunds)`` of one user, from the log (as this transaction sees it)."""
    holds = tuple(kind.value for kind in HOLD_TYPES)
    params = (user_id, *holds, EntryState.CONFIRMED.value, user_id, EntryType.REFUND.value)
    row = conn.fetchone(_SPENT_AND_REFUNDED, params)
    return (int(row[0]), int(row[1])) if row is not None else (0, 0)


# ---------------------------------------------------------------------- units: accounts


def credit(conn: Conn, user_id: str, amount: int, now: int) -> None:
    """Add ``amount`` to the balance, creating the account when missing (one atomic upsert)."""
    conn.execute(_CREDIT_MYSQL if conn.dialect.is_mysql else _CREDIT_SQLITE, (user_id, amount, now, now))


def hold(conn: Conn, user_id: str, amount: int, now: int) -> bool:
    """Move ``amount`` from balance to frozen when the balance covers it; False (no change) if not."""
    return conn.execute(_HOLD, (amount, amount, now, user_id, amount)) == 1


def spend_held(conn: Conn, user_id: str, amount: int, now: int) -> bool:
    """Take ``amount`` off frozen (the held points are spent) when frozen covers it."""
    return conn.execute(_SPEND_HELD, (amount, now, user_id, amount)) == 1


def release_held(conn: Conn, user_id: str, amount: int, now: int) -> bool:
    """Move ``amount`` from frozen back to balance (the hold is given back) when frozen covers it."""
    return conn.execute(_RELEASE_HELD, (amount, amount, now, user_id, amount)) == 1


def account(conn: Conn, user_id: str) -> Account | None:
    """The account of ``user_id``, or None."""
    row = conn.fetchone("SELECT user_id, balance, frozen FROM points_account WHERE user_id = ?", (user_id,))
    return None if row is None else Account(str(row[0]), int(row[1]), int(row[2]))


# ---------------------------------------------------------------------- off path: the audit


def _sum(column: ColumnElement[Any], *where: ColumnElement[bool]) -> Any:
    """``COALESCE(SUM(column), 0)`` over the rows matching ``where``, as a scalar subquery."""
    return select(func.coalesce(func.sum(column), 0)).where(*where).scalar_subquery()


class PointsRepo:
    """The audit's queries on SQLAlchemy (off the hot path), for one database (SQLite or MySQL/MariaDB)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._mysql = is_mysql(engine)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction whose queries all see one consistent state (for the audit).

        MySQL: REPEATABLE READ (one read view for the whole transaction); SQLite: the engine's
        ``BEGIN IMMEDIATE`` already excludes writers for its duration.
        """
        try:
            async with self._engine.connect() as conn:
                if self._mysql:
                    await conn.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise TransientError(f"points database unavailable or locked: {exc.orig}") from exc

    async def audit(self, conn: AsyncConnection) -> AuditReport:
        """The totals and the spending/refund entries, read in ``conn``'s (snapshot) transaction."""
        log = points_log.c
        totals = select(
            _sum(log.amount, log.type == EntryType.GRANT.value),
            _sum(log.amount, log.type.in_(HOLD_TYPES), log.state == EntryState.CONFIRMED.value),
            _sum(log.amount, log.type == EntryType.REFUND.value),
            _sum(accounts.c.balance),
            _sum(accounts.c.frozen),
            select(func.count())
            .select_from(accounts)
            .where(or_(accounts.c.balance < 0, accounts.c.frozen < 0))
            .scalar_subquery(),
        )
        row = (await conn.execute(totals)).one()
        columns = [points_log.c[name] for name in _ENTRY_NAMES]
        listed = select(*columns).where(log.type.in_(AUDITED_TYPES)).order_by(log.id)
        entries = tuple(_entry(tuple(r)) for r in (await conn.execute(listed)).all())
        return AuditReport(
            issued=int(row[0]),
            spent=int(row[1]),
            refunded=int(row[2]),
            sum_balance=int(row[3]),
            sum_frozen=int(row[4]),
            negative_accounts=int(row[5]),
            entries=entries,
        )


def _entry(row: Sequence[Any]) -> LogEntry:
    """A log entry from a row of the :data:`_ENTRY_NAMES` columns."""
    spent_type, spent_key = str(row[7]), str(row[8])
    return LogEntry(
        out_trade_no=str(row[1]),
        type=EntryType(row[2]),
        user_id=str(row[3]),
        amount=int(row[4]),
        state=EntryState(row[5]),
        gid=str(row[6]),
        spending=SpendingRef(EntryType(spent_type), spent_key) if spent_type else None,
    )
