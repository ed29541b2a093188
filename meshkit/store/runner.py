"""The store runner: one per process and database, it runs units of work in a single hop each."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from meshkit.errors import TransientError
from meshkit.settings.config import StoreSettings
from meshkit.store.conn import Unit
from meshkit.store.dialect import MYSQL, SQLITE, Dialect
from meshkit.store.group_commit import GroupCommitWriter, StoreStats
from meshkit.store.mysql import MysqlPool
from meshkit.store.sqlite import SqliteReaders

T = TypeVar("T")


class StoreRunner:
    """Runs units of work (:data:`~meshkit.store.conn.Unit`) against one database, off the event loop.

    * SQLite: writes go to ONE writer thread and connection with group commit (see
      :mod:`meshkit.store.group_commit`); reads go to their own reader threads and never wait for writes.
    * MySQL/MariaDB: a pool of ``settings.pool_size`` connections, one transaction per unit.

    Build it once per process with :meth:`open` (a URL of :class:`~meshkit.settings.config.DbSettings`)
    or :meth:`for_engine` (the URL of the process's existing AsyncEngine), and :meth:`close` it on
    shutdown. Lock and connection errors surface as :class:`~meshkit.errors.TransientError`.
    """

    def __init__(
        self,
        dialect: Dialect,
        *,
        writer: GroupCommitWriter | None = None,
        readers: SqliteReaders | None = None,
        pool: MysqlPool | None = None,
    ) -> None:
        self.dialect = dialect
        self._writer = writer
        self._readers = readers
        self._pool = pool
        self._closed = False
        # The SQLite writer's counters (groups, commits, units); they stay zero on MySQL/MariaDB.
        self.stats = writer.stats if writer is not None else StoreStats()

    @classmethod
    def open(cls, url: str, settings: StoreSettings | None = None) -> StoreRunner:
        """A runner for a SQLAlchemy database URL (``sqlite+aiosqlite:///path``, ``mysql+aiomysql://...``)."""
        settings = settings or StoreSettings()
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            path = parsed.database or ""
            if path in ("", ":memory:"):
                raise ValueError("db.url: the store runner needs a SQLite file, not an in-memory database")
            return cls(
                SQLITE,
                writer=GroupCommitWriter(path, settings.max_group),
                readers=SqliteReaders(path, settings.readers),
            )
        if backend in ("mysql", "mariadb"):
            return cls(MYSQL, pool=MysqlPool(parsed, settings.pool_size))
        raise ValueError(f"db.url: unsupported database {backend!r} (use sqlite or mysql)")

    @classmethod
    def for_engine(cls, engine: AsyncEngine, settings: StoreSettings | None = None) -> StoreRunner:
        """A runner on the same database as ``engine`` (its own connections; the engine stays usable)."""
        return cls.open(engine.url.render_as_string(hide_password=False), settings)

    async def run(self, unit: Unit[T]) -> T:
        """Run ``unit`` in a write transaction and return its value once it is committed.

        If ``unit`` raises, its changes are rolled back and the exception is re-raised here. If the
        awaiting task is cancelled, the unit either still commits or never runs; nothing is reported.
        """
        if self._closed:
            raise TransientError("store closed")
        if self._writer is not None:
            return await self._writer.submit(unit)
        assert self._pool is not None
        return await self._pool.submit(unit)

    async def read(self, unit: Unit[T]) -> T:
        """Run a read-only ``unit`` on a reader connection: all its statements see one snapshot.

        SQLite: a reader transaction on a ``query_only`` connection. MySQL/MariaDB: a ``REPEATABLE READ``
        transaction started ``WITH CONSISTENT SNAPSHOT, READ ONLY``. Both refuse writes in it.
        """
        if self._closed:
            raise TransientError("store closed")
        if self._readers is not None:
            return await self._readers.submit(unit)
        assert self._pool is not None
        return await self._pool.submit(unit, read_only=True)

    async def close(self) -> None:
        """Finish every unit already submitted, then stop the threads and close the connections."""
        if self._closed:
            return
        self._closed = True
        for closer in (self._writer, self._readers, self._pool):
            if closer is not None:
                await asyncio.to_thread(closer.close)

    async def __aenter__(self) -> StoreRunner:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
