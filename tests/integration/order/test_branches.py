"""order_svc's branch RPCs through the SQL barrier, the state machine's CAS and the order history.

Real order_svc (in-process MeshServer) on SQLite and MariaDB; a real coordinator for the cancel MSG.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from meshkit.tx.context import Op, TxMode
from meshpb.common.v1 import common_pb2
from meshpb.coordinator.v1 import coordinator_pb2 as cpb
from meshpb.order.v1 import order_pb2 as pb
from order_svc.orders.states import OrderState
from tests.integration.coordinator.harness import RunningCoordinator, wait_for
from tests.integration.order.harness import RunningOrder, expect_code, orders_branch, wait_for_status

CREATED = pb.ORDER_STATUS_CREATED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def gid() -> str:
    return f"test-{uuid.uuid4().hex}"


async def created(order: RunningOrder, points: int = 0) -> pb.OrderInfo:
    """One order made visible through TryCreate + ConfirmCreate."""
    payload = orders_branch("u-1", ("m-1", [("sku-a", 2, 300), ("sku-b", 1, 400)]), points=[points])
    g = gid()
    await order.branch("TryCreate", payload, g, Op.TRY)
    await order.branch("ConfirmCreate", payload, g, Op.CONFIRM)
    info: pb.OrderInfo = await order.stub.GetOrder(pb.GetOrderRequest(order_id=payload.orders[0].order_id))
    return info


def mark_paid(info: pb.OrderInfo) -> pb.MarkPaidBranch:
    return pb.MarkPaidBranch(
        order_id=info.order_id,
        payment_id=f"points:{info.order_id}",
        amount_cents=info.total_cents - info.points_used,
        channel=pb.PAY_CHANNEL_POINTS,
    )


async def paid(order: RunningOrder) -> pb.OrderInfo:
    """One order made PAID through TryMarkPaid + ConfirmMarkPaid."""
    info = await created(order)
    g = gid()
    await order.branch("TryMarkPaid", mark_paid(info), g, Op.TRY)
    await order.branch("ConfirmMarkPaid", mark_paid(info), g, Op.CONFIRM)
    result: pb.OrderInfo = await order.stub.GetOrder(pb.GetOrderRequest(order_id=info.order_id))
    return result


async def test_try_create_hides_orders_until_confirm(order: RunningOrder) -> None:
    payload = orders_branch("u-hide", ("m-1", [("a", 1, 100)]), ("m-2", [("b", 2, 50)]))
    g = gid()
    reply = await order.branch("TryCreate", payload, g, Op.TRY)
    assert reply.note == "applied"
    for o in payload.orders:
        await expect_code(
            order.stub.GetOrder(pb.GetOrderRequest(order_id=o.order_id)), grpc.StatusCode.NOT_FOUND
        )
    listed = await order.stub.ListOrders(pb.ListOrdersRequest(user_id="u-hide"))
    assert list(listed.orders) == []

    await order.branch("ConfirmCreate", payload, g, Op.CONFIRM)
    for o in payload.orders:
        info = await order.stub.GetOrder(pb.GetOrderRequest(order_id=o.order_id))
        assert info.status == CREATED
        assert info.gid == g
        assert info.total_cents == o.total_cents
        assert info.pay_deadline.seconds > info.created_at.seconds
        assert await order.transitions(o.order_id) == [(None, "PENDING"), ("PENDING", "CREATED")]
    listed = await order.stub.ListOrders(pb.ListOrdersRequest(user_id="u-hide"))
    assert len(listed.orders) == 2


async def test_duplicate_confirm_changes_nothing(order: RunningOrder) -> None:
    payload = orders_branch("u-dup", ("m-1", [("a", 1, 100)]))
    g = gid()
    await order.branch("TryCreate", payload, g, Op.TRY)
    assert (await order.branch("TryCreate", payload, g, Op.TRY)).note == "duplicate"
    await order.branch("ConfirmCreate", payload, g, Op.CONFIRM)
    assert (await order.branch("ConfirmCreate", payload, g, Op.CONFIRM)).note == "duplicate"
    assert await order.transitions(payload.orders[0].order_id) == [(None, "PENDING"), ("PENDING", "CREATED")]


async def test_cancel_create_voids_orders_for_good(order: RunningOrder) -> None:
    payload = orders_branch("u-void", ("m-1", [("a", 1, 100)]))
    g = gid()
    await order.branch("TryCreate", payload, g, Op.TRY)
    await order.branch("CancelCreate", payload, g, Op.CANCEL)
    order_id = payload.orders[0].order_id
    await expect_code(order.stub.GetOrder(pb.GetOrderRequest(order_id=order_id)), grpc.StatusCode.NOT_FOUND)
    assert await order.transitions(order_id) == [(None, "PENDING"), ("PENDING", "VOIDED")]
    audit = await order.stub.Audit(common_pb2.AuditRequest())
    assert order_id not in {row.order_id for row in audit.orders}


async def test_empty_rollback_then_late_try_is_rejected(order: RunningOrder) -> None:
    payload = orders_branch("u-late", ("m-1", [("a", 1, 100)]))
    g = gid()
    assert (await order.branch("CancelCreate", payload, g, Op.CANCEL)).note == "empty_rollback"
    await expect_code(order.branch("TryCreate", payload, g, Op.TRY), grpc.StatusCode.ABORTED)
    assert await order.history(payload.orders[0].order_id) == []


async def test_points_payment_branches_lock_then_pay(order: RunningOrder) -> None:
    info = await created(order, points=100)
    g = gid()
    await order.branch("TryMarkPaid", mark_paid(info), g, Op.TRY)
    # the pay lock refuses a cancel and a second payment while it is held
    details = await expect_code(order.stub.Cancel(pb.CancelRequest(order_id=info.order_id)), PRECONDITION)
    assert "CREATED" in details and "CANCELLED" in details
    await expect_code(order.branch("TryMarkPaid", mark_paid(info), gid(), Op.TRY), grpc.StatusCode.ABORTED)
    await expect_code(
        order.stub.Pay(pb.PayRequest(order_id=info.order_id, channel=pb.PAY_CHANNEL_POINTS)), PRECONDITION
    )

    await order.branch("ConfirmMarkPaid", mark_paid(info), g, Op.CONFIRM)
    got = await order.stub.GetOrder(pb.GetOrderRequest(order_id=info.order_id))
    assert got.status == pb.ORDER_STATUS_PAID
    assert got.payment_id == f"points:{info.order_id}"
    history = await order.history(info.order_id)
    assert [(h.to_status.value, h.gid) for h in history][-1] == ("PAID", g)


async def test_cancel_mark_paid_releases_the_lock(order: RunningOrder) -> None:
    info = await created(order)
    g = gid()
    await order.branch("TryMarkPaid", mark_paid(info), g, Op.TRY)
    await order.branch("CancelMarkPaid", mark_paid(info), g, Op.CANCEL)
    stored = await order.runtime.service.repo.load(info.order_id)
    assert stored is not None
    assert stored.paying_gid is None
    assert stored.status is OrderState.CREATED
    # the lock is free again: another payment may take it
    await order.branch("TryMarkPaid", mark_paid(info), gid(), Op.TRY)


async def test_mark_paid_refuses_wrong_amount(order: RunningOrder) -> None:
    info = await created(order)
    wrong = mark_paid(info)
    wrong.amount_cents += 1
    await expect_code(order.branch("TryMarkPaid", wrong, gid(), Op.TRY), grpc.StatusCode.ABORTED)


async def test_ship_and_complete_follow_the_table(order: RunningOrder) -> None:
    info = await created(order)
    details = await expect_code(order.stub.Ship(pb.OrderIdRequest(order_id=info.order_id)), PRECONDITION)
    assert "CREATED" in details and "SHIPPED" in details
    info = await paid(order)
    details = await expect_code(order.stub.Complete(pb.OrderIdRequest(order_id=info.order_id)), PRECONDITION)
    assert "PAID" in details and "COMPLETED" in details
    shipped = await order.stub.Ship(pb.OrderIdRequest(order_id=info.order_id))
    assert shipped.status == pb.ORDER_STATUS_SHIPPED
    done = await order.stub.Complete(pb.OrderIdRequest(order_id=info.order_id))
    assert done.status == pb.ORDER_STATUS_COMPLETED
    assert done.version > info.version
    details = await expect_code(order.stub.Cancel(pb.CancelRequest(order_id=info.order_id)), PRECONDITION)
    assert "COMPLETED" in details and "CANCELLED" in details
    assert await order.transitions(info.order_id) == [
        (None, "PENDING"),
        ("PENDING", "CREATED"),
        ("CREATED", "PAID"),
        ("PAID", "SHIPPED"),
        ("SHIPPED", "COMPLETED"),
    ]
    last = (await order.history(info.order_id))[-1]
    assert last.actor == "api"
    assert last.reason == "completed"


async def test_concurrent_ships_exactly_one_wins(order: RunningOrder) -> None:
    info = await paid(order)
    calls = [order.stub.Ship(pb.OrderIdRequest(order_id=info.order_id)) for _ in range(8)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    won = [r for r in results if isinstance(r, pb.OrderInfo)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1
    assert len(lost) == 7
    assert all(e.code() is PRECONDITION and "SHIPPED" in (e.details() or "") for e in lost)
    assert [t for t in await order.transitions(info.order_id) if t[1] == "SHIPPED"] == [("PAID", "SHIPPED")]


async def pay_externally(order: RunningOrder, info: pb.OrderInfo) -> str:
    """Pay EXTERNAL (pay_svc creates the payment, the order records it); the payment id."""
    reply = await order.stub.Pay(pb.PayRequest(order_id=info.order_id, channel=pb.PAY_CHANNEL_EXTERNAL))
    assert reply.payment_id
    return str(reply.payment_id)


async def test_payment_succeeded_is_idempotent_and_refuses_others(paying_order: RunningOrder) -> None:
    order = paying_order
    info = await created(order)
    due = info.total_cents
    payment_id = await pay_externally(order, info)
    request = pb.PaymentSucceededRequest(order_id=info.order_id, payment_id=payment_id, amount_cents=due)
    first = await order.stub.PaymentSucceeded(request)
    assert first.accepted and first.status == pb.ORDER_STATUS_PAID
    again = await order.stub.PaymentSucceeded(request)
    assert again.accepted
    other = await order.stub.PaymentSucceeded(
        pb.PaymentSucceededRequest(order_id=info.order_id, payment_id="pay-2", amount_cents=due)
    )
    assert not other.accepted
    assert other.status == pb.ORDER_STATUS_PAID
    got = await order.stub.GetOrder(pb.GetOrderRequest(order_id=info.order_id))
    assert got.payment_id == payment_id


async def test_cancel_created_order_runs_the_cancel_chain(
    order: RunningOrder, coordinator: RunningCoordinator
) -> None:
    info = await created(order, points=200)
    cancelled = await order.stub.Cancel(pb.CancelRequest(order_id=info.order_id, reason="changed my mind"))
    assert cancelled.status == pb.ORDER_STATUS_CANCELLED
    history = await order.history(info.order_id)
    last = history[-1]
    assert (last.from_status and last.from_status.value, last.to_status.value) == ("CREATED", "CANCELLED")
    assert last.reason == "changed my mind"
    tx = await coordinator.query(last.gid)
    assert tx.mode == cpb.MODE_MSG
    assert tx.status in (cpb.STATUS_SUBMITTED, cpb.STATUS_SUCCEEDED)
    branches = {b.branch_id: b for b in tx.branches}
    assert set(branches) == {"stock", "points"}
    assert branches["stock"].action.endswith("/meshpb.stock.v1.Stock/ReleaseStock")
    assert branches["points"].action.endswith("/meshpb.points.v1.Points/RefundBranch")
    # the check-back of a committed cancel answers OK, of an unknown gid ABORTED
    await order.branch(
        "QueryPrepared", pb.OrderIdRequest(), last.gid, Op.MSG, mode=TxMode.MSG, branch_id="00"
    )
    await expect_code(
        order.branch("QueryPrepared", pb.OrderIdRequest(), gid(), Op.MSG, mode=TxMode.MSG, branch_id="00"),
        grpc.StatusCode.ABORTED,
    )
    # a cancelled order is final: no payment, no second cancel
    await expect_code(order.stub.Cancel(pb.CancelRequest(order_id=info.order_id)), PRECONDITION)
    await expect_code(order.branch("TryMarkPaid", mark_paid(info), gid(), Op.TRY), grpc.StatusCode.ABORTED)
    refused = await order.stub.PaymentSucceeded(
        pb.PaymentSucceededRequest(
            order_id=info.order_id, payment_id="late", amount_cents=info.total_cents - 200
        )
    )
    assert not refused.accepted
    assert refused.status == pb.ORDER_STATUS_CANCELLED


async def test_item3_cancel_paid_order_finishes_only_after_the_refund(
    order: RunningOrder, coordinator: RunningCoordinator
) -> None:
    info = await paid(order)
    refunding = await order.stub.Cancel(pb.CancelRequest(order_id=info.order_id, reason="return"))
    assert refunding.status == pb.ORDER_STATUS_REFUNDING
    gid_ = (await order.history(info.order_id))[-1].gid
    tx = await coordinator.query(gid_)
    assert {b.branch_id for b in tx.branches} == {"stock", "refund", "finish"}
    refund = next(b for b in tx.branches if b.branch_id == "refund")
    assert refund.action.endswith("/meshpb.points.v1.Points/RefundBranch")
    finish = next(b for b in tx.branches if b.branch_id == "finish")
    assert list(finish.depends_on) == ["refund"]

    # No points_svc here: the refund keeps failing, so finish is never called and the order stays
    # REFUNDING (before, finish ran at once and the order was REFUNDED without its refund).
    async def refund_retried() -> bool:
        ops = (await coordinator.query(gid_)).ops
        return any(op.branch_id == "refund" and op.attempts >= 2 for op in ops)

    await wait_for(refund_retried, what="the refund to be retried")
    ops = (await coordinator.query(gid_)).ops
    assert [(op.status, op.attempts) for op in ops if op.branch_id == "finish"] == [("pending", 0)]
    await wait_for_status(order, info.order_id, OrderState.REFUNDING)

    # What the coordinator sends once the refund succeeded; FinishRefund is idempotent.
    for _ in range(2):
        await order.branch(
            "FinishRefund",
            pb.OrderIdRequest(order_id=info.order_id),
            gid_,
            Op.ACTION,
            mode=TxMode.MSG,
            branch_id="finish",
        )
    await wait_for_status(order, info.order_id, OrderState.REFUNDED)
    assert [t[1] for t in await order.transitions(info.order_id)][-2:] == ["REFUNDING", "REFUNDED"]


async def test_cancel_racing_payment_never_both(paying_order: RunningOrder) -> None:
    order = paying_order
    for _ in range(5):
        info = await created(order)
        payment_id = await pay_externally(order, info)
        cancel = order.stub.Cancel(pb.CancelRequest(order_id=info.order_id))
        pay = order.stub.PaymentSucceeded(
            pb.PaymentSucceededRequest(
                order_id=info.order_id, payment_id=payment_id, amount_cents=info.total_cents
            )
        )
        results: list[object] = list(await asyncio.gather(cancel, pay, return_exceptions=True))
        cancel_result, pay_result = results
        stored = await order.runtime.service.repo.load(info.order_id)
        assert stored is not None
        if isinstance(pay_result, pb.PaymentSucceededResponse) and pay_result.accepted:
            # paid first: the cancel either lost, or came after and refunds
            if isinstance(cancel_result, pb.OrderInfo):
                # the refund chain may already have finished when Cancel reads the order back
                assert cancel_result.status in (pb.ORDER_STATUS_REFUNDING, pb.ORDER_STATUS_REFUNDED)
            else:
                assert isinstance(cancel_result, grpc.aio.AioRpcError)
                assert cancel_result.code() is PRECONDITION
        else:
            assert isinstance(cancel_result, pb.OrderInfo)
            assert cancel_result.status == pb.ORDER_STATUS_CANCELLED
            assert stored.status is OrderState.CANCELLED
        statuses = [t[1] for t in await order.transitions(info.order_id)]
        assert not ("PAID" in statuses and "CANCELLED" in statuses)


async def test_branch_calls_need_their_context(order: RunningOrder) -> None:
    payload = orders_branch("u-ctx", ("m-1", [("a", 1, 100)]))
    details = await expect_code(order.stub.TryCreate(payload), INVALID)
    assert "x-mesh-gid" in details
    details = await expect_code(order.branch("TryCreate", payload, gid(), Op.CONFIRM), INVALID)
    assert "x-mesh-op" in details
    empty = pb.CreateOrdersBranch(request_id="r")
    await expect_code(order.branch("TryCreate", empty, gid(), Op.TRY), INVALID)


async def test_audit_lists_visible_orders(order: RunningOrder) -> None:
    info = await paid(order)
    audit = await order.stub.Audit(common_pb2.AuditRequest())
    row = next(r for r in audit.orders if r.order_id == info.order_id)
    assert row.status == pb.ORDER_STATUS_PAID
    assert row.channel == pb.PAY_CHANNEL_POINTS
    assert row.payment_id == f"points:{info.order_id}"
    assert row.amount_due_cents == info.total_cents


@pytest.mark.parametrize("limit", [1, 2])
async def test_list_orders_pages_newest_first(order: RunningOrder, limit: int) -> None:
    user = f"u-page-{uuid.uuid4().hex[:8]}"
    ids = []
    for _ in range(3):
        payload = orders_branch(user, ("m-1", [("a", 1, 100)]))
        g = gid()
        await order.branch("TryCreate", payload, g, Op.TRY)
        await order.branch("ConfirmCreate", payload, g, Op.CONFIRM)
        ids.append(payload.orders[0].order_id)
        await asyncio.sleep(0.005)
    seen: list[str] = []
    cursor = ""
    for _ in range(5):
        page = await order.stub.ListOrders(
            pb.ListOrdersRequest(user_id=user, page=common_pb2.PageRequest(cursor=cursor, limit=limit))
        )
        assert len(page.orders) <= limit
        seen += [o.order_id for o in page.orders]
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == list(reversed(ids))


async def test_flash_sale_rpcs_check_their_input(order: RunningOrder) -> None:
    # The flash sale itself is tested in tests/integration/flash.
    details = await expect_code(order.stub.FlashBuy(pb.FlashBuyRequest()), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("request_id:")
    details = await expect_code(
        order.stub.GetFlashResult(pb.GetFlashResultRequest()), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert details.startswith("ticket:")
