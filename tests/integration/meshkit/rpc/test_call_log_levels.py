"""The call log through a real MeshServer: successful branch calls at DEBUG, other calls at INFO."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest

from meshkit.rpc.server import MeshServer
from meshkit.settings.config import MeshSettings, ServerSettings

SERVICE = "meshpb.test.v1.Echo"
METHOD = f"/{SERVICE}/Echo"


async def echo(request: bytes, context: Any) -> bytes:
    if request == b"fail":
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "asked to fail")
    return request


def _register(server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {"Echo": handler})])


@pytest.fixture
async def target() -> AsyncIterator[str]:
    settings = MeshSettings(server=ServerSettings(host="127.0.0.1", port=0, grace_seconds=1.0))
    server = MeshServer(settings, "test_echo", [_register], [SERVICE])
    port = await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def _levels_of(
    target: str, caplog: pytest.LogCaptureFixture, body: bytes, gid: str, tx: bool
) -> list[int]:
    """Make one call whose gid (as tx context, or in the body) marks its log line; its lines' levels."""
    metadata = [("x-mesh-gid", gid), ("x-mesh-branch", "01"), ("x-mesh-op", "try"), ("x-mesh-mode", "tcc")]
    with caplog.at_level(logging.DEBUG, logger="meshkit.rpc"):
        async with grpc.aio.insecure_channel(target) as channel:
            expected = pytest.raises(grpc.aio.AioRpcError) if body == b"fail" else contextlib.nullcontext()
            with expected:
                await channel.unary_unary(METHOD)(body, metadata=metadata if tx else None, timeout=5)
        # the client can hear the status before the server's wrapper has written its line
        for _ in range(100):
            if _mine(caplog, gid, tx):
                break
            await asyncio.sleep(0.02)
    return [r.levelno for r in _mine(caplog, gid, tx)]


def _mine(caplog: pytest.LogCaptureFixture, gid: str, tx: bool) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "meshkit.rpc"
        and r.__dict__.get("method") == METHOD
        and (getattr(r, "gid", "") == gid or not tx)
    ]


async def test_a_successful_branch_call_is_logged_at_debug(
    target: str, gid: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert await _levels_of(target, caplog, b"ok", gid, tx=True) == [logging.DEBUG]


async def test_a_failed_branch_call_is_logged_at_info(
    target: str, gid: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert await _levels_of(target, caplog, b"fail", gid, tx=True) == [logging.INFO]


async def test_a_successful_call_without_tx_context_is_logged_at_info(
    target: str, gid: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert await _levels_of(target, caplog, b"ok", gid, tx=False) == [logging.INFO]
