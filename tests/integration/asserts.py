"""Async checks the integration tests share: a value that eventually holds, the error a call fails with."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc.aio
import pytest

T = TypeVar("T")


async def eventually(
    read: Callable[[], Awaitable[T]],
    ok: Callable[[T], bool],
    within: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """Poll ``read`` until ``ok`` holds for its value; fail after ``within`` seconds with the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await read()
        if ok(value):
            return value
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what}; last: {value}")
        await asyncio.sleep(interval)


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The error ``call`` fails with (fails the test when it succeeds)."""
    try:
        result = await call
    except grpc.aio.AioRpcError as exc:
        return exc
    pytest.fail(f"expected an error, got {result}")
