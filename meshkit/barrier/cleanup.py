"""Background deletion of the barrier rows of final global transactions, past the retention period.

A barrier row may go only when BOTH hold: it is older than ``barrier.retention_days``, and the
coordinator says its gid is final. Age alone is never enough: a cancel or compensate still being
retried after the rows are gone would find no origin row, be taken for an empty rollback, answer OK
and skip its undo (frozen points, reserved stock never returned). Stuck, paused and unfinished
transactions therefore keep their rows however old they are.

The same holds for the MSG check-back row (branch ``00``, op ``msg``): it stays while the message is
unfinished, so the check-back's maximum timeout no longer has to stay below the retention period.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from meshkit.barrier.finality import FinalityOracle, FinalityUnavailable
from meshkit.barrier.table import tx_barrier
from meshkit.infra.db import rowcount
from meshkit.runtime.clock import Clock, days_to_ms, now_ms
from meshkit.settings.config import BarrierSettings

log = logging.getLogger(__name__)

# (created_at, gid) of the last row looked at: the next batch starts after it.
Cursor = tuple[int, str]


class BarrierCleaner:
    """Deletes every ``tx_barrier`` row of a final gid once its oldest is past ``settings.retention_days``.

    Finality comes from the coordinator through ``oracle`` (a :class:`FinalityOracle`): the rows of
    gids it reports finished (SUCCEEDED/FAILED) or unknown are deleted, every other row is kept.
    Unknown is safe to delete because the coordinator records every gid before any branch or local
    transaction of it runs (TCC/MSG Prepare, SAGA Submit) and never forgets an unfinished one: it drops
    only final transactions, after its own retention. A gid it does not know is therefore either long
    final or never was a transaction, and no coordinator will drive a branch op of it again.

    One round walks the old rows in ``created_at, gid`` order, ``cleanup_batch`` rows at a time: one
    oracle call and one DELETE per batch, each batch its own short transaction. The cursor moves past
    unfinished gids, so a table full of old unfinished rows ends the round instead of looping. When the
    coordinator cannot answer, the round stops and deletes nothing more; the next round tries again.
    """

    def __init__(
        self, engine: AsyncEngine, settings: BarrierSettings, clock: Clock, oracle: FinalityOracle
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._clock = clock
        self._oracle = oracle
        self.rounds = 0  # rounds finished (deleted, or gave up on an unreachable coordinator)

    @property
    def retention_ms(self) -> int:
        """The retention period in milliseconds."""
        return days_to_ms(self._settings.retention_days)

    async def run_once(self) -> int:
        """One round as of the clock's now: the number of rows deleted.

        Raises :class:`FinalityUnavailable` when the coordinator cannot answer (batches already
        answered stay deleted; they were final).
        """
        cutoff = now_ms(self._clock) - self.retention_ms
        batch = self._settings.cleanup_batch
        cursor: Cursor | None = None
        total = 0
        while True:
            rows = await self._old_rows(cutoff, cursor, batch)
            if not rows:
                return total
            gids = list(dict.fromkeys(gid for _, gid in rows))
            final = await self._oracle.final(gids)
            total += await self._delete(sorted(final & set(gids)))
            if len(rows) < batch:
                return total
            cursor = rows[-1]

    async def run_forever(self) -> None:
        """Run :meth:`run_once` every ``cleanup_interval_seconds`` (clock time) until cancelled.

        Database errors and an unreachable coordinator are logged and the next round tries again.
        """
        while True:
            try:
                deleted = await self.run_once()
            except FinalityUnavailable as exc:
                log.warning("barrier cleanup skipped, finality unknown; retrying next round: %s", exc)
            except (SQLAlchemyError, OSError):
                log.exception("barrier cleanup failed; retrying next round")
            else:
                log.info("barrier cleanup deleted %d rows", deleted, extra={"deleted": deleted})
            self.rounds += 1
            await self._clock.sleep(self._settings.cleanup_interval_seconds)

    async def _old_rows(self, cutoff: int, cursor: Cursor | None, batch: int) -> list[Cursor]:
        c = tx_barrier.c
        stmt = select(c.created_at, c.gid).where(c.created_at < cutoff)
        if cursor is not None:
            at, gid = cursor
            # Past the cursor's gid: a gid split across batches was already asked about (and, when
            # final, all its old rows deleted).
            stmt = stmt.where(or_(c.created_at > at, and_(c.created_at == at, c.gid > gid)))
        stmt = stmt.order_by(c.created_at, c.gid).limit(batch)
        async with self._engine.connect() as conn:
            return [(int(at), str(gid)) for at, gid in (await conn.execute(stmt)).all()]

    async def _delete(self, gids: Sequence[str]) -> int:
        # Every row of the gid, the young ones too: it is final, so no later op of it can come, and a
        # partial delete could drop a try row while its cancel row stays (the rule is per gid).
        if not gids:
            return 0
        stmt = delete(tx_barrier).where(tx_barrier.c.gid.in_(gids))
        async with self._engine.begin() as conn:
            return rowcount(await conn.execute(stmt))
