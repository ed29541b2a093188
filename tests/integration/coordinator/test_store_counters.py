"""The (mode, status) counters equal a real COUNT(*) after a mix of transitions (SQLite and MariaDB)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import grpc
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from coordinator.engine.model import Status
from coordinator.store.retention import FinishedTxCleaner
from coordinator.store.sql import SqlTxStore, migrate
from coordinator.store.tables import COMPONENT, VERSIONS, trans_count, trans_global
from meshkit.infra.migrate import upgrade
from meshkit.runtime.clock import MS_PER_DAY, SystemClock
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import RunningCoordinator, wait_final, wait_for
from tests.integration.coordinator.participants import Bank, payload

Counts = dict[tuple[int, int], int]
OLD_ROW = {
    "reason": "",
    "options": {},
    "query_prepared": "",
    "created_at": 1,
    "updated_at": 1,
    "version": 1,
    "retry_paused": False,
    "stuck": False,
}


class ShiftedClock(SystemClock):
    """The system clock, ``days`` ahead (to make every finished transaction due for retention)."""

    def __init__(self, days: float) -> None:
        self._shift = days * MS_PER_DAY / 1000

    def now(self) -> float:
        return super().now() + self._shift


async def counters_and_truth(store: SqlTxStore) -> tuple[Counts, Counts]:
    """The counters (zeros left out) and the same numbers from a real COUNT(*) over trans_global."""
    c, g = trans_count.c, trans_global.c

    def body(conn: Connection) -> tuple[Counts, Counts]:
        kept = {(int(m), int(s)): int(n) for m, s, n in conn.execute(select(c.mode, c.status, c.n)) if n}
        real = select(g.mode, g.status, func.count()).group_by(g.mode, g.status)
        return kept, {(int(m), int(s)): int(n) for m, s, n in conn.execute(real)}

    return await store.run(body)


def saga(bank: Bank, gid: str) -> pb.SubmitRequest:
    step = pb.Branch(
        branch_id="01",
        action=bank.target("Action"),
        cancel=bank.target("Compensate"),
        payload=payload("c", 1),
    )
    return pb.SubmitRequest(gid=gid, mode=pb.MODE_SAGA, branches=[step])


async def test_counters_equal_count_after_concurrent_mixed_transitions(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    stub = coordinator.stub
    kept = [f"{gid}-kept{i}" for i in range(4)]
    aborted = [f"{gid}-abort{i}" for i in range(3)]
    confirmed = [f"{gid}-confirm{i}" for i in range(3)]
    sagas = [f"{gid}-saga{i}" for i in range(5)]
    failing = [f"{gid}-fail{i}" for i in range(3)]
    retrying = f"{gid}-retry"
    for g in failing:
        bank.fail("Action", grpc.StatusCode.ABORTED, gid=g)
    bank.fail("Action", grpc.StatusCode.UNAVAILABLE, times=10_000, gid=retrying)

    async def tcc(g: str, then: str) -> None:
        await stub.Prepare(pb.PrepareRequest(gid=g, mode=pb.MODE_TCC))
        if then == "abort":
            await stub.Abort(pb.AbortRequest(gid=g))
        elif then == "submit":
            await stub.Submit(pb.SubmitRequest(gid=g, mode=pb.MODE_TCC))

    msg = pb.SubmitRequest(
        gid=retrying,
        mode=pb.MODE_MSG,
        branches=[pb.Branch(branch_id="01", action=bank.target("Action"), payload=payload("m", 1))],
        options=pb.TxOptions(retry_interval_ms=10),
    )
    await asyncio.gather(
        *(tcc(g, "keep") for g in kept),
        *(tcc(g, "abort") for g in aborted),
        *(tcc(g, "submit") for g in confirmed),
        *(stub.Submit(saga(bank, g)) for g in [*sagas, *failing]),
        stub.Submit(msg),
    )
    finals = {g: (await wait_final(coordinator, g)).status for g in [*aborted, *confirmed, *sagas, *failing]}
    assert [finals[g] for g in aborted + failing] == [pb.STATUS_FAILED] * 6
    assert [finals[g] for g in confirmed + sagas] == [pb.STATUS_SUCCEEDED] * 8
    await wait_for(lambda: _retried(bank, retrying), what="the MSG branch to be retried")

    counters, truth = await counters_and_truth(coordinator.runtime.store)
    assert counters == truth
    assert truth[(pb.MODE_TCC, pb.STATUS_PREPARED)] == 4
    assert truth[(pb.MODE_MSG, pb.STATUS_SUBMITTED)] == 1

    cleaner = FinishedTxCleaner(coordinator.runtime.store, ShiftedClock(30), retention_days=7, batch=4)
    assert await cleaner.run_once() == 14
    counters, truth = await counters_and_truth(coordinator.runtime.store)
    assert counters == truth
    assert {status for _, status in truth} == {pb.STATUS_PREPARED, pb.STATUS_SUBMITTED}


async def _retried(bank: Bank, gid: str) -> bool:
    return bank.calls_of(gid)[("01", "action")] >= 2


async def test_counters_roll_back_with_a_failed_transaction(
    coordinator: RunningCoordinator, gid: str
) -> None:
    store = coordinator.runtime.store
    await coordinator.stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC))
    before = await counters_and_truth(store)

    def fail_midway(conn: Connection) -> None:
        conn.execute(update(trans_global).where(trans_global.c.gid == gid).values(status=int(Status.FAILED)))
        raise RuntimeError("crash after the status change, before the commit")

    with pytest.raises(RuntimeError):
        await store.run(fail_midway)
    after = await counters_and_truth(store)
    assert after == before
    assert after[0][(pb.MODE_TCC, pb.STATUS_PREPARED)] == 1


async def test_migration_backfills_the_counters_of_existing_transactions(
    db_engine: AsyncEngine, tmp_path: Path
) -> None:
    before = tmp_path / "versions"
    before.mkdir()
    for revision in sorted(VERSIONS.glob("v000[1-3]_*.py")):
        shutil.copy(revision, before / revision.name)
    await upgrade(db_engine, COMPONENT, before)  # the schema as it was before the counters
    rows = [
        {**row, "gid": f"old-{i}", "mode": 1 + i % 3, "status": (1, 3, 5)[i % 3 if i % 7 else 0]}
        for i, row in enumerate([OLD_ROW] * 40)
    ]
    async with db_engine.begin() as conn:
        await conn.execute(trans_global.insert(), rows)
    await migrate(db_engine)
    counters, truth = await counters_and_truth(SqlTxStore(db_engine))
    assert counters == truth
    assert sum(truth.values()) == 40
