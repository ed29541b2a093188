"""Async database engines for SQLite (WAL, the embedded default) and MySQL/MariaDB (aiomysql)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import event
from sqlalchemy.engine import URL, CursorResult, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from meshkit.errors import TransientError
from meshkit.settings.config import DbSettings

SQLITE_BUSY_TIMEOUT_MS = 10_000


def is_sqlite(engine: AsyncEngine) -> bool:
    """True when the engine talks to SQLite."""
    return engine.dialect.name == "sqlite"


def is_mysql(engine: AsyncEngine) -> bool:
    """True when the engine talks to MySQL or MariaDB."""
    return engine.dialect.name in ("mysql", "mariadb")


def create_engine(settings: DbSettings) -> AsyncEngine:
    """Build the async engine for ``settings.url`` with the dialect's production settings."""
    url = make_url(settings.url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, settings)
    if backend in ("mysql", "mariadb"):
        return _mysql_engine(url, settings)
    raise ValueError(f"db.url: unsupported database {backend!r} (use sqlite+aiosqlite or mysql+aiomysql)")


def apply_sqlite_pragmas(dbapi_connection: Any) -> None:
    """The settings every SQLite connection of the mesh runs with: WAL, NORMAL sync, busy timeout, FKs.

    ``dbapi_connection`` is a DB-API connection (``sqlite3`` or SQLAlchemy's aiosqlite adapter).
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_engine(url: URL, settings: DbSettings) -> AsyncEngine:
    if url.drivername != "sqlite+aiosqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    if url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url, echo=settings.echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, issue BEGIN, so that we can make it BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        apply_sqlite_pragmas(dbapi_connection)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: a read-then-write transaction can never fail
        # half-way with "database is locked", and concurrent writers queue on busy_timeout instead.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _mysql_engine(url: URL, settings: DbSettings) -> AsyncEngine:
    if url.drivername in ("mysql", "mariadb", "mysql+pymysql"):
        url = url.set(drivername="mysql+aiomysql")
    query = dict(url.query)
    query.setdefault("charset", "utf8mb4")
    url = url.set(query=query)
    return create_async_engine(
        url,
        echo=settings.echo,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_pre_ping=True,
        pool_recycle=3600,
        isolation_level="READ COMMITTED",
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession], what: str) -> AsyncIterator[AsyncSession]:
    """A session in a transaction that commits when the block ends normally and rolls back otherwise.

    A lost connection or a lock that could not be had (``OperationalError``) becomes
    :class:`~meshkit.errors.TransientError` ("``what`` database unavailable or locked"): callers retry.
    """
    try:
        async with sessions() as session, session.begin():
            yield session
    except OperationalError as exc:
        raise TransientError(f"{what} database unavailable or locked: {exc.orig}") from exc


def rowcount(result: object) -> int:
    """The rows an INSERT/UPDATE/DELETE matched (``execute`` is typed as returning a plain Result)."""
    return int(cast(CursorResult[Any], result).rowcount)
