"""Injectable clocks: production code takes a :class:`Clock`, tests pass a :class:`ManualClock`."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

MS_PER_DAY = 86_400_000


def days_to_ms(days: float) -> int:
    """``days`` (a period in days, as settings give it) in integer milliseconds."""
    return int(days * MS_PER_DAY)


class Clock(Protocol):
    """A source of wall time (epoch seconds) and monotonic time, and a way to wait."""

    def now(self) -> float:
        """Wall-clock time in seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds for measuring intervals."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        """Wall-clock time in seconds since the epoch."""
        return time.time()

    def monotonic(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        await asyncio.sleep(max(0.0, seconds))


def now_ms(clock: Clock) -> int:
    """The clock's wall time in integer milliseconds."""
    return int(clock.now() * 1000)


class ManualClock:
    """A clock that only moves when a test advances it; sleepers wake when their time is reached."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        """The current manual wall time."""
        return self._now

    def monotonic(self) -> float:
        """The current manual monotonic time."""
        return self._mono

    async def sleep(self, seconds: float) -> None:
        """Wait until the test has advanced the clock by ``seconds``."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._mono + seconds, fut))
        await fut

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline passed."""
        self._now += seconds
        self._mono += seconds
        due = [(t, f) for t, f in self._sleepers if t <= self._mono]
        self._sleepers = [(t, f) for t, f in self._sleepers if t > self._mono]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)

    def set(self, wall: float) -> None:
        """Jump the wall clock to ``wall`` (may go backwards; the monotonic clock does not)."""
        self._now = wall
