"""The SQL subtransaction barrier: the barrier row and the business change commit (or not) together.

Rules (DESIGN.md section 5; DTM's barrier plus an explicit late-try rejection):

* try / action / confirm: insert-ignore the own op (reason = op). Inserted: run the business code.
  Not inserted: skip it; if the existing row's reason is cancel/compensate the branch was rolled back
  before its try arrived, so the late try is rejected (:class:`LateTryRejected`); else a duplicate, OK.
* msg (the MSG initiator's local transaction, branch ``00``): like try, but a duplicate is an error
  (:class:`DuplicateMessage`), and a row written by :meth:`SqlBarrier.query_prepared` refuses it
  (:class:`MessageRolledBack`).
* cancel / compensate: insert-ignore the origin op (try/action) with reason = the rollback op; if that
  inserts, the origin never ran: empty rollback, skip business. Then insert-ignore the own op; not
  inserted: duplicate, skip business.
* Any exception from the business code rolls the whole local transaction back: no barrier row remains.

Concurrency: on MySQL/MariaDB an INSERT IGNORE on a key another open transaction just inserted waits
for that transaction, so two identical calls serialise on the row; on SQLite every write transaction
is ``BEGIN IMMEDIATE`` and so serialised as a whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

from sqlalchemy import select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import Insert

from meshkit.barrier.metrics import BarrierMetrics
from meshkit.barrier.outcome import MSG_BRANCH, REASON_ROLLBACK, BarrierResult, Outcome
from meshkit.barrier.rules import check_prepared, forward_not_inserted, rollback_skip
from meshkit.barrier.table import tx_barrier
from meshkit.errors import TransientError
from meshkit.infra.db import is_mysql, is_sqlite, session_factory
from meshkit.runtime.clock import Clock, now_ms
from meshkit.tx.context import ORIGIN_OF, Op, TxContext

T = TypeVar("T")

Business = Callable[[AsyncSession], Awaitable[T]]


class SqlBarrier:
    """The barrier on the participant's own database (table ``tx_barrier``, SQLite or MySQL/MariaDB)."""

    def __init__(self, engine: AsyncEngine, clock: Clock, *, metrics: BarrierMetrics | None = None) -> None:
        self._metrics = metrics
        if not (is_sqlite(engine) or is_mysql(engine)):
            raise ValueError(f"barrier: unsupported database {engine.dialect.name!r}")
        self._mysql = is_mysql(engine)
        self._clock = clock
        self._sessions = session_factory(engine)

    async def call(self, ctx: TxContext, business: Business[T]) -> BarrierResult[T]:
        """Open a session and transaction, apply the barrier, run ``business`` if due, commit.

        Raises :class:`LateTryRejected`, :class:`DuplicateMessage` or :class:`MessageRolledBack`
        (all ``BranchFailure``), whatever ``business`` raises (after rolling back), or
        :class:`TransientError` for database lock/connection failures.
        """
        async with self._transaction(ctx.gid) as session:
            return await self.call_in(session, ctx, business)

    async def call_in(self, session: AsyncSession, ctx: TxContext, business: Business[T]) -> BarrierResult[T]:
        """Like :meth:`call` inside the caller's already-begun transaction on ``session``.

        The caller commits; if this raises, the caller must roll back (so no barrier row remains).
        """
        origin = ORIGIN_OF.get(ctx.op)
        call = (
            self._rollback_op(session, ctx, origin, business)
            if origin is not None
            else self._forward_op(session, ctx, business)
        )
        return await (call if self._metrics is None else self._metrics.observe(call))

    async def query_prepared(self, gid: str) -> None:
        """MSG check-back: return when ``gid``'s local transaction committed, else raise BranchFailure.

        When no local transaction committed yet, this writes the ``rollback`` row so that a late local
        transaction is refused. A local transaction still in flight holds the row (MySQL) or the write
        lock (SQLite), so this waits for it to finish and then answers its outcome.
        """
        async with self._transaction(gid) as session:
            inserted = await self._insert(session, gid, MSG_BRANCH, Op.MSG.value, REASON_ROLLBACK)
            reason = None if inserted else await self._reason(session, gid, MSG_BRANCH, Op.MSG.value)
        check_prepared(gid, inserted, reason)

    async def _forward_op(
        self, session: AsyncSession, ctx: TxContext, business: Business[T]
    ) -> BarrierResult[T]:
        op = ctx.op.value
        if await self._insert(session, ctx.gid, ctx.branch_id, op, op):
            return BarrierResult(Outcome.APPLIED, await business(session))
        return forward_not_inserted(ctx, await self._reason(session, ctx.gid, ctx.branch_id, op))

    async def _rollback_op(
        self, session: AsyncSession, ctx: TxContext, origin: Op, business: Business[T]
    ) -> BarrierResult[T]:
        op = ctx.op.value
        origin_inserted = await self._insert(session, ctx.gid, ctx.branch_id, origin.value, op)
        own_inserted = await self._insert(session, ctx.gid, ctx.branch_id, op, op)
        skipped = rollback_skip(origin_inserted, own_inserted)
        if skipped is not None:
            return skipped
        return BarrierResult(Outcome.APPLIED, await business(session))

    async def _insert(self, session: AsyncSession, gid: str, branch_id: str, op: str, reason: str) -> bool:
        """Insert-ignore one barrier row; True when it was inserted (not there before)."""
        values = {
            "gid": gid,
            "branch_id": branch_id,
            "op": op,
            "reason": reason,
            "created_at": now_ms(self._clock),
        }
        stmt: Insert
        if self._mysql:
            stmt = mysql_insert(tx_barrier).values(values).prefix_with("IGNORE")
        else:
            stmt = sqlite_insert(tx_barrier).values(values).on_conflict_do_nothing()
        result = cast(CursorResult[Any], await session.execute(stmt))
        return result.rowcount == 1

    async def _reason(self, session: AsyncSession, gid: str, branch_id: str, op: str) -> str | None:
        """The reason of an existing row, read with a share lock (the newest committed version)."""
        stmt = (
            select(tx_barrier.c.reason)
            .where(tx_barrier.c.gid == gid, tx_barrier.c.branch_id == branch_id, tx_barrier.c.op == op)
            .with_for_update(read=True)
        )
        reason: str | None = (await session.execute(stmt)).scalar_one_or_none()
        return reason

    @asynccontextmanager
    async def _transaction(self, gid: str) -> AsyncIterator[AsyncSession]:
        """A session in a transaction that commits on success; lock/connection errors become transient."""
        try:
            async with self._sessions() as session, session.begin():
                yield session
        except OperationalError as exc:
            raise TransientError(f"barrier {gid}: database unavailable or locked: {exc.orig}") from exc
