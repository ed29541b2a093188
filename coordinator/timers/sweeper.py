"""The store sweeper: finds due work in the database every few seconds, so nothing waits forever.

Timers (local wake-ups, JetStream schedules) are hints that make things fast; the sweeper is what
makes them safe: when NATS is down, a replica crashed mid-call (its lease lapsed), or a fire was lost,
the next sweep claims the transaction and drives it. Each sweep also refreshes the store-derived
gauges (``mesh_tx_inflight``, ``mesh_tx_oldest_unfinished_seconds``, ``mesh_tx_stuck``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging

from coordinator.engine.service import TxEngine
from coordinator.store.queries import stats
from coordinator.store.sql import SqlTxStore
from meshkit.runtime.clock import Clock

log = logging.getLogger(__name__)


class Sweeper:
    """Periodically claims due transactions for ``engine``; runs until :meth:`stop`."""

    def __init__(
        self,
        engine: TxEngine,
        store: SqlTxStore,
        clock: Clock,
        *,
        interval_seconds: float,
        batch: int = 100,
    ) -> None:
        self._engine = engine
        self._store = store
        self._clock = clock
        self._interval = interval_seconds
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sweeping in the background."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="coordinator-sweeper", context=contextvars.Context()
            )

    async def stop(self) -> None:
        """Stop sweeping."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def sweep_once(self) -> int:
        """One sweep: claim and start driving due work, refresh the gauges; returns how many were claimed."""
        claimed = await self._engine.sweep(self._batch)
        await self.refresh_gauges()
        return claimed

    async def refresh_gauges(self) -> None:
        """Set the store-derived gauges from one stats query."""
        current = await stats(self._store, include_finished=False)
        oldest = current.oldest_unfinished_ms
        age = max(0.0, self._clock.now() - oldest / 1000) if oldest is not None else 0.0
        self._engine.metrics.set_gauges(current.unfinished(), age, current.stuck)

    async def _run(self) -> None:
        while True:
            claimed = 0
            try:
                claimed = await self.sweep_once()
            except Exception:
                log.exception("sweep failed; trying again in %.1fs", self._interval)
            # A full batch means there is more due work: come back at once (but let others run).
            await self._clock.sleep(0 if claimed >= self._batch else self._interval)
