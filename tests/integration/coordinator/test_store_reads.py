"""Off-path reads (operators' queries, Query, the audit's lookups) never wait for the engine's writes."""

from __future__ import annotations

import asyncio
import threading

from sqlalchemy import update
from sqlalchemy.engine import Connection

from coordinator.engine.model import Status
from coordinator.store.queries import finished_gids, list_transactions, stats, stuck_transactions
from coordinator.store.sql import SqlTxStore
from coordinator.store.tables import trans_global
from meshkit.runtime.clock import SystemClock, now_ms
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import RunningCoordinator

HOLD_SECONDS = 30.0  # a safety net only: the reads release the writer long before


async def read_everything(store: SqlTxStore, gid: str) -> str:
    """Every off-path read once; returns ``gid``'s reason as the reads saw it."""
    page = await list_transactions(store, status=Status.PREPARED)
    await stats(store)
    await stuck_transactions(store, now=now_ms(SystemClock()))
    assert (await finished_gids(store, [gid])).unknown == []
    await store.history(gid)
    loaded = await store.load(gid)
    assert loaded is not None
    assert [tx.reason for tx in page.transactions] == [loaded[0].reason]
    return loaded[0].reason


async def test_reads_see_committed_state_while_a_write_transaction_is_open(
    coordinator: RunningCoordinator, gid: str
) -> None:
    await coordinator.stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC))
    store = coordinator.runtime.store
    change = update(trans_global).where(trans_global.c.gid == gid).values(reason="being written")
    async with coordinator.runtime.db.begin() as conn:
        await conn.execute(change)  # holds the row lock (MariaDB) / the write lock (SQLite) until commit
        assert await read_everything(store, gid) == ""
    assert await read_everything(store, gid) == "being written"


async def test_reads_answer_while_the_sqlite_writer_is_busy(
    sqlite_coordinator: RunningCoordinator, gid: str
) -> None:
    await sqlite_coordinator.stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC))
    store = sqlite_coordinator.runtime.store
    writing, reads_done = threading.Event(), threading.Event()

    def busy_write(conn: Connection) -> bool:
        conn.execute(update(trans_global).where(trans_global.c.gid == gid).values(reason="being written"))
        writing.set()
        return reads_done.wait(HOLD_SECONDS)

    writer = asyncio.create_task(store.run(busy_write))
    assert await asyncio.to_thread(writing.wait, HOLD_SECONDS)
    assert await read_everything(store, gid) == ""
    reads_done.set()
    assert await writer  # the reads finished while the writer still held the thread and the lock
    assert await read_everything(store, gid) == "being written"
