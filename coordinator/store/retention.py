"""Retention of finished transactions: delete them (ops and history too) once they are old enough.

A finished transaction is kept ``finished_retention_days`` after it finished, so operators can still
``meshctl tx show`` it, and then deleted in batches, oldest first, so the tables do not grow without
bound. Unfinished transactions are never touched, however old. Every replica may run the cleanup (on a
:class:`~meshkit.runtime.periodic.Periodic`): the deletes are idempotent.

A batch first looks for expired gids on a read connection, walking ``(finished_at, ...)`` from the
oldest finish (unfinished rows, ``finished_at`` NULL, are skipped by the seek): with nothing due this is
one index seek and the engine's writers are never queued behind it. Only when there is something to
delete does it take a write transaction, which deletes those gids on the same conditions again.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Select, delete, select
from sqlalchemy.engine import Connection

from coordinator.engine.model import Status
from coordinator.store.queries import UNFINISHED_INDEX, using_index
from coordinator.store.sql import SqlTxStore
from coordinator.store.tables import trans_branch_op, trans_event, trans_global
from meshkit.runtime.clock import Clock, days_to_ms, now_ms

_FINAL = [int(s) for s in Status if s.final]


def expired_statement(cutoff: int, batch: int) -> Select[tuple[str]]:
    """The gids of up to ``batch`` transactions finished before ``cutoff``, oldest finish first."""
    g = trans_global.c
    # No status condition: it would steer the planner to the status index and a sort.
    walk = select(g.gid).where(g.finished_at < cutoff).order_by(g.finished_at).limit(batch)
    return using_index(walk, UNFINISHED_INDEX)


class FinishedTxCleaner:
    """Deletes finished transactions older than the retention period, in batches."""

    def __init__(
        self,
        store: SqlTxStore,
        clock: Clock,
        *,
        retention_days: float,
        batch: int,
    ) -> None:
        self._store = store
        self._clock = clock
        self._retention_ms = days_to_ms(retention_days)
        self._batch = batch

    async def delete_batch(self) -> int:
        """Delete one batch of expired transactions; returns how many were deleted."""
        cutoff = now_ms(self._clock) - self._retention_ms
        g = trans_global.c
        expired = expired_statement(cutoff, self._batch)
        gids = list(await self._store.read(lambda conn: conn.execute(expired).scalars().all()))
        if not gids:
            return 0

        def body(conn: Connection) -> int:
            # Only rows still there and final (a row cannot leave a final status, but be exact anyway).
            doomed = select(g.gid).where(g.gid.in_(gids), g.finished_at < cutoff, g.status.in_(_FINAL))
            due = list(conn.execute(doomed).scalars())
            if due:
                conn.execute(delete(trans_event).where(trans_event.c.gid.in_(due)))
                conn.execute(delete(trans_branch_op).where(trans_branch_op.c.gid.in_(due)))
                conn.execute(delete(trans_global).where(g.gid.in_(due)))
            return len(due)

        return await self._store.run(body)

    async def run_once(self) -> int:
        """Delete every expired transaction (batch after batch); returns how many."""
        total = 0
        while True:
            deleted = await self.delete_batch()
            total += deleted
            if deleted < self._batch:
                return total
            await asyncio.sleep(0)  # let API calls in between batches
