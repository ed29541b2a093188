"""In-process wake-ups: the fastest timer, for work due soon on the replica that knows about it.

JetStream schedules and the store sweeper cover other replicas, restarts and far-away times; a local
wake-up only saves their round trip (e.g. a retry due in 50 ms). Each gid has at most one pending
wake-up; scheduling again replaces it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from meshkit.runtime.clock import Clock

Fire = Callable[[str, int], None]


class LocalWakeups:
    """Sleeps on the injected clock and calls ``fire(gid, due_ms)`` when a wake-up is due."""

    def __init__(self, clock: Clock, fire: Fire, horizon_ms: int = 600_000) -> None:
        self._clock = clock
        self._fire = fire
        self._horizon_ms = horizon_ms
        self._pending: dict[str, tuple[int, asyncio.Task[None]]] = {}

    def schedule(self, gid: str, at_ms: int) -> None:
        """Wake for ``gid`` at ``at_ms`` (ignored beyond the horizon: timers and the sweeper cover it)."""
        current = self._pending.get(gid)
        if current is not None and current[0] == at_ms:
            return
        if at_ms - self._clock.now() * 1000 > self._horizon_ms:
            self.cancel(gid)
            return
        if current is not None:
            current[1].cancel()
        task = asyncio.get_running_loop().create_task(self._wait(gid, at_ms), name=f"wake-{gid}")
        self._pending[gid] = (at_ms, task)

    def cancel(self, gid: str) -> None:
        """Drop the pending wake-up of ``gid``, if any."""
        current = self._pending.pop(gid, None)
        if current is not None:
            current[1].cancel()

    def pending(self) -> int:
        """How many wake-ups are pending."""
        return len(self._pending)

    async def close(self) -> None:
        """Cancel every pending wake-up."""
        tasks = [task for _, task in self._pending.values()]
        self._pending.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _wait(self, gid: str, at_ms: int) -> None:
        await self._clock.sleep(at_ms / 1000 - self._clock.now())
        current = self._pending.get(gid)
        if current is not None and current[0] == at_ms:
            del self._pending[gid]
        self._fire(gid, at_ms)
