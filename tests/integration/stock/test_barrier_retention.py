"""stock_svc's Redis barrier keeps the entries of unfinished transactions past the retention period
(issue 9 item 1): its RedisBarrierCleaner asks a real coordinator which gids are final."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from meshkit.barrier import RedisBarrierCleaner
from meshkit.barrier.redis import barrier_key
from meshkit.clock import ManualClock
from meshkit.grpcutil import PeersSection
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import wait_for
from tests.integration.finality_coordinator import Ledger, running_ledger
from tests.integration.stock.harness import BRANCH, RunningStock, reserve_request, stock_settings

DAY = 86_400.0
HOUR = 3_600.0


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    """The coordinator stock_svc's cleaners ask."""
    async with running_ledger(tmp_path) as running:
        yield running


@pytest.fixture
def clock() -> ManualClock:
    """The clock stock_svc runs on."""
    return ManualClock()


@pytest.fixture
async def timed_stock(
    db_url: str, redis_url: str, clock: ManualClock, ledger: Ledger
) -> AsyncIterator[RunningStock]:
    """stock_svc on a manual clock whose ``peers.coordinator`` is the ledger's coordinator."""
    settings = stock_settings(db_url, redis_url).model_copy(
        update={"peers": PeersSection(coordinator=ledger.address)}
    )
    running = await RunningStock.start(settings, clock=clock)
    try:
        yield running
    finally:
        await running.stop()


async def next_round(cleaner: RedisBarrierCleaner, clock: ManualClock, seconds: float) -> None:
    """Move the clock on by ``seconds`` and wait until ``cleaner`` finished a round after that."""
    # A finished round is followed at once by the cleaner's sleep: after the first, it is asleep.
    await wait_for(lambda: cleaner.rounds > 0, what="the cleaner's first round")
    done = cleaner.rounds
    clock.advance(seconds)
    await wait_for(lambda: cleaner.rounds > done, what="a cleanup round")


async def test_item1_cancel_retried_past_retention_still_returns_the_reserved_stock(
    timed_stock: RunningStock, clock: ManualClock, ledger: Ledger, gid: str
) -> None:
    """TryReserve, abort with CancelReserve failing past the retention period, cleanup, retry: the
    reservation is returned (before, the expired barrier key made the retry an empty rollback)."""
    stock = timed_stock
    await stock.put("apple", 10)
    finished = f"{gid}-done"
    await ledger.finish(finished)
    assert await stock.branch("TryReserve", finished, [("apple", 1)]) == "applied"
    stub = ledger.coordinator.stub
    await stub.Prepare(
        pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, options=pb.TxOptions(timeout_ms=3_600_000))
    )
    branch = pb.Branch(
        branch_id=BRANCH,
        action=stock.target("TryReserve"),
        confirm=stock.target("ConfirmReserve"),
        cancel="127.0.0.1:1/meshpb.stock.v1.Stock/CancelReserve",  # every cancel attempt fails
        payload=reserve_request([("apple", 4)], ["order-1"]).SerializeToString(),
    )
    await stub.RegisterBranch(pb.RegisterBranchRequest(gid=gid, branch=branch))
    assert await stock.branch("TryReserve", gid, [("apple", 4)]) == "applied"
    assert (
        await stub.Abort(pb.AbortRequest(gid=gid, reason="a later branch failed"))
    ).status == pb.STATUS_ABORTING
    assert await stock.level("apple") == (5, 5, 0)

    cleaner = stock.runtime.redis_cleaner
    await next_round(cleaner, clock, 8 * DAY)  # past the 7-day retention
    await next_round(cleaner, clock, HOUR)

    assert not await stock.redis.exists(barrier_key(finished))  # final: gone
    assert await stock.redis.hgetall(barrier_key(gid)) == {b"stock:try": b"try"}  # unfinished: kept
    assert await stock.branch("CancelReserve", gid, [("apple", 4)]) == "applied"
    assert await stock.level("apple") == (9, 1, 0)
    await stock.assert_invariant()
