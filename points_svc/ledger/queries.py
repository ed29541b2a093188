"""Queries on the points tables. Every method runs inside the caller's transaction (session).

Balance changes are single conditional UPDATEs (``... WHERE balance >= :a``), never read-then-write,
so concurrent tries on one account serialise on its row lock and none can overdraw it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import Insert

from meshkit.errors import TransientError
from meshkit.infra.db import is_mysql, session_factory
from meshkit.infra.db import transaction as db_transaction
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


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


def _sum(column: ColumnElement[Any], *where: ColumnElement[bool]) -> Any:
    """``COALESCE(SUM(column), 0)`` over the rows matching ``where``, as a scalar subquery."""
    return select(func.coalesce(func.sum(column), 0)).where(*where).scalar_subquery()


class PointsRepo:
    """The points queries for one database (SQLite or MySQL/MariaDB)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._mysql = is_mysql(engine)
        self._sessions = session_factory(engine)

    # ------------------------------------------------------------------ transactions

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a write transaction that commits on success; lock/connection errors are transient."""
        async with db_transaction(self._sessions, "points") as session:
            yield session

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

    # ------------------------------------------------------------------ the log

    async def insert_entry(
        self,
        session: AsyncSession,
        kind: EntryType,
        state: EntryState,
        move: Movement,
        *,
        origin: Origin,
        now: int,
        spending: SpendingRef | None = None,
    ) -> bool:
        """Insert-ignore a log row; True when inserted, False when ``(out_trade_no, type)`` exists."""
        values = {
            "spending_type": spending.type.value if spending else "",
            "spending_out_trade_no": spending.out_trade_no if spending else "",
            "out_trade_no": move.out_trade_no,
            "type": kind.value,
            "user_id": move.user_id,
            "amount": move.amount,
            "state": state.value,
            "gid": origin.gid,
            "branch_id": origin.branch_id,
            "created_at": now,
            "updated_at": now,
        }
        stmt: Insert
        if self._mysql:
            stmt = mysql_insert(points_log).values(values).prefix_with("IGNORE")
        else:
            stmt = sqlite_insert(points_log).values(values).on_conflict_do_nothing()
        return _rowcount(await session.execute(stmt)) == 1

    async def entry(
        self, session: AsyncSession, out_trade_no: str, kind: EntryType, *, lock: bool = False
    ) -> LogRow | None:
        """The log row of ``(out_trade_no, kind)``; with ``lock`` read for update (newest version)."""
        stmt = select(points_log).where(points_log.c.out_trade_no == out_trade_no, points_log.c.type == kind)
        if lock:
            stmt = stmt.with_for_update()
        row = (await session.execute(stmt)).mappings().first()
        if row is None:
            return None
        return LogRow(id=int(row["id"]), entry=_entry(row))

    async def rearm_entry(
        self, session: AsyncSession, row_id: int, move: Movement, origin: Origin, now: int
    ) -> bool:
        """Turn a cancelled TCC row into a new try of ``origin``; False when it is no longer cancelled."""
        stmt = (
            update(points_log)
            .where(points_log.c.id == row_id, points_log.c.state == EntryState.CANCELLED.value)
            .values(
                state=EntryState.TRYING.value,
                user_id=move.user_id,
                amount=move.amount,
                gid=origin.gid,
                branch_id=origin.branch_id,
                updated_at=now,
            )
        )
        return _rowcount(await session.execute(stmt)) == 1

    async def move_entry(
        self, session: AsyncSession, row_id: int, src: EntryState, dst: EntryState, now: int
    ) -> bool:
        """Compare-and-set a row's state from ``src`` to ``dst``; True when it was ``src``."""
        stmt = (
            update(points_log)
            .where(points_log.c.id == row_id, points_log.c.state == src.value)
            .values(state=dst.value, updated_at=now)
        )
        return _rowcount(await session.execute(stmt)) == 1

    # ------------------------------------------------------------------ accounts

    async def credit(self, session: AsyncSession, user_id: str, amount: int, now: int) -> None:
        """Add ``amount`` to the balance, creating the account when missing (one atomic upsert)."""
        values = {"user_id": user_id, "balance": amount, "frozen": 0, "created_at": now, "updated_at": now}
        grown = {"balance": accounts.c.balance + amount, "updated_at": now}
        if self._mysql:
            await session.execute(mysql_insert(accounts).values(values).on_duplicate_key_update(**grown))
        else:
            stmt = sqlite_insert(accounts).values(values)
            await session.execute(stmt.on_conflict_do_update(index_elements=["user_id"], set_=grown))

    async def hold(self, session: AsyncSession, user_id: str, amount: int, now: int) -> bool:
        """Move ``amount`` from balance to frozen when the balance covers it; False (no change) if not."""
        stmt = (
            update(accounts)
            .where(accounts.c.user_id == user_id, accounts.c.balance >= amount)
            .values(balance=accounts.c.balance - amount, frozen=accounts.c.frozen + amount, updated_at=now)
        )
        return _rowcount(await session.execute(stmt)) == 1

    async def spend_held(self, session: AsyncSession, user_id: str, amount: int, now: int) -> bool:
        """Take ``amount`` off frozen (the held points are spent) when frozen covers it."""
        stmt = (
            update(accounts)
            .where(accounts.c.user_id == user_id, accounts.c.frozen >= amount)
            .values(frozen=accounts.c.frozen - amount, updated_at=now)
        )
        return _rowcount(await session.execute(stmt)) == 1

    async def release_held(self, session: AsyncSession, user_id: str, amount: int, now: int) -> bool:
        """Move ``amount`` from frozen back to balance (the hold is given back) when frozen covers it."""
        stmt = (
            update(accounts)
            .where(accounts.c.user_id == user_id, accounts.c.frozen >= amount)
            .values(frozen=accounts.c.frozen - amount, balance=accounts.c.balance + amount, updated_at=now)
        )
        return _rowcount(await session.execute(stmt)) == 1

    async def account(self, session: AsyncSession, user_id: str) -> Account | None:
        """The account of ``user_id``, or None."""
        stmt = select(accounts.c.user_id, accounts.c.balance, accounts.c.frozen).where(
            accounts.c.user_id == user_id
        )
        row = (await session.execute(stmt)).first()
        return None if row is None else Account(str(row[0]), int(row[1]), int(row[2]))

    async def spent_and_refunded(self, session: AsyncSession, user_id: str) -> tuple[int, int]:
        """``(confirmed spending, refunds)`` of one user, from the log (as this transaction sees it)."""
        mine = points_log.c.user_id == user_id
        stmt = select(
            _sum(
                points_log.c.amount,
                mine,
                points_log.c.type.in_(HOLD_TYPES),
                points_log.c.state == EntryState.CONFIRMED.value,
            ),
            _sum(points_log.c.amount, mine, points_log.c.type == EntryType.REFUND.value),
        )
        row = (await session.execute(stmt)).one()
        return int(row[0]), int(row[1])

    async def refunded_of(self, session: AsyncSession, spending: SpendingRef) -> int:
        """The sum of the refunds naming ``spending``, as this transaction sees it."""
        log = points_log.c
        stmt = select(
            _sum(
                log.amount,
                log.type == EntryType.REFUND.value,
                log.spending_out_trade_no == spending.out_trade_no,
                log.spending_type == spending.type.value,
            )
        )
        return int((await session.execute(stmt)).scalar_one())

    # ------------------------------------------------------------------ audit

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
        listed = select(points_log).where(log.type.in_(AUDITED_TYPES)).order_by(log.id)
        entries = tuple(_entry(r) for r in (await conn.execute(listed)).mappings())
        return AuditReport(
            issued=int(row[0]),
            spent=int(row[1]),
            refunded=int(row[2]),
            sum_balance=int(row[3]),
            sum_frozen=int(row[4]),
            negative_accounts=int(row[5]),
            entries=entries,
        )


def _entry(row: Any) -> LogEntry:
    spent_type, spent_key = str(row["spending_type"]), str(row["spending_out_trade_no"])
    return LogEntry(
        out_trade_no=str(row["out_trade_no"]),
        type=EntryType(row["type"]),
        user_id=str(row["user_id"]),
        amount=int(row["amount"]),
        state=EntryState(row["state"]),
        gid=str(row["gid"]),
        spending=SpendingRef(EntryType(spent_type), spent_key) if spent_type else None,
    )
