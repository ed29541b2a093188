"""Operator queries on the store: list with filters and cursor, stuck, stats (SQLite and MariaDB)."""

from __future__ import annotations

import grpc
import pytest

from coordinator.engine.model import Mode, Status
from coordinator.store.queries import list_transactions, stats, stuck_transactions
from meshkit.errors import InvalidArgument
from meshkit.runtime.clock import SystemClock, now_ms
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import RunningCoordinator, wait_for
from tests.integration.coordinator.participants import Bank, payload


async def test_list_pages_filters_stuck_and_stats(
    coordinator: RunningCoordinator, bank: Bank, gid: str
) -> None:
    store = coordinator.runtime.store
    stub = coordinator.stub
    prepared = [f"{gid}-p{i}" for i in range(5)]
    for g in prepared:
        await stub.Prepare(pb.PrepareRequest(gid=g, mode=pb.MODE_TCC))
    stuck_gid = f"{gid}-stuck"
    bank.fail("Action", grpc.StatusCode.UNAVAILABLE, times=1000, gid=stuck_gid)
    step = pb.Branch(branch_id="01", action=bank.target("Action"), payload=payload("q", 1))
    options = pb.TxOptions(retry_interval_ms=10, retry_limit=2)
    await stub.Submit(pb.SubmitRequest(gid=stuck_gid, mode=pb.MODE_MSG, branches=[step], options=options))
    await wait_for(lambda: _is_stuck(coordinator, stuck_gid), what="the MSG branch to become stuck")

    first = await list_transactions(store, status=Status.PREPARED, limit=2)
    second = await list_transactions(store, status=Status.PREPARED, limit=2, cursor=first.next_cursor)
    third = await list_transactions(store, status=Status.PREPARED, limit=2, cursor=second.next_cursor)
    paged = [tx.gid for page in (first, second, third) for tx in page.transactions]
    assert sorted(paged) == sorted(prepared)
    assert len(set(paged)) == 5
    assert third.next_cursor == ""
    assert [tx.gid for tx in (await list_transactions(store, mode=Mode.MSG)).transactions] == [stuck_gid]
    future = await list_transactions(store, created_after=now_ms(SystemClock()) + 60_000)
    assert future.transactions == []

    stuck = await stuck_transactions(store, now=now_ms(SystemClock()))
    assert [tx.gid for tx in stuck] == [stuck_gid]
    retried = await stuck_transactions(store, now=now_ms(SystemClock()), min_attempts=2)
    assert stuck_gid in [tx.gid for tx in retried]

    counts = await stats(store)
    assert counts.counts[(Mode.TCC, Status.PREPARED)] == 5
    assert counts.counts[(Mode.MSG, Status.SUBMITTED)] == 1
    assert counts.stuck == 1
    assert counts.oldest_unfinished_ms is not None
    assert (await stats(store, include_finished=False)).unfinished() == counts.unfinished()

    with pytest.raises(InvalidArgument) as bad:
        await list_transactions(store, cursor="not-a-cursor")
    assert bad.value.field == "cursor"
    await coordinator.runtime.sweeper.refresh_gauges()
    replica = coordinator.runtime.engine.owner
    assert coordinator.metric("mesh_tx_inflight", mode="tcc", status="prepared", replica=replica) == 5
    assert coordinator.metric("mesh_tx_stuck_unfinished", replica=replica) == 1


async def _is_stuck(coordinator: RunningCoordinator, gid: str) -> bool:
    return (await coordinator.query(gid)).stuck
