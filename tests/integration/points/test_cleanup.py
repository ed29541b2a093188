"""The barrier cleanup runs in the background of points_svc on the injected clock, asking a real
coordinator which transactions are final (issue 9 item 1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from meshkit.barrier import tx_barrier
from meshkit.runtime.clock import ManualClock
from meshkit.settings.peers import PeersSection
from meshkit.tx.context import Op
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from meshpb.points.v1 import points_pb2
from tests.integration.coordinator.harness import wait_for
from tests.integration.finality_coordinator import Ledger, running_ledger
from tests.integration.points.harness import POINTS_BRANCH, RunningPoints, points_settings, tcc

DAY = 86_400.0
HOUR = 3_600.0


@pytest.fixture
def clock() -> ManualClock:
    """The clock the service runs on."""
    return ManualClock()


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    """The coordinator points_svc's cleaner asks."""
    async with running_ledger(tmp_path) as running:
        yield running


@pytest.fixture
async def timed_points(db_url: str, clock: ManualClock, ledger: Ledger) -> AsyncIterator[RunningPoints]:
    """A points_svc on a manual clock whose ``peers.coordinator`` is the ledger's coordinator."""
    settings = points_settings(db_url).model_copy(update={"peers": PeersSection(coordinator=ledger.address)})
    running = await RunningPoints.start(settings, clock=clock)
    try:
        yield running
    finally:
        await running.stop()


async def barrier_rows(points: RunningPoints, gid: str) -> int:
    async with points.runtime.db.connect() as conn:
        stmt = select(func.count()).select_from(tx_barrier).where(tx_barrier.c.gid == gid)
        return int((await conn.execute(stmt)).scalar_one())


async def next_round(points: RunningPoints, clock: ManualClock, seconds: float) -> None:
    """Move the clock on by ``seconds`` and wait until the cleaner finished a round after that."""
    cleaner = points.runtime.cleaner
    # A finished round is followed at once by the cleaner's sleep: after the first, it is asleep.
    await wait_for(lambda: cleaner.rounds > 0, what="the cleaner's first round")
    done = cleaner.rounds
    clock.advance(seconds)
    await wait_for(lambda: cleaner.rounds > done, what="a cleanup round")


async def test_barrier_rows_past_retention_are_deleted_in_the_background(
    timed_points: RunningPoints, clock: ManualClock, ledger: Ledger, user: str, gid: str
) -> None:
    points = timed_points
    await ledger.finish(gid)
    await points.grant(user, 100, f"grant-{gid}")
    await points.branch("TryFreeze", tcc(gid, Op.TRY), user, 10, gid)
    await points.branch("ConfirmFreeze", tcc(gid, Op.CONFIRM), user, 10, gid)
    assert await barrier_rows(points, gid) == 2
    clock.advance(DAY)  # one cleanup round (hourly), but the rows are younger than 7 days
    fresh = f"{gid}-fresh"
    await ledger.finish(fresh)
    await points.branch("TryFreeze", tcc(fresh, Op.TRY), user, 10, fresh)
    assert await barrier_rows(points, gid) == 2
    clock.advance(6.5 * DAY)

    nudges = iter(range(6))  # the fresh rows expire 12 hours after the old ones: stay well before that

    async def old_rows_gone() -> bool:
        # A round still running when the clock jumped sleeps an hour from its end: move time on a little.
        if next(nudges, None) is not None:
            clock.advance(HOUR)
        return await barrier_rows(points, gid) == 0

    await wait_for(old_rows_gone, what="the cleanup to delete the old barrier rows")
    assert await barrier_rows(points, fresh) == 1
    assert await points.account(user) == (80, 10)
    await points.balanced()


async def test_item1_cancel_retried_past_retention_still_unfreezes(
    timed_points: RunningPoints, clock: ManualClock, ledger: Ledger, user: str, gid: str
) -> None:
    """The issue's reproduction: TryFreeze, abort with CancelFreeze failing past the retention period,
    cleanup, retry: the undo happens (it was an empty rollback, 60 / 40, before)."""
    points = timed_points
    await points.grant(user, 100, f"grant-{gid}")
    stub = ledger.coordinator.stub
    await stub.Prepare(
        pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, options=pb.TxOptions(timeout_ms=3_600_000))
    )
    payload = points_pb2.PointsBranchRequest(user_id=user, amount=40, out_trade_no=gid).SerializeToString()
    branch = pb.Branch(
        branch_id=POINTS_BRANCH,
        action=points.target("TryFreeze"),
        confirm=points.target("ConfirmFreeze"),
        cancel="127.0.0.1:1/meshpb.points.v1.Points/CancelFreeze",  # every cancel attempt fails
        payload=payload,
    )
    await stub.RegisterBranch(pb.RegisterBranchRequest(gid=gid, branch=branch))
    await points.branch("TryFreeze", tcc(gid, Op.TRY), user, 40, gid)
    abort = await stub.Abort(pb.AbortRequest(gid=gid, reason="a later branch failed"))
    assert abort.status == pb.STATUS_ABORTING  # the coordinator keeps retrying the cancel
    assert await points.account(user) == (60, 40)

    await next_round(points, clock, 8 * DAY)  # past the 7-day retention: one cleanup round
    await next_round(points, clock, HOUR)  # and another

    assert await barrier_rows(points, gid) == 1  # unfinished: kept however old
    note = await points.branch("CancelFreeze", tcc(gid, Op.CANCEL), user, 40, gid)  # the retry gets through
    assert note == "applied"
    assert await points.account(user) == (100, 0)
    assert (await ledger.coordinator.query(gid)).status == pb.STATUS_ABORTING
    await points.balanced()
