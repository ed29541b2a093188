"""points_svc driven by a real coordinator replica: the TCC of PlaceOrder / Pay and the MSG refund branch.

The coordinator runs in-process on its own SQLite file; points_svc on the test database (SQLite and
MariaDB). The initiator side uses meshkit.tx.initiator exactly as order_svc does.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from meshkit.errors import BranchFailure
from meshkit.tx.initiator import msg, tcc
from meshpb.coordinator.v1 import coordinator_pb2 as cpb
from meshpb.points.v1 import points_pb2
from tests.integration.coordinator.harness import RunningCoordinator, coordinator_settings, wait_final
from tests.integration.points.harness import POINTS_BRANCH, RunningPoints, refund_request


class Rollback(Exception):
    """Raised by a test inside a TCC block to make the initiator abort."""


@pytest.fixture
async def coordinator(tmp_path: Path) -> AsyncIterator[RunningCoordinator]:
    """A coordinator replica on its own SQLite file."""
    running = await RunningCoordinator.start(coordinator_settings(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"))
    try:
        yield running
    finally:
        await running.stop()


def payload(user: str, amount: int, out_trade_no: str) -> bytes:
    """A PointsBranchRequest as order_svc builds it."""
    return points_pb2.PointsBranchRequest(
        user_id=user, amount=amount, out_trade_no=out_trade_no
    ).SerializeToString()


async def freeze(
    coordinator: RunningCoordinator, points: RunningPoints, gid: str, user: str, amount: int
) -> None:
    """One TCC with the points branch of PlaceOrder (out_trade_no = gid)."""
    async with tcc(coordinator.initiator, gid=gid, wait_result=True) as t:
        await t.call_branch(
            points.target("TryFreeze"),
            points.target("ConfirmFreeze"),
            points.target("CancelFreeze"),
            payload(user, amount, gid),
            branch_id=POINTS_BRANCH,
        )


async def test_committed_tcc_spends_the_frozen_points(
    coordinator: RunningCoordinator, points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    await freeze(coordinator, points, gid, user, 35)
    assert (await wait_final(coordinator, gid)).status == cpb.STATUS_SUCCEEDED
    assert await points.account(user) == (65, 0)
    assert (await points.balanced()).spent == 35


async def test_aborted_tcc_gives_the_frozen_points_back(
    coordinator: RunningCoordinator, points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    with pytest.raises(Rollback):
        async with tcc(coordinator.initiator, gid=gid) as t:
            await t.call_branch(
                points.target("TryDeduct"),
                points.target("ConfirmDeduct"),
                points.target("CancelDeduct"),
                payload(user, 60, f"order-{gid}"),
                branch_id=POINTS_BRANCH,
            )
            assert await points.account(user) == (40, 60)
            raise Rollback
    assert (await wait_final(coordinator, gid)).status == cpb.STATUS_FAILED
    assert await points.account(user) == (100, 0)
    assert (await points.balanced()).spent == 0


async def test_tcc_over_an_insufficient_balance_fails_and_changes_nothing(
    coordinator: RunningCoordinator, points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 10, f"grant-{gid}")
    with pytest.raises(BranchFailure, match="insufficient points"):
        await freeze(coordinator, points, gid, user, 11)
    assert (await wait_final(coordinator, gid)).status == cpb.STATUS_FAILED
    assert await points.account(user) == (10, 0)
    assert list((await points.balanced()).entries) == []


async def test_msg_refund_branch_refunds_once(
    coordinator: RunningCoordinator, points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    await freeze(coordinator, points, gid, user, 50)
    refund = refund_request(user, 50, f"order-{gid}:discount", (gid, "freeze"))
    for _ in range(2):  # a second cancel chain for the same order refunds nothing more
        cancel = msg(
            coordinator.initiator, query_prepared=points.target("Audit"), gid=f"cancel-{uuid.uuid4().hex}"
        )
        cancel.add(points.target("RefundBranch"), refund.SerializeToString(), branch_id=POINTS_BRANCH)
        await cancel.prepare()
        await cancel.submit(wait=True)
        assert (await wait_final(coordinator, cancel.gid)).status == cpb.STATUS_SUCCEEDED
    assert await points.account(user) == (100, 0)
    report = await points.balanced()
    assert (report.spent, report.refunded) == (50, 50)
