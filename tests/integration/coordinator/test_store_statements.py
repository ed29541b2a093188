"""How many SQL statements and commits the coordinator's store spends per transaction (SQLite).

Real engine, real store on a SQLite file, real gRPC invoker and participant. Every statement the
store's connections run is traced (``sqlite3`` trace callback); the counts are exact, not a speed:
they change only when the SQL per transaction does. A trigger's statements are traced with the text
of the statement that fired them, right after it, so a repeated text is counted once.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from coordinator.engine.commands import PrepareCommand, SubmitCommand
from coordinator.engine.metrics import EngineMetrics
from coordinator.engine.model import BranchSpec, Mode, Status
from coordinator.engine.service import TxEngine
from coordinator.engine.settings import EngineSettings
from coordinator.invoker import GrpcBranchInvoker
from coordinator.store.sql import SqlTxStore, migrate
from meshkit.infra.db import create_engine
from meshkit.runtime.clock import ManualClock
from meshkit.settings.config import DbSettings
from meshkit.tx.branchcall import ChannelPool, branch_metadata
from meshkit.tx.context import Op, TxContext, TxMode
from tests.integration.coordinator.participants import Bank, payload

_DATA = ("SELECT", "INSERT", "UPDATE", "DELETE")


@dataclass
class Traced:
    engine: TxEngine
    store: SqlTxStore
    counts: Counter[str]

    def reset(self) -> None:
        self.counts.clear()


@pytest.fixture
def sql_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Counter[str]]]:
    """Trace every sqlite3 connection opened on the coordinator's file."""
    path = tmp_path / "coordinator.db"
    counts: Counter[str] = Counter()
    last = [""]
    original = sqlite3.connect

    def record(sql: str) -> None:
        if sql == last[0]:
            return
        last[0] = sql
        head = sql.split(None, 1)[0].upper() if sql.strip() else ""
        if head in _DATA:
            counts["statements"] += 1
        elif head == "COMMIT":
            counts["commits"] += 1

    def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        db: sqlite3.Connection = original(database, *args, **kwargs)
        if Path(str(database)).name == path.name:
            db.set_trace_callback(record)
        return db

    monkeypatch.setattr(sqlite3, "connect", connect)
    yield path, counts


@pytest.fixture
async def traced(sql_trace: tuple[Path, Counter[str]]) -> AsyncIterator[Traced]:
    path, counts = sql_trace
    db = create_engine(DbSettings(url=f"sqlite+aiosqlite:///{path}"))
    await migrate(db)
    store = SqlTxStore(db)
    invoker = GrpcBranchInvoker()
    settings = EngineSettings(replica_id="count", jitter=0.0)
    engine = TxEngine(
        store, invoker, ManualClock(start=time.time()), settings, EngineMetrics(CollectorRegistry())
    )
    try:
        yield Traced(engine, store, counts)
    finally:
        await engine.close()
        await invoker.close()
        await store.close()
        await db.dispose()


def tcc_branch(bank: Bank, n: int) -> BranchSpec:
    return BranchSpec(
        f"0{n}",
        action=bank.target("Try"),
        confirm=bank.target("Confirm"),
        cancel=bank.target("Cancel"),
        payload=payload(f"acct{n}", n),
    )


async def call_tries(bank: Bank, gid: str, branches: list[BranchSpec]) -> None:
    pool = ChannelPool()
    try:
        for b in branches:
            await pool.call(
                b.action, b.payload, branch_metadata(TxContext(gid, b.branch_id, Op.TRY, TxMode.TCC)), 5
            )
    finally:
        await pool.close()


async def test_tcc_with_branches_declared_at_prepare_takes_three_commits(
    traced: Traced, bank: Bank, gid: str
) -> None:
    branches = [tcc_branch(bank, n) for n in (1, 2, 3)]
    traced.reset()
    commits = traced.store.runner.stats.commits
    await traced.engine.prepare(PrepareCommand(gid=gid, mode=int(Mode.TCC), branches=tuple(branches)))
    await call_tries(bank, gid, branches)
    tx = await traced.engine.submit(SubmitCommand(gid=gid, mode=int(Mode.TCC)), wait_seconds=10)
    await traced.engine.idle()
    assert tx.status is Status.SUCCEEDED
    # Prepare: tx + 9 ops + event; Submit: read tx + ops, update tx + 2 op groups + event;
    # confirmed: update tx + confirms + skip cancels + event.
    assert dict(traced.counts) == {"statements": 21, "commits": 3}
    assert traced.store.runner.stats.commits - commits == 3


async def test_tcc_with_register_branch_takes_one_commit_per_call(
    traced: Traced, bank: Bank, gid: str
) -> None:
    branches = [tcc_branch(bank, n) for n in (1, 2, 3)]
    traced.reset()
    await traced.engine.prepare(PrepareCommand(gid=gid, mode=int(Mode.TCC)))
    for b in branches:
        await traced.engine.register_branch(gid, b)
    await call_tries(bank, gid, branches)
    tx = await traced.engine.submit(SubmitCommand(gid=gid, mode=int(Mode.TCC)), wait_seconds=10)
    await traced.engine.idle()
    assert tx.status is Status.SUCCEEDED
    # Each RegisterBranch: lock the row, read the ops, insert 3 ops.
    assert dict(traced.counts) == {"statements": 27, "commits": 6}


async def test_saga_takes_one_commit_per_round(traced: Traced, bank: Bank, gid: str) -> None:
    steps = tuple(
        BranchSpec(
            f"0{n}", action=bank.target("Action"), cancel=bank.target("Compensate"), payload=payload("s", n)
        )
        for n in (1, 2, 3)
    )
    traced.reset()
    tx = await traced.engine.submit(
        SubmitCommand(gid=gid, mode=int(Mode.SAGA), branches=steps), wait_seconds=10
    )
    await traced.engine.idle()
    assert tx.status is Status.SUCCEEDED
    # Submit inserts (no read first); then one write per step before its call, and the final one.
    assert dict(traced.counts) == {"statements": 18, "commits": 4}
