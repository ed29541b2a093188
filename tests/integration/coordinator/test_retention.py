"""Retention: finished transactions go (with ops and history) once past retention; nothing else does."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import func, select

from coordinator.store.retention import FinishedTxCleaner
from coordinator.store.tables import trans_branch_op, trans_event, trans_global
from meshkit.runtime.clock import MS_PER_DAY, SystemClock
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import RunningCoordinator, wait_final, wait_for
from tests.integration.coordinator.participants import Bank, payload


class ShiftedClock(SystemClock):
    """The system clock, ``days`` ahead."""

    def __init__(self, days: float) -> None:
        self._shift = days * MS_PER_DAY / 1000

    def now(self) -> float:
        return super().now() + self._shift


async def rows_of(coordinator: RunningCoordinator, gid: str) -> tuple[int, int, int]:
    tables = (trans_global, trans_branch_op, trans_event)

    def count(conn):  # type: ignore[no-untyped-def]
        return tuple(
            conn.execute(select(func.count()).select_from(t).where(t.c.gid == gid)).scalar_one()
            for t in tables
        )

    return await coordinator.runtime.store.run(count)  # type: ignore[no-any-return]


async def test_retention_deletes_finished_transactions_past_retention_only(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    done, running = f"{gid}-done", f"{gid}-running"
    step = pb.Branch(
        branch_id="01",
        action=bank.target("Action"),
        cancel=bank.target("Compensate"),
        payload=payload("r", 1),
    )
    await coordinator.stub.Submit(pb.SubmitRequest(gid=done, mode=pb.MODE_SAGA, branches=[step]))
    await wait_final(coordinator, done)
    bank.fail("Action", grpc.StatusCode.UNAVAILABLE, times=10_000, gid=running)
    await coordinator.stub.Submit(
        pb.SubmitRequest(
            gid=running, mode=pb.MODE_SAGA, branches=[step], options=pb.TxOptions(retry_limit=10_000)
        )
    )
    await wait_for(lambda: bank.calls_of(running)[("01", "action")] >= 1, what="the failing saga to start")
    store = coordinator.runtime.store

    young = FinishedTxCleaner(store, ShiftedClock(6.9), retention_days=7, batch=10)
    assert await young.run_once() == 0
    assert (await rows_of(coordinator, done))[0] == 1

    old = FinishedTxCleaner(store, ShiftedClock(7.1), retention_days=7, batch=1)
    assert await old.run_once() >= 1
    assert await rows_of(coordinator, done) == (0, 0, 0)
    assert (await rows_of(coordinator, running))[0] == 1  # unfinished: kept however old
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await coordinator.query(done)
    assert gone.value.code() is grpc.StatusCode.NOT_FOUND
