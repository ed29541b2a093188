"""The SQLite writer: one thread, one connection, and group commit.

The thread takes every unit queued so far (up to ``max_group``) and runs them in ONE ``BEGIN IMMEDIATE``
transaction, each inside its own ``SAVEPOINT``: a unit that raises is rolled back to its savepoint
alone, the others commit together. Every unit's future resolves only after the ``COMMIT`` succeeded;
when BEGIN or COMMIT fails, every unit of the group fails with :class:`TransientError` and nothing of
the group is in the database. A unit whose caller was cancelled before the group began is skipped.

A unit may not end or nest the transaction itself (it would commit the units before it behind their
callers' backs): an authorizer refuses BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE while a unit runs, and the
unit fails alone with :class:`~meshkit.store.errors.UnitTransactionError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any, TypeVar

from meshkit.errors import TransientError
from meshkit.store.conn import Unit
from meshkit.store.delivery import Outcome, deliver, deliverable
from meshkit.store.errors import UnitTransactionError, sqlite_transient
from meshkit.store.sqlite import SqliteConn, open_sqlite

T = TypeVar("T")

_REFUSED_IN_UNIT = frozenset({sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT})
# The SQLITE_SAVEPOINT authorizer operation -> the statement a unit ran.
_SAVEPOINT_STATEMENTS = {"BEGIN": "SAVEPOINT", "RELEASE": "RELEASE", "ROLLBACK": "ROLLBACK TO"}
# The writer's own statements. The authorizer only sees a statement when it is prepared, and sqlite3
# caches prepared statements by their text: the comment keeps a unit's plain "COMMIT" from reusing
# the writer's statement (prepared while no unit ran) instead of being prepared, and refused, anew.
_BEGIN = "BEGIN IMMEDIATE -- store writer"
_COMMIT = "COMMIT -- store writer"
_ROLLBACK = "ROLLBACK -- store writer"
_SAVEPOINT = "SAVEPOINT unit -- store writer"
_ROLLBACK_TO = "ROLLBACK TO unit -- store writer"
_RELEASE = "RELEASE unit -- store writer"


@dataclass(slots=True)
class StoreStats:
    """Counters of the writer (read them from any thread; the writer alone changes them)."""

    groups: int = 0  # write transactions attempted
    commits: int = 0  # write transactions committed
    units: int = 0  # units run (committed or rolled back to their savepoint)


@dataclass(slots=True)
class _Job:
    unit: Unit[Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class GroupCommitWriter:
    """Runs write units on one dedicated thread and connection, many per transaction."""

    def __init__(self, path: str, max_group: int) -> None:
        self.stats = StoreStats()
        self._max_group = max_group
        self._db = open_sqlite(path)
        self._conn = SqliteConn(self._db)
        self._in_unit = False
        self._refused: str | None = None  # the transaction statement the running unit tried
        # Installed once: (re)installing an authorizer expires every prepared statement.
        self._db.set_authorizer(self._authorize)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="store-writer", daemon=True)
        self._thread.start()

    def submit(self, unit: Unit[T]) -> asyncio.Future[T]:
        """Queue ``unit``; the future resolves after the COMMIT of its group."""
        if self._closed:
            raise TransientError("store closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(unit, future, loop))
        return future

    def close(self) -> None:
        """Run every unit queued so far, then stop the thread and close the connection (blocking)."""
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    def _serve(self) -> None:
        try:
            while (group := self._take()) is not None:
                jobs, last = group
                live = [job for job in jobs if not job.future.cancelled()]
                try:
                    self._run_group(live)
                except sqlite3.Error as exc:  # a SAVEPOINT/RELEASE failed: the group is lost, not the thread
                    self._rollback()
                    self._fail(live, _transient(exc))
                if last:
                    break
        finally:
            self._fail_leftovers()
            self._db.close()

    def _take(self) -> tuple[list[_Job], bool] | None:
        """The next group: a blocking wait for one job, then whatever else is queued. None: stop."""
        first = self._queue.get()
        if first is None:
            return None
        jobs = [first]
        while len(jobs) < self._max_group:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _run_group(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        self.stats.groups += 1
        try:
            self._db.execute(_BEGIN)
        except sqlite3.Error as exc:
            self._fail(jobs, _transient(exc))
            return
        outcomes: list[Outcome] = []
        for job in jobs:
            outcomes.append(self._run_unit(job))
            if not self._db.in_transaction:  # SQLite itself gave the transaction up (disk full, I/O)
                self._fail(jobs, TransientError("database transaction aborted by SQLite"))
                return
        try:
            self._db.execute(_COMMIT)
        except sqlite3.Error as exc:
            self._rollback()
            self._fail(jobs, _transient(exc))
            return
        self.stats.commits += 1
        self._deliver(jobs, outcomes)

    def _run_unit(self, job: _Job) -> Outcome:
        self.stats.units += 1
        self._db.execute(_SAVEPOINT)
        self._in_unit, self._refused = True, None
        try:
            value = job.unit(self._conn)
        except BaseException as exc:  # the unit's own failure goes to its caller; the writer lives on
            self._in_unit = False
            if self._db.in_transaction:
                self._db.execute(_ROLLBACK_TO)
                self._db.execute(_RELEASE)
            return job.future, False, self._unit_error(exc)
        finally:
            self._in_unit = False
        self._db.execute(_RELEASE)
        return job.future, True, value

    def _authorize(self, action: int, operation: str | None, *_: str | None) -> int:
        if self._in_unit and action in _REFUSED_IN_UNIT:
            if action == sqlite3.SQLITE_SAVEPOINT:
                operation = _SAVEPOINT_STATEMENTS.get(operation or "", "SAVEPOINT")
            self._refused = operation or "a transaction statement"
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def _unit_error(self, exc: BaseException) -> BaseException:
        """What the caller of a unit that raised ``exc`` is told."""
        if self._refused is not None and isinstance(exc, sqlite3.DatabaseError):
            refused = UnitTransactionError(self._refused)
            refused.__cause__ = exc
            return refused
        transient = sqlite_transient(exc)
        if transient is not None:
            transient.__cause__ = exc
            return transient
        return deliverable(exc)

    def _rollback(self) -> None:
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # unusable anyway; the next BEGIN will say so
                self._db.execute(_ROLLBACK)

    def _fail(self, jobs: list[_Job], exc: Exception) -> None:
        self._deliver(jobs, [(job.future, False, exc) for job in jobs])

    @staticmethod
    def _deliver(jobs: list[_Job], outcomes: list[Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
        for job, outcome in zip(jobs, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append(outcome)
        for loop, batch in by_loop.items():
            deliver(loop, batch)

    def _fail_leftovers(self) -> None:
        leftovers: list[_Job] = []
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                leftovers.append(job)
        self._fail(leftovers, TransientError("store closed"))


def _transient(exc: sqlite3.Error) -> TransientError:
    error = sqlite_transient(exc) or TransientError(f"database error: {exc}")
    error.__cause__ = exc
    return error
