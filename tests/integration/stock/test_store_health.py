"""Health follows the required stores: NOT_SERVING while Redis is down, SERVING once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from meshctl.stack.embedded import RedisServer, free_port
from meshkit.infra.db import create_engine
from meshkit.rpc.health import SERVING, check_health
from meshkit.rpc.server import LIVENESS_SERVICE, MeshServer
from meshkit.runtime.clock import ManualClock
from meshkit.runtime.store_probe import StoreProbe, redis_check, sql_check
from meshkit.settings.config import DbSettings, MeshSettings, ServerSettings
from stock_svc.runtime import SERVICE_NAME
from tests.integration.creds import ADMIN, AUTH
from tests.integration.creds import ENV as CREDENTIALS_ENV
from tests.integration.processes import spawn_module, wait_module_serving

WITHIN_SECONDS = 30.0
NOT_SERVING = "NOT_SERVING"
PROBE_SECONDS = 5.0


async def _status_becomes(target: str, service: str, want: str) -> str:
    """Poll the health of ``service`` at ``target`` until it reports ``want`` (or the time is up)."""
    deadline = time.monotonic() + WITHIN_SECONDS
    status = await check_health(target, service)
    while status != want and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        status = await check_health(target, service)
    return status


@pytest.fixture
def own_redis(tmp_path: Path) -> RedisServer:
    """A redis-server of this test only (it is stopped and restarted), AOF on as in production."""
    return RedisServer(tmp_path / "redis", persist=True)


@pytest.fixture
async def stock_process(tmp_path: Path, own_redis: RedisServer) -> AsyncIterator[str]:
    """``python -m stock_svc`` on ``own_redis``, probing its stores every 0.2 s; yields its address."""
    own_redis.start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env.update(
        {
            **CREDENTIALS_ENV,
            "MESH_SERVER__HOST": "127.0.0.1",
            "MESH_SERVER__PORT": str(port),
            "MESH_SERVER__GRACE_SECONDS": "0.5",
            "MESH_SERVER__STORE_PROBE_INTERVAL_SECONDS": "0.2",
            "MESH_SERVER__STORE_PROBE_TIMEOUT_SECONDS": "1",
            "MESH_DB__URL": f"sqlite+aiosqlite:///{tmp_path / 'stock.db'}",
            "MESH_REDIS__URL": own_redis.url,
            "MESH_REDIS__PERSISTENCE_CHECK": "refuse",  # the AOF Redis passes
            "MESH_NATS__ENABLED": "false",
        }
    )
    log_path = tmp_path / "stock_svc.log"
    proc = await spawn_module("stock_svc", env, log_path)
    address = f"127.0.0.1:{port}"
    try:
        await wait_module_serving(proc, address, log_path, WITHIN_SECONDS)
        yield address
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), WITHIN_SECONDS)
        own_redis.stop()


async def test_stock_svc_is_not_serving_while_its_redis_is_down(
    stock_process: str, own_redis: RedisServer
) -> None:
    own_redis.stop()
    assert await _status_becomes(stock_process, SERVICE_NAME, NOT_SERVING) == NOT_SERVING
    assert await check_health(stock_process, "") == NOT_SERVING
    assert await check_health(stock_process, LIVENESS_SERVICE) == SERVING  # alive: no restart, please

    own_redis.start()  # same port, same AOF
    assert await _status_becomes(stock_process, SERVICE_NAME, SERVING) == SERVING
    assert await check_health(stock_process, "") == SERVING


@pytest.fixture
async def probed_server(tmp_path: Path, own_redis: RedisServer) -> AsyncIterator[tuple[str, ManualClock]]:
    """A MeshServer whose health a store probe on a manual clock drives (Redis + SQLite)."""
    own_redis.start()
    settings = MeshSettings(
        server=ServerSettings(port=0, grace_seconds=0.1, store_probe_interval_seconds=PROBE_SECONDS),
        db=DbSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'probe.db'}"),
        auth=AUTH,
        admin=ADMIN,
    )
    clock = ManualClock()
    redis = Redis.from_url(own_redis.url, socket_connect_timeout=1, socket_timeout=1)
    engine = create_engine(settings.db)
    server = MeshServer(settings, "probed", [], [SERVICE_NAME], clock=clock)
    probe = StoreProbe.of([redis_check(redis), sql_check(engine)], server.set_serving, clock, settings.server)
    port = await server.start()
    probe.start()
    try:
        yield f"127.0.0.1:{port}", clock
    finally:
        await probe.stop()
        await server.stop(0)
        await redis.aclose()
        await engine.dispose()
        with contextlib.suppress(Exception):
            own_redis.stop()


async def test_store_probe_flips_health_on_its_clock(
    probed_server: tuple[str, ManualClock], own_redis: RedisServer
) -> None:
    address, clock = probed_server
    own_redis.stop()
    assert await check_health(address, SERVICE_NAME) == SERVING  # no probe round yet: time has not moved

    clock.advance(PROBE_SECONDS)
    assert await _status_becomes(address, SERVICE_NAME, NOT_SERVING) == NOT_SERVING

    own_redis.start()
    clock.advance(PROBE_SECONDS)
    assert await _status_becomes(address, SERVICE_NAME, SERVING) == SERVING
    assert await check_health(address, "") == SERVING
