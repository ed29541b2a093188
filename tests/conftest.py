"""Shared fixtures: real NATS / Redis / MariaDB servers on free 127.0.0.1 ports, databases, gids.

Servers are session-scoped and start lazily, the first time a test asks for one; they stop when the
session ends. Everything a test gets from a function-scoped fixture is its own: a fresh SQLite file, a
fresh MySQL database, a unique gid. The Redis server is shared by all tests (database 0, not flushed):
tests keep their keys apart by using their own gid / ids in key names.

MariaDB tests skip when the MariaDB binaries are missing, unless ``MESH_REQUIRE_MYSQL=1``: then a missing
server fails the test, and any skipped ``mysql``-marked test fails the whole run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from meshctl.stack.embedded import MariaDbServer, NatsServer, RedisServer
from meshkit.infra.db import create_engine
from meshkit.settings.config import DbSettings

REQUIRE_MYSQL_ENV = "MESH_REQUIRE_MYSQL"


def _require_mysql() -> bool:
    return os.environ.get(REQUIRE_MYSQL_ENV, "") == "1"


# --------------------------------------------------------------------------- servers (session)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A JetStream-enabled nats-server for the whole session."""
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server (no persistence) for the whole session."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDbServer]:
    """A MariaDB server for the whole session; skips (or fails with MESH_REQUIRE_MYSQL=1) when missing."""
    if not MariaDbServer.available():
        message = "MariaDB binaries (mariadbd, mariadb-install-db) not found"
        if _require_mysql():
            pytest.fail(f"{message}, but {REQUIRE_MYSQL_ENV}=1 requires MySQL tests to run")
        pytest.skip(message)
    server = MariaDbServer(tmp_path_factory.mktemp("mariadb"))
    server.start()
    yield server
    server.stop()


# --------------------------------------------------------------------------- per test


@pytest.fixture
def gid() -> str:
    """A unique global transaction id for this test."""
    return uuid.uuid4().hex


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    """URL of the session's NATS server."""
    return nats_server.url


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's Redis server (database 0)."""
    return redis_server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio Redis client for this test, closed afterwards."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for this test."""
    return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def mysql_url(mariadb_server: MariaDbServer) -> Iterator[str]:
    """A fresh MySQL database for this test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:20]}"
    mariadb_server.create_database(name)
    try:
        yield mariadb_server.url_for(name)
    finally:
        mariadb_server.drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database URL, once for SQLite and once for MySQL (``mysql`` marker)."""
    fixture = "sqlite_url" if request.param == "sqlite" else "mysql_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def db_engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An AsyncEngine for ``db_url`` (meshkit.infra.db.create_engine), disposed afterwards."""
    engine = create_engine(DbSettings(url=db_url))
    try:
        yield engine
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- MESH_REQUIRE_MYSQL


class _MysqlSkipGuard:
    """With MESH_REQUIRE_MYSQL=1, fail the run when any ``mysql``-marked test was skipped."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Remember every skipped test that carries the ``mysql`` marker."""
        if report.skipped and "mysql" in report.keywords:
            self.skipped.append(report.nodeid)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Turn the run red."""
        if self.skipped:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Say which mysql tests were skipped."""
        if self.skipped:
            terminalreporter.write_sep("=", f"{REQUIRE_MYSQL_ENV}=1 but mysql tests were skipped", red=True)
            for nodeid in self.skipped:
                terminalreporter.write_line(f"SKIPPED (not allowed) {nodeid}", red=True)


def pytest_configure(config: pytest.Config) -> None:
    """Install the mysql skip guard when MESH_REQUIRE_MYSQL=1."""
    if _require_mysql():
        config.pluginmanager.register(_MysqlSkipGuard(), "mesh-mysql-skip-guard")
