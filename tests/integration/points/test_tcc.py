"""TCC freeze/deduct branches of points_svc over real gRPC, on SQLite and MariaDB.

Every scenario ends with the points invariant checked through Audit.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc

from meshkit.tx.branchcall import branch_metadata
from meshkit.tx.context import Op
from meshpb.points.v1 import points_pb2
from tests.integration.points.harness import RunningPoints, expect_error, tcc

ABORTED = grpc.StatusCode.ABORTED
INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def test_freeze_then_confirm_spends_the_points(points: RunningPoints, user: str, gid: str) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    assert await points.branch("TryFreeze", tcc(gid, Op.TRY), user, 30, gid) == "applied"
    assert await points.account(user) == (70, 30)
    assert await points.branch("ConfirmFreeze", tcc(gid, Op.CONFIRM), user, 30, gid) == "applied"
    assert await points.account(user) == (70, 0)
    report = await points.balanced()
    assert (report.issued, report.spent, report.refunded) == (100, 30, 0)
    assert [(e.type, e.state, e.amount) for e in report.entries] == [("freeze", "confirmed", 30)]


async def test_freeze_then_cancel_gives_the_points_back(points: RunningPoints, user: str, gid: str) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    await points.branch("TryFreeze", tcc(gid, Op.TRY), user, 40, gid)
    assert await points.account(user) == (60, 40)
    assert await points.branch("CancelFreeze", tcc(gid, Op.CANCEL), user, 40, gid) == "applied"
    assert await points.account(user) == (100, 0)
    report = await points.balanced()
    assert report.spent == 0
    assert [(e.type, e.state) for e in report.entries] == [("freeze", "cancelled")]


async def test_deduct_then_confirm_spends_the_points(points: RunningPoints, user: str, gid: str) -> None:
    order_id = f"order-{gid}"
    await points.grant(user, 500, f"grant-{gid}")
    await points.branch("TryDeduct", tcc(gid, Op.TRY), user, 120, order_id)
    assert await points.account(user) == (380, 120)
    await points.branch("ConfirmDeduct", tcc(gid, Op.CONFIRM), user, 120, order_id)
    assert await points.account(user) == (380, 0)
    report = await points.balanced()
    assert report.spent == 120
    assert [(e.out_trade_no, e.type, e.state) for e in report.entries] == [(order_id, "deduct", "confirmed")]


async def test_deduct_then_cancel_gives_the_points_back(points: RunningPoints, user: str, gid: str) -> None:
    order_id = f"order-{gid}"
    await points.grant(user, 500, f"grant-{gid}")
    await points.branch("TryDeduct", tcc(gid, Op.TRY), user, 120, order_id)
    await points.branch("CancelDeduct", tcc(gid, Op.CANCEL), user, 120, order_id)
    assert await points.account(user) == (500, 0)
    assert (await points.balanced()).spent == 0


async def test_try_beyond_the_balance_is_aborted_and_changes_nothing(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 50, f"grant-{gid}")
    details = await expect_error(points.branch("TryFreeze", tcc(gid, Op.TRY), user, 51, gid), ABORTED)
    assert "insufficient points" in details
    assert await points.account(user) == (50, 0)
    report = await points.balanced()
    assert list(report.entries) == []
    # The coordinator then cancels: nothing was tried, so an empty rollback.
    assert await points.branch("CancelFreeze", tcc(gid, Op.CANCEL), user, 51, gid) == "empty_rollback"
    assert await points.account(user) == (50, 0)
    await points.balanced()


async def test_try_for_a_user_without_account_is_aborted(points: RunningPoints, user: str, gid: str) -> None:
    details = await expect_error(points.branch("TryDeduct", tcc(gid, Op.TRY), user, 1, gid), ABORTED)
    assert "insufficient points" in details
    await expect_error(points.account(user), grpc.StatusCode.NOT_FOUND)
    assert list((await points.balanced()).entries) == []


async def test_duplicate_branch_calls_apply_once(points: RunningPoints, user: str, gid: str) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    notes = await asyncio.gather(
        *(points.branch("TryFreeze", tcc(gid, Op.TRY), user, 10, gid) for _ in range(3))
    )
    assert sorted(notes) == ["applied", "duplicate", "duplicate"]
    assert await points.branch("TryFreeze", tcc(gid, Op.TRY), user, 10, gid) == "duplicate"
    assert await points.account(user) == (90, 10)
    notes = await asyncio.gather(
        *(points.branch("ConfirmFreeze", tcc(gid, Op.CONFIRM), user, 10, gid) for _ in range(3))
    )
    assert sorted(notes) == ["applied", "duplicate", "duplicate"]
    assert await points.account(user) == (90, 0)

    other = uuid.uuid4().hex
    await points.branch("TryDeduct", tcc(other, Op.TRY), user, 25, other)
    notes = await asyncio.gather(
        *(points.branch("CancelDeduct", tcc(other, Op.CANCEL), user, 25, other) for _ in range(3))
    )
    assert sorted(notes) == ["applied", "duplicate", "duplicate"]
    assert await points.branch("CancelDeduct", tcc(other, Op.CANCEL), user, 25, other) == "duplicate"
    assert await points.account(user) == (90, 0)
    report = await points.balanced()
    assert (report.issued, report.spent) == (100, 10)


async def test_cancel_before_try_is_empty_and_the_late_try_is_rejected(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    assert await points.branch("CancelFreeze", tcc(gid, Op.CANCEL), user, 30, gid) == "empty_rollback"
    assert await points.account(user) == (100, 0)
    details = await expect_error(points.branch("TryFreeze", tcc(gid, Op.TRY), user, 30, gid), ABORTED)
    assert "late try rejected" in details
    assert await points.account(user) == (100, 0)
    assert list((await points.balanced()).entries) == []


async def test_cancel_with_a_bad_payload_and_no_try_is_an_empty_rollback(
    points: RunningPoints, user: str, gid: str
) -> None:
    # A try refused for bad input must still be cancellable, or the transaction would be stuck.
    await expect_error(points.branch("TryFreeze", tcc(gid, Op.TRY), user, 0, gid), INVALID)
    assert await points.branch("CancelFreeze", tcc(gid, Op.CANCEL), user, 0, gid) == "empty_rollback"
    await points.balanced()


async def test_twenty_concurrent_tries_over_a_balance_for_five_hold_exactly_five(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 50, f"grant-{gid}")
    gids = [f"{gid}-{i:02d}" for i in range(20)]
    results = await asyncio.gather(
        *(points.branch("TryFreeze", tcc(g, Op.TRY), user, 10, g) for g in gids), return_exceptions=True
    )
    won = [g for g, r in zip(gids, results, strict=True) if r == "applied"]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 5
    assert len(lost) == 15
    assert all(e.code() == ABORTED and "insufficient points" in (e.details() or "") for e in lost)
    assert await points.account(user) == (0, 50)
    report = await points.balanced()
    assert sorted(e.out_trade_no for e in report.entries) == sorted(won)
    # Settle: the winners confirm, the losers get empty rollbacks.
    for g in gids:
        op, method = (Op.CONFIRM, "ConfirmFreeze") if g in won else (Op.CANCEL, "CancelFreeze")
        await points.branch(method, tcc(g, op), user, 10, g)
    assert await points.account(user) == (0, 0)
    assert (await points.balanced()).spent == 50


async def test_second_deduct_for_an_order_held_by_another_gid_is_refused(
    points: RunningPoints, user: str, gid: str
) -> None:
    order_id = f"order-{gid}"
    await points.grant(user, 100, f"grant-{gid}")
    await points.branch("TryDeduct", tcc(gid, Op.TRY), user, 40, order_id)
    other = uuid.uuid4().hex
    details = await expect_error(points.branch("TryDeduct", tcc(other, Op.TRY), user, 40, order_id), ABORTED)
    assert "already trying" in details
    await points.branch("ConfirmDeduct", tcc(gid, Op.CONFIRM), user, 40, order_id)
    details = await expect_error(points.branch("TryDeduct", tcc(other, Op.TRY), user, 40, order_id), ABORTED)
    assert "already confirmed" in details
    assert await points.account(user) == (60, 0)
    assert (await points.balanced()).spent == 40


async def test_deduct_after_a_cancelled_attempt_rearms_the_entry(
    points: RunningPoints, user: str, gid: str
) -> None:
    order_id = f"order-{gid}"
    await points.grant(user, 100, f"grant-{gid}")
    await points.branch("TryDeduct", tcc(gid, Op.TRY), user, 40, order_id)
    await points.branch("CancelDeduct", tcc(gid, Op.CANCEL), user, 40, order_id)
    retry = uuid.uuid4().hex
    assert await points.branch("TryDeduct", tcc(retry, Op.TRY), user, 40, order_id) == "applied"
    # A late duplicate cancel of the first attempt must not release the retry's hold.
    assert await points.branch("CancelDeduct", tcc(gid, Op.CANCEL), user, 40, order_id) == "duplicate"
    assert await points.account(user) == (60, 40)
    await points.branch("ConfirmDeduct", tcc(retry, Op.CONFIRM), user, 40, order_id)
    assert await points.account(user) == (60, 0)
    report = await points.balanced()
    assert [(e.out_trade_no, e.state) for e in report.entries] == [(order_id, "confirmed")]


async def test_branch_op_that_does_not_match_the_rpc_is_invalid(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    details = await expect_error(points.branch("TryFreeze", tcc(gid, Op.CONFIRM), user, 10, gid), INVALID)
    assert details.startswith("x-mesh-op:")
    details = await expect_error(points.branch("RefundBranch", tcc(gid, Op.TRY), user, 10, gid), INVALID)
    assert details.startswith("x-mesh-op:")
    assert await points.account(user) == (100, 0)
    await points.balanced()


async def test_branch_call_without_transaction_context_is_invalid(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    request = points_pb2.PointsBranchRequest(user_id=user, amount=10, out_trade_no=gid)
    details = await expect_error(points.stub.TryFreeze(request), INVALID)
    assert details.startswith("x-mesh-gid:")
    partial = [kv for kv in branch_metadata(tcc(gid, Op.TRY)) if kv[0] != "x-mesh-branch"]
    details = await expect_error(points.stub.TryFreeze(request, metadata=partial), INVALID)
    assert details.startswith("x-mesh-branch:")
    assert await points.account(user) == (100, 0)
    await points.balanced()
