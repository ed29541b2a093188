"""Issue 9 item 6: points move only with mesh credentials; Grant and Refund only with the admin token.

The fuzzer refunded a paid order's points with ``Points.Refund`` and a fresh ``out_trade_no``, and froze
and deducted points with invented gids. Now an outsider gets UNAUTHENTICATED and no balance changes.
"""

from __future__ import annotations

import time

import grpc
import pytest

from meshkit.settings.config import AdminSettings
from meshkit.tx.branchcall import branch_metadata
from meshkit.tx.context import Op
from meshpb.points.v1 import points_pb2, points_pb2_grpc
from points_svc.runtime import SERVICE_NAME
from tests.integration.creds import auth_item, plain_channel
from tests.integration.points.harness import RunningPoints, expect_error, msg_action, points_settings, tcc

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
BRANCHES = ["TryFreeze", "ConfirmFreeze", "CancelFreeze", "TryDeduct", "ConfirmDeduct", "CancelDeduct"]


@pytest.mark.parametrize("method", BRANCHES)
async def test_item6_points_branches_without_credentials_are_refused(
    points: RunningPoints, user: str, gid: str, method: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    op = Op.TRY if method.startswith("Try") else Op.CONFIRM if method.startswith("Confirm") else Op.CANCEL
    stale = int(time.time() * 1000) - 3_600_000
    request = points_pb2.PointsBranchRequest(user_id=user, amount=40, out_trade_no=gid)
    async with plain_channel(points.address) as channel:
        outsider = points_pb2_grpc.PointsStub(channel)
        call = getattr(outsider, method)
        await expect_error(call(request, metadata=branch_metadata(tcc(gid, op))), UNAUTHENTICATED)
        expired = [*branch_metadata(tcc(gid, op)), auth_item(f"/{SERVICE_NAME}/{method}", gid, at_ms=stale)]
        await expect_error(call(request, metadata=expired), UNAUTHENTICATED)
    assert await points.account(user) == (100, 0)
    await points.balanced()


async def test_item6_signed_freeze_moves_points(points: RunningPoints, user: str, gid: str) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    assert await points.branch("TryFreeze", tcc(gid, Op.TRY), user, 40, gid) == "applied"
    assert await points.account(user) == (60, 40)


async def test_item6_refund_branch_without_credentials_is_refused(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    request = points_pb2.RefundRequest(user_id=user, amount=50, out_trade_no=f"{gid}:payment")
    async with plain_channel(points.address) as channel:
        outsider = points_pb2_grpc.PointsStub(channel)
        await expect_error(
            outsider.RefundBranch(request, metadata=branch_metadata(msg_action(gid))), UNAUTHENTICATED
        )
    assert await points.account(user) == (100, 0)


async def test_item6_refund_and_grant_need_the_admin_token(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    refund = points_pb2.RefundRequest(user_id=user, amount=30, out_trade_no=f"fresh-{gid}")
    grant = points_pb2.GrantRequest(user_id=user, amount=30, out_trade_no=f"fresh-grant-{gid}")
    async with plain_channel(points.address) as channel:
        outsider = points_pb2_grpc.PointsStub(channel)
        await expect_error(outsider.Refund(refund), UNAUTHENTICATED)
        await expect_error(outsider.Grant(grant), UNAUTHENTICATED)
        await expect_error(
            outsider.Refund(refund, metadata=[("authorization", "Bearer guess")]), UNAUTHENTICATED
        )
        two = [("authorization", "Bearer guess"), ("authorization", "Bearer guess")]
        await expect_error(outsider.Grant(grant, metadata=two), UNAUTHENTICATED)
        # a mesh signature is not an admin token
        signed = [auth_item(f"/{SERVICE_NAME}/Refund")]
        await expect_error(outsider.Refund(refund, metadata=signed), UNAUTHENTICATED)
        # reading an account stays open
        assert (await outsider.GetAccount(points_pb2.GetAccountRequest(user_id=user))).balance == 100
    assert await points.account(user) == (100, 0)
    await points.balanced()


async def test_item6_a_process_without_admin_token_refuses_admin_calls(
    db_url: str, user: str, gid: str
) -> None:
    settings = points_settings(db_url).model_copy(update={"admin": AdminSettings()})
    running = await RunningPoints.start(settings)
    try:
        grant = points_pb2.GrantRequest(user_id=user, amount=30, out_trade_no=f"g-{gid}")
        details = await expect_error(
            running.stub.Grant(grant, metadata=[("authorization", "Bearer ")]), UNAUTHENTICATED
        )
        assert "admin.token" in details
        await expect_error(running.grant(user, 30, f"g2-{gid}"), UNAUTHENTICATED)
    finally:
        await running.stop()
