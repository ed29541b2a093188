"""The start-up check of Redis persistence against real redis-servers, with and without AOF."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from meshctl.stack.embedded import RedisServer, free_port
from meshkit.infra.redis_persistence import check_persistence
from meshkit.settings.failfast import StartupRefused
from tests.integration.creds import ENV as CREDENTIALS_ENV


class NoConfigRedis(RedisServer):
    """A redis-server that refuses ``CONFIG`` (as managed Redis services often do)."""

    def command(self) -> list[str]:
        """The usual command with ``CONFIG`` renamed away."""
        return [*super().command(), "--rename-command", "CONFIG", ""]


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of its own with the append-only file on (as ``meshctl up`` runs it)."""
    with RedisServer(tmp_path / "redis-aof", persist=True) as server:
        yield server


async def _client(url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def aof_client(aof_redis: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client of :func:`aof_redis`."""
    async for client in _client(aof_redis.url):
        yield client


async def test_redis_with_aof_and_noeviction_passes_even_refuse(aof_client: aioredis.Redis) -> None:
    found = await check_persistence(aof_client, "refuse")
    assert found is not None
    assert found.values == {"appendonly": "yes", "maxmemory-policy": "noeviction"}
    assert found.shortfalls == []


async def test_redis_without_aof_is_refused_by_refuse(redis_client: aioredis.Redis) -> None:
    with pytest.raises(StartupRefused) as caught:
        await check_persistence(redis_client, "refuse")
    assert "Redis persistence: appendonly=no (need yes)" in str(caught.value)
    assert "redis.persistence_check=refuse" in str(caught.value)


async def test_redis_without_aof_is_a_warning_by_default(
    redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="meshkit.infra.redis_persistence"):
        found = await check_persistence(redis_client, "warn")
    assert found is not None
    assert found.shortfalls == ["appendonly=no (need yes)"]
    assert "appendonly=no (need yes)" in caplog.text


async def test_evicting_redis_is_refused(aof_client: aioredis.Redis) -> None:
    await aof_client.config_set("maxmemory-policy", "allkeys-lru")
    with pytest.raises(StartupRefused) as caught:
        await check_persistence(aof_client, "refuse")
    assert "maxmemory-policy=allkeys-lru (need noeviction)" in str(caught.value)


async def test_check_off_asks_nothing(redis_client: aioredis.Redis) -> None:
    assert await check_persistence(redis_client, "off") is None


async def test_redis_refusing_config_is_unknown_and_only_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with NoConfigRedis(tmp_path / "redis-noconfig") as server:
        async for client in _client(server.url):
            with caplog.at_level(logging.WARNING, logger="meshkit.infra.redis_persistence"):
                found = await check_persistence(client, "refuse")
    assert found is not None
    assert found.unknown
    assert "Redis persistence not checked" in caplog.text


async def test_unreachable_redis_is_unknown_and_only_warned(caplog: pytest.LogCaptureFixture) -> None:
    async for client in _client(f"redis://127.0.0.1:{free_port()}/0"):
        with caplog.at_level(logging.WARNING, logger="meshkit.infra.redis_persistence"):
            found = await check_persistence(client, "refuse")
    assert found is not None
    assert "ConnectionError" in found.unknown


def test_stock_svc_refuses_to_start_on_redis_without_aof(tmp_path: Path, redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env.update(
        {
            **CREDENTIALS_ENV,
            "MESH_SERVER__HOST": "127.0.0.1",
            "MESH_SERVER__PORT": str(free_port()),
            "MESH_DB__URL": f"sqlite+aiosqlite:///{tmp_path / 'stock.db'}",
            "MESH_REDIS__URL": redis_url,
            "MESH_REDIS__PERSISTENCE_CHECK": "refuse",
            "MESH_LOG__JSON": "true",
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "stock_svc"], check=False, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("stock_svc: refusing to start: Redis persistence: appendonly=no (need yes)")
    assert "Traceback" not in done.stderr
