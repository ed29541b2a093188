"""Issue 15 review item 2: cancel chains submitted before the spending fields still finish.

A RefundBranch payload of an old cancel chain carries no ``spending_type``/``spending_out_trade_no``.
``<order>:payment`` names ``deduct <order>``; ``<order>:discount`` (a freeze keyed by the placing gid,
which the key does not tell) falls back to the old per-user cap. The operator's Refund stays strict.
Runs on SQLite and MariaDB.
"""

from __future__ import annotations

import grpc

from meshkit.tx.context import Op
from tests.integration.points.harness import RunningPoints, expect_error, msg_action, tcc


async def _spend(points: RunningPoints, verb: str, gid: str, user: str, *, amount: int, key: str) -> None:
    await points.branch(f"Try{verb}", tcc(gid, Op.TRY), user, amount, key)
    await points.branch(f"Confirm{verb}", tcc(gid, Op.CONFIRM), user, amount, key)


async def test_issue15_item2_legacy_payment_refund_gives_back_the_orders_deduct(
    points: RunningPoints, user: str, gid: str
) -> None:
    order = f"o-{gid}"
    await points.grant(user, 100, f"grant-{gid}")
    await _spend(points, "Deduct", f"pay-{gid}", user, amount=40, key=order)
    note = await points.branch("RefundBranch", msg_action(f"cancel-{gid}"), user, 40, f"{order}:payment")
    assert note
    assert await points.account(user) == (100, 0)
    refunds = [e for e in (await points.balanced()).entries if e.type == "refund"]
    assert [(e.spending_type, e.spending_out_trade_no, e.amount) for e in refunds] == [("deduct", order, 40)]
    # Redelivered: the same refund, applied once.
    await points.branch("RefundBranch", msg_action(f"cancel-{gid}"), user, 40, f"{order}:payment")
    assert await points.account(user) == (100, 0)


async def test_issue15_item2_legacy_discount_refund_is_capped_per_user(
    points: RunningPoints, user: str, gid: str
) -> None:
    order = f"o-{gid}"
    await points.grant(user, 100, f"grant-{gid}")
    await _spend(points, "Freeze", f"order-{gid}", user, amount=30, key=f"order-{gid}")
    await points.branch("RefundBranch", msg_action(f"cancel-{gid}"), user, 30, f"{order}:discount")
    assert await points.account(user) == (100, 0)
    over = points.branch("RefundBranch", msg_action(f"cancel2-{gid}"), user, 1, f"o2-{gid}:discount")
    await expect_error(over, grpc.StatusCode.FAILED_PRECONDITION)  # beyond what the user spent: retried
    assert await points.account(user) == (100, 0)
    await points.balanced()


async def test_issue15_item2_public_refund_without_spending_stays_invalid(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    details = await expect_error(
        points.refund(user, 5, f"o-{gid}:payment", "", ""), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "spending_out_trade_no" in details
    other = points.branch("RefundBranch", msg_action(f"c-{gid}"), user, 5, f"fix-{gid}")
    details = await expect_error(other, grpc.StatusCode.INVALID_ARGUMENT)
    assert "spending_out_trade_no" in details
