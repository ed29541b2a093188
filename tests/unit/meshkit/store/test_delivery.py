"""Delivery of store outcomes to asyncio futures: an outcome a future refuses strands no other caller."""

from __future__ import annotations

import asyncio
from typing import Any

from meshkit.store.delivery import deliver


async def test_outcome_a_future_refuses_still_answers_it_and_the_rest_of_the_batch() -> None:
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[Any] = loop.create_future()
    not_an_error: asyncio.Future[Any] = loop.create_future()
    good: asyncio.Future[Any] = loop.create_future()

    deliver(loop, [(stopped, False, StopIteration()), (not_an_error, False, "boom"), (good, True, 7)])
    _, pending = await asyncio.wait([stopped, not_an_error, good], timeout=5)

    assert not pending
    assert isinstance(stopped.exception(), RuntimeError)
    assert isinstance(stopped.exception().__cause__, StopIteration)  # type: ignore[union-attr]
    assert isinstance(not_an_error.exception(), RuntimeError)
    assert good.result() == 7
