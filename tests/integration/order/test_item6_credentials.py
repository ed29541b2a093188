"""Issue 9 item 6: only the order's own payment, told by a mesh member, can mark an order PAID.

``Order.PaymentSucceeded`` was open and took any payment id. Now it is mesh-only (UNAUTHENTICATED
without the mesh credentials), and even a signed call is refused unless the payment is the one pay_svc
created for this order's Pay (recorded by the order) and the amount is the amount due.
"""

from __future__ import annotations

import grpc

from meshkit.tx.context import Op
from meshpb.order.v1 import order_pb2 as pb
from meshpb.order.v1 import order_pb2_grpc
from order_svc.orders.states import OrderState
from tests.integration.creds import plain_channel
from tests.integration.order.harness import RunningOrder, expect_code, orders_branch
from tests.integration.order.test_branches import created, gid, pay_externally

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


async def stored_status(order: RunningOrder, order_id: str) -> OrderState:
    """The order's status as stored."""
    stored = await order.runtime.service.repo.load(order_id)
    assert stored is not None
    return stored.status


async def test_item6_payment_succeeded_with_an_invented_payment_id_is_refused(
    paying_order: RunningOrder,
) -> None:
    order = paying_order
    info = await created(order)
    due = info.total_cents
    invented = pb.PaymentSucceededRequest(order_id=info.order_id, payment_id="9999", amount_cents=due)
    # signed (a mesh member), but no payment of this order: refused, the order stays CREATED
    reply = await order.stub.PaymentSucceeded(invented)
    assert not reply.accepted
    assert reply.status == pb.ORDER_STATUS_CREATED
    payment_id = await pay_externally(order, info)
    # the order's own payment with the wrong amount: refused
    short = pb.PaymentSucceededRequest(order_id=info.order_id, payment_id=payment_id, amount_cents=due - 1)
    assert not (await order.stub.PaymentSucceeded(short)).accepted
    # another id, even now that the order has a payment: refused
    assert not (await order.stub.PaymentSucceeded(invented)).accepted
    assert await stored_status(order, info.order_id) is OrderState.CREATED
    # the real one: accepted
    real = pb.PaymentSucceededRequest(order_id=info.order_id, payment_id=payment_id, amount_cents=due)
    assert (await order.stub.PaymentSucceeded(real)).accepted
    assert await stored_status(order, info.order_id) is OrderState.PAID


async def test_item6_payment_succeeded_and_branches_need_mesh_credentials(order: RunningOrder) -> None:
    info = await created(order)
    request = pb.PaymentSucceededRequest(
        order_id=info.order_id, payment_id="1", amount_cents=info.total_cents
    )
    async with plain_channel(order.address) as channel:
        outsider = order_pb2_grpc.OrderStub(channel)
        await expect_code(outsider.PaymentSucceeded(request), UNAUTHENTICATED)
        await expect_code(outsider.FinishRefund(pb.OrderIdRequest(order_id=info.order_id)), UNAUTHENTICATED)
        payload = orders_branch("u-outsider", ("m-1", [("a", 1, 100)]))
        await expect_code(outsider.TryCreate(payload), UNAUTHENTICATED)
        await expect_code(outsider.PutFlashSale(pb.PutFlashSaleRequest()), UNAUTHENTICATED)
        # public reads stay open
        shown = await outsider.GetOrder(pb.GetOrderRequest(order_id=info.order_id))
    assert shown.status == pb.ORDER_STATUS_CREATED
    assert await stored_status(order, info.order_id) is OrderState.CREATED
    # the coordinator's (signed) branch call still works
    await order.branch("TryCreate", orders_branch("u-mesh", ("m-1", [("a", 1, 100)])), gid(), Op.TRY)
