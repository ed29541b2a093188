"""What a misbehaving unit of work cannot do to the store runner or to the other units.

A unit raising StopIteration still answers its caller (and its group's); a unit running COMMIT, ROLLBACK,
BEGIN or SAVEPOINT itself fails alone and commits nothing early; a read unit sees one snapshot; a MySQL
connection the server closed while idle does not fail the next unit.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from meshkit.errors import TransientError
from meshkit.settings.config import StoreSettings
from meshkit.store import Conn, StoreRunner, Unit, UnitTransactionError
from tests.integration.meshkit.barrier.test_barrier_sql import TIMEOUT
from tests.integration.meshkit.store.test_store_runner import (
    CREATE,
    INSERT,
    Gate,
    insert,
    names,
    queue_behind,
)


@pytest.fixture
async def table(runner: StoreRunner) -> StoreRunner:
    """The runner (SQLite and MariaDB) with an empty ``item`` table."""
    await runner.run(lambda conn: conn.execute(CREATE))
    return runner


def first_of_nothing(conn: Conn) -> int:
    """A unit that writes, then raises StopIteration (``next`` of an empty result)."""
    conn.execute(INSERT, ("stopped", 1))
    return int(next(iter(conn.fetchall("SELECT n FROM item WHERE name = ?", ("missing",))))[0])


async def test_unit_raising_stopiteration_fails_alone_and_its_group_answers(table: StoreRunner) -> None:
    tasks = await queue_behind(table, Gate(), [insert("a"), first_of_nothing, insert("c")])
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), TIMEOUT)

    assert results[0] == 1 and results[2] == 1
    assert isinstance(results[1], RuntimeError)
    assert isinstance(results[1].__cause__, StopIteration)
    assert await table.read(names) == {"a", "c"}


async def test_read_unit_raising_stopiteration_answers_its_caller(table: StoreRunner) -> None:
    empty: Unit[object] = lambda conn: next(iter(conn.fetchall("SELECT n FROM item")))  # noqa: E731

    with pytest.raises(RuntimeError, match="StopIteration") as raised:
        await asyncio.wait_for(table.read(empty), TIMEOUT)
    assert isinstance(raised.value.__cause__, StopIteration)
    assert await asyncio.wait_for(table.read(names), TIMEOUT) == set()  # the reader goes on


@pytest.mark.parametrize("statement", ["COMMIT", "ROLLBACK", "BEGIN", "SAVEPOINT own"])
async def test_unit_running_transaction_control_fails_alone_and_commits_nothing_early(
    table: StoreRunner, statement: str
) -> None:
    def sneaky(conn: Conn) -> int:
        conn.execute(INSERT, ("b", 1))
        conn.execute(statement)
        return 1

    tasks = await queue_behind(table, Gate(), [insert("a"), sneaky, insert("c")])
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), TIMEOUT)

    assert results[0] == 1 and results[2] == 1
    assert isinstance(results[1], UnitTransactionError)
    assert statement.split(maxsplit=1)[0] in str(results[1])
    assert await table.read(names) == {"a", "c"}  # "b" rolled back with its unit, nothing committed early


async def test_read_unit_sees_one_snapshot_while_a_write_commits(table: StoreRunner) -> None:
    await table.run(insert("before"))
    first_read, committed = threading.Event(), threading.Event()

    def read_twice(conn: Conn) -> tuple[set[str], set[str]]:
        first = names(conn)
        first_read.set()
        committed.wait(TIMEOUT)
        return first, names(conn)

    reading = asyncio.create_task(table.read(read_twice))
    assert await asyncio.to_thread(first_read.wait, TIMEOUT)
    try:
        assert await asyncio.wait_for(table.run(insert("during")), TIMEOUT) == 1
    finally:
        committed.set()

    assert await asyncio.wait_for(reading, TIMEOUT) == ({"before"}, {"before"})
    assert await table.read(names) == {"before", "during"}


async def kill(admin: StoreRunner, connection_id: int) -> None:
    """End a MariaDB connection from another one, as the server does after ``wait_timeout``."""
    await admin.run(lambda conn: conn.execute("KILL CONNECTION ?", (connection_id,)))


def connection_id(conn: Conn) -> int:
    """The unit's MariaDB connection id."""
    row = conn.fetchone("SELECT CONNECTION_ID()")
    assert row is not None
    return int(row[0])


@pytest.mark.mysql
async def test_mysql_connection_closed_while_idle_runs_the_next_unit_on_a_fresh_one(mysql_url: str) -> None:
    async with (
        StoreRunner.open(mysql_url, StoreSettings(pool_size=1)) as runner,
        StoreRunner.open(mysql_url, StoreSettings(pool_size=1)) as admin,
    ):
        await runner.run(lambda conn: conn.execute(CREATE))
        idle = await runner.read(connection_id)

        await kill(admin, idle)
        assert await asyncio.wait_for(runner.run(insert("after-kill")), TIMEOUT) == 1
        fresh = await runner.read(connection_id)
        assert fresh != idle

        await kill(admin, fresh)
        assert await asyncio.wait_for(runner.read(names), TIMEOUT) == {"after-kill"}


@pytest.mark.mysql
async def test_mysql_connection_lost_after_a_statement_is_not_run_again(mysql_url: str) -> None:
    async with (
        StoreRunner.open(mysql_url, StoreSettings(pool_size=1)) as runner,
        StoreRunner.open(mysql_url, StoreSettings(pool_size=1)) as admin,
    ):
        await runner.run(lambda conn: conn.execute(CREATE))
        inside, killed = threading.Event(), threading.Event()
        calls: list[int] = []

        def insert_then_lose_connection(conn: Conn) -> int:
            calls.append(connection_id(conn))
            conn.execute(INSERT, ("lost", 1))
            inside.set()
            killed.wait(TIMEOUT)
            return conn.execute(INSERT, ("lost-too", 1))

        task = asyncio.create_task(runner.run(insert_then_lose_connection))
        assert await asyncio.to_thread(inside.wait, TIMEOUT)
        try:
            await kill(admin, calls[0])
        finally:
            killed.set()

        with pytest.raises(TransientError):
            await asyncio.wait_for(task, TIMEOUT)
        assert len(calls) == 1  # a statement of it had run: the unit is not run again
        assert await runner.read(names) == set()
