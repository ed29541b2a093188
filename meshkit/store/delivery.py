"""Handing results computed on a store thread back to the awaiting asyncio futures, in one hop per batch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

# (future, ok, value or exception)
Outcome = tuple["asyncio.Future[Any]", bool, Any]


def deliverable(exc: BaseException) -> BaseException:
    """``exc`` as a future can carry it: StopIteration/StopAsyncIteration become RuntimeError (from it).

    ``Future.set_exception`` refuses them (they would end the awaiting coroutine instead).
    """
    if isinstance(exc, StopIteration | StopAsyncIteration):
        error = RuntimeError(f"unit of work raised {type(exc).__name__}")
        error.__cause__ = exc
        return error
    return exc


def call_deliverable(work: Callable[[], T]) -> T:
    """``work()``, with a StopIteration/StopAsyncIteration it raises turned into RuntimeError (from it)."""
    try:
        return work()
    except (StopIteration, StopAsyncIteration) as exc:
        raise deliverable(exc) from exc


def deliver(loop: asyncio.AbstractEventLoop, outcomes: Sequence[Outcome]) -> None:
    """Resolve ``outcomes`` on ``loop`` with one thread-safe callback (one wake-up for a whole group)."""
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        loop.call_soon_threadsafe(_resolve, outcomes)


def _resolve(outcomes: Sequence[Outcome]) -> None:
    for future, ok, value in outcomes:
        if future.done():  # the caller was cancelled: it is told nothing
            continue
        try:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(deliverable(value))
        except Exception as exc:  # one outcome the future refuses must not strand the others
            error = RuntimeError(f"store outcome could not be delivered: {exc}")
            error.__cause__ = exc
            future.set_exception(error)
