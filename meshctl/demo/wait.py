"""Waiting for asynchronous steps: poll with a deadline, never a blind sleep."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from meshkit.runtime.clock import Clock

T = TypeVar("T")

POLL_SECONDS = 0.2


class WaitTimeout(Exception):
    """The awaited condition did not come true before the deadline; the message says what was seen."""


async def wait_for(
    fetch: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    what: str,
    clock: Clock,
    within: float,
    describe: Callable[[T], str] = repr,
    interval: float = POLL_SECONDS,
) -> T:
    """Call ``fetch`` until ``done(value)``; returns that value, or raises :class:`WaitTimeout`.

    ``what`` names the awaited condition and ``describe`` renders the last value seen, both for the
    timeout message.
    """
    deadline = clock.monotonic() + within
    while True:
        value = await fetch()
        if done(value):
            return value
        if clock.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not reached within {within:g} s (last seen: {describe(value)})")
        await clock.sleep(interval)
