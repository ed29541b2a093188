"""In-process wake-ups: the fastest timer, for work due soon on the replica that knows about it.

JetStream schedules and the store sweeper cover other replicas, restarts and far-away times; a local
wake-up only saves their round trip (e.g. a retry due in 50 ms). Each gid has at most one pending
wake-up; scheduling again replaces it. One background task sleeps until the earliest wake-up and
then fires every one that is due in the same pass (a heap of due times, stale entries skipped), so
thousands of pending wake-ups cost no task each and a burst of due work reaches the engine together.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
from collections.abc import Callable

from meshkit.runtime.clock import Clock

Fire = Callable[[str, int], None]


class LocalWakeups:
    """Sleeps on the injected clock and calls ``fire(gid, due_ms)`` for every wake-up that is due."""

    def __init__(self, clock: Clock, fire: Fire, horizon_ms: int = 600_000) -> None:
        self._clock = clock
        self._fire = fire
        self._horizon_ms = horizon_ms
        self._pending: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def schedule(self, gid: str, at_ms: int) -> None:
        """Wake for ``gid`` at ``at_ms`` (ignored beyond the horizon: timers and the sweeper cover it)."""
        if self._pending.get(gid) == at_ms:
            return
        if at_ms - self._clock.now() * 1000 > self._horizon_ms:
            self.cancel(gid)
            return
        self._pending[gid] = at_ms
        earliest = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (at_ms, gid))
        if self._task is None:
            # A clean context: the first schedule() runs in some request's log fields (gid, trace),
            # which every later fire (and the drives it starts) would otherwise carry forever.
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="local-wakeups", context=contextvars.Context()
            )
        if earliest is None or at_ms < earliest:
            self._changed.set()

    def cancel(self, gid: str) -> None:
        """Drop the pending wake-up of ``gid``, if any (its heap entry is skipped when reached)."""
        self._pending.pop(gid, None)

    def pending(self) -> int:
        """How many wake-ups are pending."""
        return len(self._pending)

    async def close(self) -> None:
        """Cancel every pending wake-up."""
        self._pending.clear()
        self._heap.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _fire_due(self) -> int | None:
        """Fire every due wake-up; returns the next due time (None when nothing is pending)."""
        now = int(self._clock.now() * 1000)
        while self._heap:
            at_ms, gid = self._heap[0]
            if self._pending.get(gid) != at_ms:
                heapq.heappop(self._heap)  # cancelled or rescheduled
                continue
            if at_ms > now:
                return at_ms
            heapq.heappop(self._heap)
            del self._pending[gid]
            self._fire(gid, at_ms)
        return None

    async def _run(self) -> None:
        while True:
            self._changed.clear()
            next_at = self._fire_due()
            if next_at is None:
                await self._changed.wait()
                continue
            await self._sleep_until(next_at)

    async def _sleep_until(self, at_ms: int) -> None:
        """Sleep on the clock until ``at_ms``, or until an earlier wake-up is scheduled."""
        sleeper = asyncio.ensure_future(self._clock.sleep(at_ms / 1000 - self._clock.now()))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (sleeper, changed):
                waiter.cancel()
