"""stock_svc's Redis barrier keeps the entries of unfinished transactions past the retention period
(issue 9 item 1): its RedisBarrierCleaner asks a real coordinator which gids are final."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from meshkit.barrier import RedisBarrierCleaner
from meshkit.barrier.redis import barrier_key
from meshkit.runtime.clock import ManualClock
from meshkit.settings.peers import PeersSection
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from stock_svc.hot.redis_stock import stock_key
from tests.integration.coordinator.harness import wait_for
from tests.integration.finality_coordinator import Ledger, running_ledger
from tests.integration.stock.harness import BRANCH, RunningStock, reserve_request, stock_settings
from tests.integration.stock.test_restock import settled

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


async def cleaned_and_reconciled(stock: RunningStock, clock: ManualClock, seconds: float) -> None:
    """Move the clock on by ``seconds``; wait for a cleanup round and a periodic reconcile round after it."""
    rounds = stock.registry.get_sample_value("mesh_stock_reconcile_rounds_total") or 0.0
    await next_round(stock.runtime.redis_cleaner, clock, seconds)
    await wait_for(
        lambda: (stock.registry.get_sample_value("mesh_stock_reconcile_rounds_total") or 0.0) > rounds,
        what="a reconcile round",
    )


async def test_item1_confirm_long_after_its_try_is_not_owed_again_after_cleanup(
    timed_stock: RunningStock, clock: ManualClock, ledger: Ledger, gid: str
) -> None:
    """A confirm written 6 days after its try: the cleaner keeps the gid's hash for a full retention after
    the confirm, so the reconciler never counts the confirm's Redis half as owed again (before, the hash
    went with the try's age, the confirm's log row was still read, and its "missing" entry added 3 phantom
    units to Redis available: an oversell)."""
    stock = await settled(timed_stock)
    key = stock_key(stock.namespace, "apple")
    await stock.put("apple", 10)
    await ledger.finish(gid)
    assert await stock.branch("TryReserve", gid, [("apple", 3)]) == "applied"
    await cleaned_and_reconciled(stock, clock, 6 * DAY)
    await stock.branch("ConfirmReserve", gid, [("apple", 3)])
    assert await stock.level("apple") == (7, 0, 3)

    # The try is 7.5 days old (past the retention), the confirm 1.5 days.
    await cleaned_and_reconciled(stock, clock, 1.5 * DAY)
    assert await stock.redis.hexists(barrier_key(gid), f"{BRANCH}:confirm")
    await stock.redis.hincrby(key, "available", -1)  # drift no row explains, so the SKU gets checked
    await stock.runtime.reconciler.round_once()
    assert await stock.level("apple") == (7, 0, 3)

    # Past the confirm's retention the whole hash goes, and its log row counts as finished.
    await cleaned_and_reconciled(stock, clock, 7 * DAY)
    assert not await stock.redis.exists(barrier_key(gid))
    await stock.redis.hincrby(key, "available", -1)
    await stock.runtime.reconciler.round_once()
    assert await stock.level("apple") == (7, 0, 3)
    await stock.assert_invariant()
