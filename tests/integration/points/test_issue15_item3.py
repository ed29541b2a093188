"""Issue 15 item 3: every points refund gives back a named spending, at most what it took.

The fuzzer refunded a points-paid order with ``Points.Refund`` and a fresh ``out_trade_no`` while the
order stayed PAID; the later Cancel's refund branch then stayed stuck (the user's refunds already
covered the spending). Now a refund names the spending (``spending_type`` + ``spending_out_trade_no``),
a confirmed hold of the same user; the refunds of one spending never exceed it; and the operator's
``Refund`` refuses a spending of one of the order's transactions (gid ``order-...`` / ``pay-...``).
Runs on SQLite and MariaDB.
"""

from __future__ import annotations

import uuid

import grpc

from meshkit.tx.context import Op
from tests.integration.points.harness import RunningPoints, expect_error, msg_action, tcc

REFUSED = grpc.StatusCode.FAILED_PRECONDITION
ABORTED = grpc.StatusCode.ABORTED


async def hold(points: RunningPoints, method: str, gid: str, user: str, amount: int, *, key: str) -> None:
    """Try (and confirm unless ``method`` ends with ``:try``) a freeze or deduct of ``key`` in ``gid``."""
    verb, _, stage = method.partition(":")
    await points.branch(f"Try{verb}", tcc(gid, Op.TRY), user, amount, key)
    if stage != "try":
        await points.branch(f"Confirm{verb}", tcc(gid, Op.CONFIRM), user, amount, key)


async def test_issue15_item3_refund_of_an_unknown_spending_is_refused(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    await points.grant(f"{user}-b", 100, f"grant-{gid}-b")
    await hold(points, "Freeze", f"s-{gid}", user, 30, key=f"spent-{gid}")
    await hold(points, "Deduct:try", f"t-{gid}", user, 20, key=f"trying-{gid}")
    await hold(points, "Deduct", f"x-{gid}", f"{user}-b", 10, key=f"other-{gid}")
    before = await points.audit()
    cases = [
        (f"fresh-{gid}", "deduct", "not found"),
        (f"spent-{gid}", "deduct", "not found"),  # the spending is a freeze, not a deduct
        (f"trying-{gid}", "deduct", "is not confirmed yet"),
        (f"other-{gid}", "deduct", f"belongs to user {user}-b"),
    ]
    for key, kind, why in cases:
        details = await expect_error(points.refund(user, 5, f"r-{uuid.uuid4().hex}", key, kind), REFUSED)
        assert f"spending {kind} {key} {why}" in details, details
        branch = msg_action(f"cancel-{uuid.uuid4().hex}")
        refund = points.branch(
            "RefundBranch", branch, user, 5, f"rb-{uuid.uuid4().hex}", spending=(key, kind)
        )
        # Still trying: its transaction may confirm it (retried); the others can never succeed.
        await expect_error(refund, REFUSED if "trying" in key else ABORTED)
    assert await points.audit() == before
    assert await points.account(user) == (50, 20)
    await points.balanced()


async def test_issue15_item3_refund_of_a_cancelled_spending_is_refused(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 100, f"grant-{gid}")
    await hold(points, "Deduct:try", gid, user, 10, key=f"cancelled-{gid}")
    await points.branch("CancelDeduct", tcc(gid, Op.CANCEL), user, 10, f"cancelled-{gid}")
    details = await expect_error(points.refund(user, 5, f"r-{gid}", f"cancelled-{gid}", "deduct"), REFUSED)
    assert f"spending deduct cancelled-{gid} is cancelled: nothing was spent" in details
    refund = points.branch(
        "RefundBranch", msg_action(gid), user, 5, f"r-{gid}", spending=(f"cancelled-{gid}", "deduct")
    )
    await expect_error(refund, ABORTED)
    assert await points.account(user) == (100, 0)
    assert (await points.balanced()).refunded == 0


async def test_issue15_item3_refund_over_what_was_spent_is_refused(
    points: RunningPoints, user: str, gid: str
) -> None:
    await points.grant(user, 200, f"grant-{gid}")
    await hold(points, "Deduct", f"a-{gid}", user, 30, key=f"small-{gid}")
    await hold(points, "Freeze", f"b-{gid}", user, 100, key=f"big-{gid}")
    small = (f"small-{gid}", "deduct")
    await points.refund(user, 20, f"r1-{gid}", *small)
    # The user spent 130 in all, but this spending took 30: refunds of one spending do not pool.
    details = await expect_error(points.refund(user, 11, f"r2-{gid}", *small), REFUSED)
    assert f"spending deduct small-{gid}" in details and "took 30, 20 already refunded" in details
    branch = points.branch("RefundBranch", msg_action(f"cancel-{gid}"), user, 11, f"r3-{gid}", spending=small)
    await expect_error(branch, ABORTED)  # the spending never grows: retrying cannot help
    await points.refund(user, 10, f"r2-{gid}", *small)
    await expect_error(points.refund(user, 1, f"r4-{gid}", *small), REFUSED)
    # Idempotent per refund key: the same refund again changes nothing; another spending under it is refused.
    assert (await points.refund(user, 10, f"r2-{gid}", *small)).balance == 100
    await expect_error(
        points.refund(user, 10, f"r2-{gid}", f"big-{gid}", "freeze"), grpc.StatusCode.ALREADY_EXISTS
    )
    await points.refund(user, 100, f"r5-{gid}", f"big-{gid}", "freeze")
    assert await points.account(user) == (200, 0)
    report = await points.balanced()
    assert (report.spent, report.refunded) == (130, 130)
    spendings = [
        (e.spending_type, e.spending_out_trade_no, e.amount) for e in report.entries if e.type == "refund"
    ]
    assert spendings == [
        ("deduct", f"small-{gid}", 20),
        ("deduct", f"small-{gid}", 10),
        ("freeze", f"big-{gid}", 100),
    ]


async def test_issue15_item3_admin_refund_of_an_order_spending_is_refused(
    points: RunningPoints, user: str, gid: str
) -> None:
    order = f"o-{gid[:16]}"
    await points.grant(user, 100, f"grant-{gid}")
    placing = f"order-{gid}"  # order_svc's PlaceOrder gid; its freeze is keyed by that gid
    await hold(points, "Freeze", placing, user, 30, key=placing)
    await hold(points, "Deduct", f"pay-{order}-abc123", user, 50, key=order)  # a points payment of the order
    assert await points.account(user) == (20, 0)
    for key, kind in ((order, "deduct"), (placing, "freeze")):
        details = await expect_error(points.refund(user, 5, f"fresh-{uuid.uuid4().hex}", key, kind), REFUSED)
        assert f"spending {kind} {key} belongs to an order" in details
        assert "Order.Cancel" in details
    assert await points.account(user) == (20, 0)
    # A branch refund of an order's spending takes only the cancel chain's own key.
    stray = msg_action(f"cancel-{uuid.uuid4().hex}")
    for key, spending in ((f"fresh-{gid}", (order, "deduct")), (f"{order}:payment", (placing, "freeze"))):
        await expect_error(points.branch("RefundBranch", stray, user, 5, key, spending=spending), ABORTED)
    assert await points.account(user) == (20, 0)
    # The order's cancel chain still gives everything back, once, and is not stuck.
    cancel = msg_action(f"cancel-{order}-def456", branch="refund")
    note = await points.branch(
        "RefundBranch", cancel, user, 50, f"{order}:payment", spending=(order, "deduct")
    )
    assert note == "applied"
    discount = msg_action(f"cancel-{order}-def456", branch="points")
    note = await points.branch(
        "RefundBranch", discount, user, 30, f"{order}:discount", spending=(placing, "freeze")
    )
    assert note == "applied"
    assert await points.account(user) == (100, 0)
    report = await points.balanced()
    assert (report.spent, report.refunded) == (80, 80)
