"""The store runner on real databases: group commit, isolation of a failing unit, reads beside writes,
cancellation, close, and crash safety (a killed writer leaves nothing of its uncommitted group)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from meshkit.errors import BranchFailure, TransientError
from meshkit.store import Conn, StoreRunner, Unit
from tests.integration.meshkit.barrier.test_barrier_sql import TIMEOUT

ROOT = Path(__file__).resolve().parents[4]
GROUP = 50
CREATE = "CREATE TABLE item (name VARCHAR(64) PRIMARY KEY, n INTEGER NOT NULL)"
INSERT = "INSERT INTO item (name, n) VALUES (?, ?)"


def insert(name: str, n: int = 1) -> Unit[int]:
    """A unit that inserts one item."""
    return lambda conn: conn.execute(INSERT, (name, n))


def names(conn: Conn) -> set[str]:
    """A read unit: every item name."""
    return {str(row[0]) for row in conn.fetchall("SELECT name FROM item")}


class Gate:
    """A unit that holds the writer inside its transaction until released (a long write group)."""

    def __init__(self, row: str | None = None) -> None:
        self.inside = threading.Event()
        self.release = threading.Event()
        self._row = row

    def __call__(self, conn: Conn) -> str:
        if self._row is not None:
            conn.execute(INSERT, (self._row, 1))
        self.inside.set()
        self.release.wait(TIMEOUT)
        return "released"

    async def entered(self) -> None:
        assert await asyncio.to_thread(self.inside.wait, TIMEOUT)


@pytest.fixture
async def items(runner: StoreRunner) -> StoreRunner:
    """The runner with an empty ``item`` table."""
    await runner.run(lambda conn: conn.execute(CREATE))
    return runner


@pytest.fixture
async def sqlite_runner(sqlite_url: str) -> AsyncIterator[StoreRunner]:
    """A runner with an empty ``item`` table on SQLite only (group commit is the SQLite writer's)."""
    runner = StoreRunner.open(sqlite_url)
    try:
        await runner.run(lambda conn: conn.execute(CREATE))
        yield runner
    finally:
        await runner.close()


async def queue_behind(runner: StoreRunner, gate: Gate, units: list[Unit[int]]) -> list[asyncio.Task[int]]:
    """Hold the writer in ``gate``, queue ``units`` behind it; they will form the next group."""
    held = asyncio.create_task(runner.run(gate))
    await gate.entered()
    tasks = [asyncio.create_task(runner.run(unit)) for unit in units]
    await asyncio.sleep(0)  # every task ran up to its await: all queued
    gate.release.set()
    assert await asyncio.wait_for(held, TIMEOUT) == "released"
    return tasks


async def test_group_commit_many_concurrent_units_commit_in_one_transaction(
    sqlite_runner: StoreRunner,
) -> None:
    runner = sqlite_runner
    commits = runner.stats.commits

    tasks = await queue_behind(runner, Gate(), [insert(f"u{i}") for i in range(GROUP)])
    results = await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)

    assert results == [1] * GROUP
    assert runner.stats.commits == commits + 2  # the gate's group, then all 50 in one
    assert await runner.read(names) == {f"u{i}" for i in range(GROUP)}


async def test_failing_unit_rolls_back_alone_while_its_group_commits(sqlite_runner: StoreRunner) -> None:
    runner = sqlite_runner
    commits = runner.stats.commits

    def insert_then_fail(conn: Conn) -> int:
        conn.execute(INSERT, ("bad", 1))
        raise BranchFailure("refused")

    units = [insert(f"u{i}") for i in range(GROUP)]
    units.insert(GROUP // 2, insert_then_fail)
    tasks = await queue_behind(runner, Gate(), units)
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), TIMEOUT)

    failed = results.pop(GROUP // 2)
    assert isinstance(failed, BranchFailure)
    assert results == [1] * GROUP
    assert runner.stats.commits == commits + 2
    assert await runner.read(names) == {f"u{i}" for i in range(GROUP)}


async def test_reads_do_not_wait_for_a_long_write_group(items: StoreRunner) -> None:
    runner = items
    await runner.run(insert("before"))
    gate = Gate(row="uncommitted")
    held = asyncio.create_task(runner.run(gate))
    try:
        await gate.entered()
        # The writer is inside its transaction: the read answers anyway, without the uncommitted row.
        assert await asyncio.wait_for(runner.read(names), TIMEOUT) == {"before"}
    finally:
        gate.release.set()
    await asyncio.wait_for(held, TIMEOUT)
    assert await runner.read(names) == {"before", "uncommitted"}


async def test_conn_api_same_sql_on_both_databases(items: StoreRunner) -> None:
    runner = items

    def work(conn: Conn) -> tuple[int, int, int, list[tuple[object, ...]]]:
        ignore = conn.dialect.insert_ignore("item", ("name", "n"))
        first = conn.execute(ignore, ("apple", 1))
        again = conn.execute(ignore, ("apple", 2))
        many = conn.executemany(INSERT, [("avocado", 3), ("zucchini", 4)])
        # A literal % in the SQL survives the placeholder translation on MySQL.
        rows = conn.fetchall("SELECT name, n FROM item WHERE name LIKE 'a%' AND n < ? ORDER BY name", (9,))
        return first, again, many, rows

    first, again, many, rows = await runner.run(work)

    assert (first, again, many) == (1, 0, 2)
    assert [tuple(r) for r in rows] == [("apple", 1), ("avocado", 3)]
    assert await runner.read(lambda conn: conn.fetchone("SELECT n FROM item WHERE name = ?", ("x",))) is None


async def test_read_unit_cannot_write_on_sqlite(sqlite_runner: StoreRunner) -> None:
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await sqlite_runner.read(insert("sneaky"))
    assert await sqlite_runner.read(names) == set()


async def test_cancelled_caller_of_a_queued_unit_it_never_runs(sqlite_runner: StoreRunner) -> None:
    runner = sqlite_runner
    gate = Gate()
    held = asyncio.create_task(runner.run(gate))
    await gate.entered()
    cancelled = asyncio.create_task(runner.run(insert("cancelled")))
    await asyncio.sleep(0)
    cancelled.cancel()
    gate.release.set()
    await asyncio.wait_for(held, TIMEOUT)

    assert await asyncio.wait_for(runner.run(insert("after")), TIMEOUT) == 1  # the writer is not stuck
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await runner.read(names) == {"after"}


async def test_cancelled_caller_of_a_running_unit_it_still_commits(items: StoreRunner) -> None:
    runner = items
    gate = Gate(row="running")
    task = asyncio.create_task(runner.run(gate))
    await gate.entered()
    task.cancel()
    gate.release.set()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.wait_for(runner.run(insert("after")), TIMEOUT) == 1
    assert await runner.read(names) == {"running", "after"}


async def test_close_drains_queued_units_then_refuses(items: StoreRunner) -> None:
    runner = items
    gate = Gate()
    held = asyncio.create_task(runner.run(gate))
    await gate.entered()
    queued = [asyncio.create_task(runner.run(insert(f"q{i}"))) for i in range(5)]
    await asyncio.sleep(0)
    closing = asyncio.create_task(runner.close())
    await asyncio.sleep(0)
    gate.release.set()
    await asyncio.wait_for(closing, TIMEOUT)

    assert await asyncio.gather(held, *queued) == ["released", 1, 1, 1, 1, 1]
    with pytest.raises(TransientError, match="store closed"):
        await runner.run(insert("late"))


@pytest.fixture
def killed_writer(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """A crash_writer process on a fresh SQLite file; killed afterwards in any case."""
    db, marker = tmp_path / "crash.db", tmp_path / "inside"
    with sqlite3.connect(db) as conn:
        conn.execute(CREATE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests.integration.meshkit.store.crash_writer", str(db), str(marker)]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        yield process, db, marker
    finally:
        process.kill()
        process.wait()


async def test_crash_mid_group_leaves_nothing_of_the_uncommitted_group(
    killed_writer: tuple[subprocess.Popen[bytes], Path, Path],
) -> None:
    process, db, marker = killed_writer
    for _ in range(int(TIMEOUT / 0.02)):
        if marker.exists() or process.poll() is not None:
            break
        await asyncio.sleep(0.02)
    assert marker.exists(), f"writer never got inside its group (exit code {process.poll()})"

    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    runner = StoreRunner.open(f"sqlite:///{db}")
    try:
        assert await runner.read(names) == {"committed"}
        assert await runner.run(insert("lost-1")) == 1  # the database is healthy and writable again
    finally:
        await runner.close()


async def test_failed_commit_fails_every_unit_of_the_group_and_keeps_nothing(
    sqlite_runner: StoreRunner,
) -> None:
    """A deferred foreign key is checked at COMMIT: the whole group fails, none of its units is kept."""
    runner = sqlite_runner

    def create_child_table(conn: Conn) -> None:
        conn.execute(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, "
            "item VARCHAR(64) REFERENCES item (name) DEFERRABLE INITIALLY DEFERRED)"
        )

    await runner.run(create_child_table)
    orphan: Unit[int] = lambda conn: conn.execute("INSERT INTO child (id, item) VALUES (1, 'missing')")  # noqa: E731
    commits = runner.stats.commits

    tasks = await queue_behind(runner, Gate(), [insert("u1"), orphan, insert("u2")])
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), TIMEOUT)

    assert [type(r) for r in results] == [TransientError] * 3
    assert runner.stats.commits == commits + 1  # the gate's group only
    assert await runner.read(names) == set()
    assert await runner.run(insert("u1")) == 1  # the writer goes on


@pytest.mark.mysql
async def test_mysql_deadlock_is_transient_and_the_other_unit_commits(mysql_url: str) -> None:
    runner = StoreRunner.open(mysql_url)
    try:
        await runner.run(lambda conn: conn.execute(CREATE))
        await runner.run(lambda conn: conn.executemany(INSERT, [("r1", 0), ("r2", 0)]))
        locked = {"r1": threading.Event(), "r2": threading.Event()}

        def cross(first: str, second: str) -> Unit[int]:
            def unit(conn: Conn) -> int:
                conn.execute("UPDATE item SET n = n + 1 WHERE name = ?", (first,))
                locked[first].set()
                locked[second].wait(TIMEOUT)
                return conn.execute("UPDATE item SET n = n + 1 WHERE name = ?", (second,))

            return unit

        results = await asyncio.wait_for(
            asyncio.gather(
                runner.run(cross("r1", "r2")), runner.run(cross("r2", "r1")), return_exceptions=True
            ),
            TIMEOUT * 2,
        )

        assert sorted(type(r).__name__ for r in results) == ["TransientError", "int"]
        rows = await runner.read(lambda conn: conn.fetchall("SELECT name, n FROM item ORDER BY name"))
        assert [tuple(r) for r in rows] == [("r1", 1), ("r2", 1)]  # the survivor's two updates, no more
    finally:
        await runner.close()
