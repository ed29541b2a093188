"""A pool of threads that each own one database connection (drivers' connections are not thread-safe)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from meshkit.store.delivery import call_deliverable

C = TypeVar("C")
T = TypeVar("T")


class ConnectionThreads(Generic[C]):
    """``size`` threads; each opens its connection with ``connect`` on first use and keeps it."""

    def __init__(self, name: str, size: int, connect: Callable[[], C], close: Callable[[C], None]) -> None:
        self._connect = connect
        self._close = close
        self._local = threading.local()
        self._opened: list[C] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)

    def submit(self, work: Callable[[C], T]) -> asyncio.Future[T]:
        """Run ``work`` with the connection of a pool thread; the future resolves on the running loop."""
        return asyncio.get_running_loop().run_in_executor(self._pool, self._call, work)

    def drop(self, conn: C) -> None:
        """Close the calling thread's connection ``conn`` (lost or broken); the next use opens a new one."""
        self._local.conn = None
        with self._lock:
            if conn in self._opened:
                self._opened.remove(conn)
        with contextlib.suppress(Exception):  # already gone
            self._close(conn)

    def close(self) -> None:
        """Wait for running work, then close every connection (blocking)."""
        self._pool.shutdown(wait=True)
        with self._lock:
            for conn in self._opened:
                self._close(conn)
            self._opened.clear()

    def renew(self, conn: C) -> C:
        """Drop the calling thread's lost connection ``conn`` and open its replacement."""
        self.drop(conn)
        return self._current()

    def _current(self) -> C:
        conn: C | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def _call(self, work: Callable[[C], T]) -> T:
        conn = self._current()
        return call_deliverable(lambda: work(conn))
