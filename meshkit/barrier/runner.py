"""The SQL barrier on the store runner: barrier rows, business statements and commit in ONE unit of work.

Same rules, results and ``tx_barrier`` table as :class:`meshkit.barrier.sql.SqlBarrier` (the decisions
are shared in :mod:`meshkit.barrier.rules`), but the business code is a plain synchronous function of a
:class:`~meshkit.store.Conn`, and the whole op costs one hop to the runner's thread::

    def freeze(conn: Conn) -> int:
        changed = conn.execute(
            "UPDATE account SET balance = balance - ?, frozen = frozen + ? WHERE owner = ? AND balance >= ?",
            (amount, amount, owner, amount),
        )
        if changed != 1:
            raise BranchFailure("insufficient balance")  # rolls back the barrier row with it
        return amount

    result = await barrier.run(ctx, freeze)  # BarrierResult[int]

Concurrency: on SQLite the runner's single writer serialises every unit; on MySQL/MariaDB an INSERT
IGNORE on a key another open transaction just inserted waits for that transaction, so two identical
calls serialise on the row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from meshkit.barrier.metrics import BarrierMetrics
from meshkit.barrier.outcome import MSG_BRANCH, REASON_ROLLBACK, BarrierResult, Outcome
from meshkit.barrier.rules import check_prepared, forward_not_inserted, rollback_skip
from meshkit.runtime.clock import Clock, now_ms
from meshkit.store.conn import Conn, Unit
from meshkit.store.dialect import Dialect
from meshkit.store.runner import StoreRunner
from meshkit.tx.context import ORIGIN_OF, Op, TxContext

T = TypeVar("T")

_COLUMNS = ("gid", "branch_id", "op", "reason", "created_at")


class _Sql:
    """The barrier's two statements in one dialect."""

    __slots__ = ("insert", "reason")

    def __init__(self, dialect: Dialect) -> None:
        self.insert = dialect.insert_ignore("tx_barrier", _COLUMNS)
        self.reason = (
            "SELECT reason FROM tx_barrier WHERE gid = ? AND branch_id = ? AND op = ?" + dialect.share_lock
        )


class RunnerBarrier:
    """The SQL barrier as units of work for a :class:`~meshkit.store.StoreRunner`.

    :meth:`run` is the usual entry; :meth:`unit` gives the barrier-wrapped unit itself, to run inside a
    larger unit of the caller's (it then commits or rolls back with that unit).
    """

    def __init__(self, runner: StoreRunner, clock: Clock, *, metrics: BarrierMetrics | None = None) -> None:
        self._metrics = metrics
        self._runner = runner
        self._clock = clock
        self._sql = _Sql(runner.dialect)

    async def run(self, ctx: TxContext, business: Unit[T]) -> BarrierResult[T]:
        """Apply the barrier, run ``business`` if due, commit; all in one unit on the runner.

        Raises :class:`~meshkit.barrier.LateTryRejected`, :class:`~meshkit.barrier.DuplicateMessage`
        or :class:`~meshkit.barrier.MessageRolledBack` (all ``BranchFailure``), whatever ``business``
        raises (nothing of the op is then committed), or :class:`~meshkit.errors.TransientError`.
        """
        call = self._runner.run(self.unit(ctx, business))
        return await (call if self._metrics is None else self._metrics.observe(call))

    def unit(self, ctx: TxContext, business: Unit[T]) -> Callable[[Conn], BarrierResult[T]]:
        """The barrier around ``business`` as a unit of work (created_at = the clock's now, taken here)."""
        at = now_ms(self._clock)
        origin = ORIGIN_OF.get(ctx.op)
        if origin is not None:
            return lambda conn: self._rollback_op(conn, ctx, origin, business, at)
        return lambda conn: self._forward_op(conn, ctx, business, at)

    async def query_prepared(self, gid: str) -> None:
        """MSG check-back: return when ``gid``'s local transaction committed, else raise BranchFailure.

        Same contract as :meth:`meshkit.barrier.SqlBarrier.query_prepared`: when nothing committed yet
        this writes the ``rollback`` row, so a late local transaction is refused.
        """
        at = now_ms(self._clock)
        # Decided after the commit: the rollback row this writes must stay when the answer is "no".
        inserted, reason = await self._runner.run(lambda conn: self._mark_prepared(conn, gid, at))
        check_prepared(gid, inserted, reason)

    def _mark_prepared(self, conn: Conn, gid: str, at: int) -> tuple[bool, str | None]:
        op = Op.MSG.value
        inserted = self._insert(conn, (gid, MSG_BRANCH, op, REASON_ROLLBACK, at))
        return inserted, None if inserted else self._reason(conn, gid, MSG_BRANCH, op)

    def _forward_op(self, conn: Conn, ctx: TxContext, business: Unit[T], at: int) -> BarrierResult[T]:
        op = ctx.op.value
        if self._insert(conn, (ctx.gid, ctx.branch_id, op, op, at)):
            return BarrierResult(Outcome.APPLIED, business(conn))
        return forward_not_inserted(ctx, self._reason(conn, ctx.gid, ctx.branch_id, op))

    def _rollback_op(
        self, conn: Conn, ctx: TxContext, origin: Op, business: Unit[T], at: int
    ) -> BarrierResult[T]:
        op = ctx.op.value
        origin_inserted = self._insert(conn, (ctx.gid, ctx.branch_id, origin.value, op, at))
        own_inserted = self._insert(conn, (ctx.gid, ctx.branch_id, op, op, at))
        skipped: BarrierResult[Any] | None = rollback_skip(origin_inserted, own_inserted)
        if skipped is not None:
            return skipped
        return BarrierResult(Outcome.APPLIED, business(conn))

    def _insert(self, conn: Conn, row: tuple[str, str, str, str, int]) -> bool:
        """Insert-ignore one barrier row (gid, branch_id, op, reason, created_at); True when inserted."""
        return conn.execute(self._sql.insert, row) == 1

    def _reason(self, conn: Conn, gid: str, branch_id: str, op: str) -> str | None:
        row = conn.fetchone(self._sql.reason, (gid, branch_id, op))
        return None if row is None else str(row[0])
