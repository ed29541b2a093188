"""The barrier cleanup runs in the background of points_svc on the injected clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from meshkit.barrier import tx_barrier
from meshkit.clock import ManualClock
from meshkit.txcontext import Op
from tests.integration.coordinator.harness import wait_for
from tests.integration.points.harness import RunningPoints, points_settings, tcc

DAY = 86_400.0
HOUR = 3_600.0


@pytest.fixture
def clock() -> ManualClock:
    """The clock the service runs on."""
    return ManualClock()


@pytest.fixture
async def timed_points(db_url: str, clock: ManualClock) -> AsyncIterator[RunningPoints]:
    """A points_svc on a manual clock."""
    running = await RunningPoints.start(points_settings(db_url), clock=clock)
    try:
        yield running
    finally:
        await running.stop()


async def barrier_rows(points: RunningPoints, gid: str) -> int:
    async with points.runtime.db.connect() as conn:
        stmt = select(func.count()).select_from(tx_barrier).where(tx_barrier.c.gid == gid)
        return int((await conn.execute(stmt)).scalar_one())


async def test_barrier_rows_past_retention_are_deleted_in_the_background(
    timed_points: RunningPoints, clock: ManualClock, user: str, gid: str
) -> None:
    points = timed_points
    await points.grant(user, 100, f"grant-{gid}")
    await points.branch("TryFreeze", tcc(gid, Op.TRY), user, 10, gid)
    await points.branch("ConfirmFreeze", tcc(gid, Op.CONFIRM), user, 10, gid)
    assert await barrier_rows(points, gid) == 2
    clock.advance(DAY)  # one cleanup round (hourly), but the rows are younger than 7 days
    fresh = f"{gid}-fresh"
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
