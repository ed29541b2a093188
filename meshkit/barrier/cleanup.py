"""Background deletion of barrier rows past the retention period, in batches."""

from __future__ import annotations

import logging

from sqlalchemy import TextClause, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from meshkit.clock import Clock, now_ms
from meshkit.config import BarrierSettings
from meshkit.db import is_mysql

log = logging.getLogger(__name__)

MS_PER_DAY = 86_400_000

_DELETE_MYSQL = text("DELETE FROM tx_barrier WHERE created_at < :cutoff ORDER BY created_at LIMIT :batch")
_DELETE_SQLITE = text(
    "DELETE FROM tx_barrier WHERE rowid IN "
    "(SELECT rowid FROM tx_barrier WHERE created_at < :cutoff ORDER BY created_at LIMIT :batch)"
)


class BarrierCleaner:
    """Deletes ``tx_barrier`` rows whose ``created_at`` is older than ``settings.retention_days``.

    Each batch is its own short transaction, so the cleanup never holds locks for long.
    """

    def __init__(self, engine: AsyncEngine, settings: BarrierSettings, clock: Clock) -> None:
        self._engine = engine
        self._settings = settings
        self._clock = clock
        self._delete: TextClause = _DELETE_MYSQL if is_mysql(engine) else _DELETE_SQLITE

    @property
    def retention_ms(self) -> int:
        """The retention period in milliseconds."""
        return int(self._settings.retention_days * MS_PER_DAY)

    async def run_once(self) -> int:
        """Delete every row past retention (as of the clock's now), batch by batch; the count deleted."""
        cutoff = now_ms(self._clock) - self.retention_ms
        batch = self._settings.cleanup_batch
        total = 0
        while True:
            deleted = await self._delete_batch(cutoff, batch)
            total += deleted
            if deleted < batch:
                return total

    async def run_forever(self) -> None:
        """Run :meth:`run_once` every ``cleanup_interval_seconds`` (clock time) until cancelled.

        Database errors are logged and the next round tries again.
        """
        while True:
            try:
                deleted = await self.run_once()
            except (SQLAlchemyError, OSError):
                log.exception("barrier cleanup failed; retrying next round")
            else:
                log.info("barrier cleanup deleted %d rows", deleted, extra={"deleted": deleted})
            await self._clock.sleep(self._settings.cleanup_interval_seconds)

    async def _delete_batch(self, cutoff: int, batch: int) -> int:
        async with self._engine.begin() as conn:
            result = await conn.execute(self._delete, {"cutoff": cutoff, "batch": batch})
            return int(result.rowcount)
