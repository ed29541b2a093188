"""pay_svc's background loops: the order notifier and the nonce cleanup (the barrier has its own)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from meshkit.runtime.clock import Clock

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[int]]


async def run_periodically(name: str, job: Job, clock: Clock, interval_seconds: float) -> None:
    """Run ``job`` now and then every ``interval_seconds`` of ``clock`` time until cancelled.

    A failing round is logged and the next one tries again; a round that did work is logged at DEBUG.
    """
    while True:
        try:
            done = await job()
        except Exception:
            log.exception("%s failed; trying again in %.1fs", name, interval_seconds)
        else:
            if done:
                log.debug("%s handled %d", name, done, extra={"job": name, "count": done})
        await clock.sleep(interval_seconds)


class Background:
    """A set of named background tasks, cancelled together."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task called ``name``."""
        self._tasks.append(asyncio.get_running_loop().create_task(coro, name=name))

    async def stop(self) -> None:
        """Cancel every task and wait for it to end."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except Exception:
                    log.exception("background task %s had failed", task.get_name())
