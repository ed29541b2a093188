"""Handing results computed on a store thread back to the awaiting asyncio futures, in one hop per batch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

# (future, ok, value or exception)
Outcome = tuple["asyncio.Future[Any]", bool, Any]


def deliver(loop: asyncio.AbstractEventLoop, outcomes: Sequence[Outcome]) -> None:
    """Resolve ``outcomes`` on ``loop`` with one thread-safe callback (one wake-up for a whole group)."""
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        loop.call_soon_threadsafe(_resolve, outcomes)


def _resolve(outcomes: Sequence[Outcome]) -> None:
    for future, ok, value in outcomes:
        if future.done():  # the caller was cancelled: it is told nothing
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
