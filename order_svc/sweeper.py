"""The order sweeper: cancels overdue orders the deadline message missed, settles lost requests.

It runs every ``order.sweep_interval_seconds``; PlaceOrder requests whose initiator was lost are settled
from the coordinator's view of their transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError

from meshkit.clock import Clock
from meshkit.errors import MeshError

log = logging.getLogger(__name__)


class Sweeper:
    """Runs ``sweep_once`` on an interval (clock time) until stopped; errors are logged, not fatal."""

    def __init__(
        self,
        sweep_once: Callable[[], Awaitable[int]],
        clock: Clock,
        interval_seconds: float,
        name: str = "order-sweeper",
    ) -> None:
        self._sweep_once = sweep_once
        self._clock = clock
        self._interval = interval_seconds
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sweeping in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(self._interval)
            try:
                handled = await self._sweep_once()
            except (MeshError, SQLAlchemyError, OSError) as exc:
                log.warning("%s failed (%s); next round retries", self._name, exc)
                continue
            if handled:
                log.info("%s handled %d", self._name, handled, extra={"handled": handled})

    async def stop(self) -> None:
        """Stop sweeping."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
