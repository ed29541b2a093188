"""Each embedded server starts, answers a real client, and stops leaving no process behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import nats
import pymysql
import pytest
import redis
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from meshctl.stack.embedded import (
    EmbeddedServerError,
    MariaDbServer,
    NatsServer,
    RedisServer,
    free_port,
    process_alive,
    stop_pid,
    stop_pid_file,
)


def _gone(pid: int) -> bool:
    return not process_alive(pid)


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        assert sock.getsockname()[1] == port


async def test_nats_server_starts_answers_and_stops(tmp_path: Path) -> None:
    with NatsServer(tmp_path) as server:
        pid = server.pid
        assert pid is not None
        assert server.url == f"nats://127.0.0.1:{server.port}"
        client = await nats.connect(server.url)
        js = client.jetstream()
        info = await js.account_info()
        assert info.limits is not None
        await client.close()
        assert server.pid_path.read_text().split() == [str(pid), server.command()[0]]
    assert server.pid is None
    assert _gone(pid)
    assert _port_closed(server.port)
    assert not server.pid_path.exists()
    assert (tmp_path / "jetstream").is_dir()
    assert server.log_path == tmp_path / "nats.log"
    assert server.log_path.stat().st_size > 0


def test_redis_server_starts_answers_and_stops(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        pid = server.pid
        assert pid is not None
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.ping() is True
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("save") == {"save": ""}
        client.close()
        server.stop()
        server.stop()  # idempotent
        assert server.pid is None
    assert _gone(pid)
    assert _port_closed(server.port)


def test_redis_server_persist_turns_on_aof(tmp_path: Path) -> None:
    with RedisServer(tmp_path, persist=True) as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()


def test_mariadb_server_starts_answers_and_stops(mariadb_server: MariaDbServer, tmp_path: Path) -> None:
    # The session server proves the binaries are there; this one checks a full start/stop cycle.
    with MariaDbServer(tmp_path) as server:
        pid = server.pid
        assert pid is not None
        server.create_database("embedded_check")
        assert server.url_for("embedded_check") == (
            f"mysql+aiomysql://root@127.0.0.1:{server.port}/embedded_check"
        )
        assert _databases(server) >= {"embedded_check"}
        server.stop()
        assert _gone(pid)
        assert _port_closed(server.port)
        server.start()  # the initialised data directory is reused, the database is still there
        assert "embedded_check" in _databases(server)
        server.drop_database("embedded_check")
        assert "embedded_check" not in _databases(server)
        pid = server.pid
        assert pid is not None
    assert _gone(pid)
    assert _port_closed(server.port)


def _databases(server: MariaDbServer) -> set[str]:
    conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root")
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES")
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


def test_start_failure_reports_log_tail(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "first") as first:
        clash = RedisServer(tmp_path / "second", port=first.port)
        with pytest.raises(
            EmbeddedServerError,
            match=r"(?s)redis on 127\.0\.0\.1:\d+ cannot start: the port is already in use; log",
        ):
            clash.start()
        assert clash.pid is None


DETACHED_START = """
import sys
from pathlib import Path
from meshctl.stack.embedded import RedisServer
server = RedisServer(Path(sys.argv[1]))
server.start()
print(server.port)
"""


def test_detached_server_outlives_its_parent_until_stop_pid_file(tmp_path: Path) -> None:
    # What `meshctl up --detach` / `meshctl down` do: start, let the starter exit, stop by pid file.
    done = subprocess.run(
        [sys.executable, "-c", DETACHED_START, str(tmp_path)], capture_output=True, text=True, check=True
    )
    port = int(done.stdout.strip())
    pid_file = tmp_path / "redis.pid"
    pid = int(pid_file.read_text().split()[0])
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        assert client.ping() is True
        client.close()
        assert stop_pid_file(pid_file, timeout=5) is True
        assert _gone(pid)
        assert _port_closed(port)
        assert not pid_file.exists()
        assert stop_pid_file(pid_file) is False
    finally:
        stop_pid(pid, timeout=5)


def test_stale_pid_file_signals_nothing(tmp_path: Path) -> None:
    pid_file = tmp_path / "redis.pid"
    # Our own pid, recorded as if it were a redis-server: a reused pid must not be signalled.
    pid_file.write_text(f"{os.getpid()}\n/usr/bin/redis-server\n")
    assert stop_pid_file(pid_file, timeout=1) is False
    assert not pid_file.exists()
    assert not _gone(os.getpid())


async def test_fixtures_give_working_clients(
    nats_url: str, redis_client: aioredis.Redis, db_engine: AsyncEngine, gid: str
) -> None:
    client = await nats.connect(nats_url)
    assert client.is_connected
    await client.close()
    await redis_client.set(f"embedded:{gid}", b"1")
    assert await redis_client.get(f"embedded:{gid}") == b"1"
    async with db_engine.connect() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1


def test_gid_fixture_is_unique(gid: str) -> None:
    assert len(gid) == 32
    assert int(gid, 16) >= 0
