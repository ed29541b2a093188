"""Run one round of background work on an interval (clock time) until stopped.

Sweepers and cleanups of every process use it: a round that fails is logged and the next one retries,
so a database or network hiccup never stops the background work for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError

from meshkit.errors import MeshError
from meshkit.runtime.clock import Clock

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``round_once`` every ``interval_seconds`` until :meth:`stop`; returns of it are counts logged."""

    def __init__(
        self,
        round_once: Callable[[], Awaitable[int]],
        clock: Clock,
        interval_seconds: float,
        name: str,
        *,
        run_at_start: bool = False,
    ) -> None:
        self._round_once = round_once
        self._clock = clock
        self._interval = interval_seconds
        self._name = name
        self._run_at_start = run_at_start
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the rounds in the background (the first one now with ``run_at_start``, else later)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=self._name, context=contextvars.Context()
            )

    async def _run(self) -> None:
        if not self._run_at_start:
            await self._clock.sleep(self._interval)
        while True:
            try:
                handled = await self._round_once()
            except (MeshError, SQLAlchemyError, OSError) as exc:
                log.warning("%s failed (%s); the next round retries", self._name, exc)
            else:
                if handled:
                    log.info("%s handled %d", self._name, handled, extra={"handled": handled})
            await self._clock.sleep(self._interval)

    async def stop(self) -> None:
        """Stop the rounds (a running one is cancelled)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
