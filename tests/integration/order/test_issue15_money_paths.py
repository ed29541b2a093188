"""Issue 15 items 1 and 2 on a REAL whole stack (coordinator, order, stock, points, pay as processes).

Item 1: a refund of an order's payment goes through the order. Pay.Refund (admin) of a payment whose
order is not already CANCELLED / REFUNDING / REFUNDED is FAILED_PRECONDITION naming the order; the
order's Cancel refunds it (once).

Item 2: one live payment attempt per order. While the order's EXTERNAL payment is pending, Pay POINTS
is FAILED_PRECONDITION naming that payment; Pay EXTERNAL again answers the same payment id and token;
once PAID every Pay is refused; of two concurrent Pay calls with different channels exactly one wins.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from meshpb.common.v1 import common_pb2
from meshpb.order.v1 import order_pb2 as opb
from meshpb.pay.v1 import pay_pb2 as paypb
from tests.integration.asserts import rpc_error
from tests.integration.flows.stack import Stack, whole_stack

PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
CREATED = opb.ORDER_STATUS_CREATED
PAID = opb.ORDER_STATUS_PAID
REFUNDED = opb.ORDER_STATUS_REFUNDED
EXTERNAL = opb.PAY_CHANNEL_EXTERNAL
POINTS = opb.PAY_CHANNEL_POINTS
PRICE = 2500
POINTS_GRANTED = 100_000


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with whole_stack(tmp_path_factory.mktemp("issue15-money")) as running:
        yield running


async def new_order(stack: Stack) -> tuple[str, str]:
    """A CREATED order of one unit at PRICE for a user holding POINTS_GRANTED points: (order, user)."""
    shop = f"m-{uuid.uuid4().hex[:8]}"
    sku = await stack.sku(shop, PRICE, 5)
    user = await stack.user(points=POINTS_GRANTED)
    placed = await stack.place(user, [(sku, shop, 1, PRICE)])
    await stack.order_status(placed.order_ids[0], CREATED)
    return placed.order_ids[0], user


async def payments_of(stack: Stack, order_id: str) -> list[paypb.PaymentAuditRow]:
    """pay_svc's audit rows of ``order_id`` (one per payment, with its refund count)."""
    audit = await stack.pay.Audit(common_pb2.AuditRequest(), timeout=20)
    return [row for row in audit.payments if row.order_id == order_id]


def refund_of(payment_id: str, key: str) -> paypb.RefundRequest:
    return paypb.RefundRequest(payment_id=payment_id, amount_cents=PRICE, reason="by hand", out_refund_no=key)


@pytest.mark.timeout(180)
async def test_issue15_item1_pay_refund_of_a_paid_order_is_refused(stack: Stack) -> None:
    order_id, user = await new_order(stack)
    started = await stack.pay_order(order_id, EXTERNAL)
    await stack.pay.SimulateGatewayPay(paypb.SimulateGatewayPayRequest(payment_id=started.payment_id))
    await stack.order_status(order_id, PAID)

    error = await rpc_error(stack.pay.Refund(refund_of(started.payment_id, f"r-{order_id}"), timeout=20))

    assert error.code() == PRECONDITION, error.details()
    details = error.details() or ""
    assert f"order {order_id}" in details and "PAID" in details and "cancel the order" in details
    assert (await stack.get_order(order_id)).status == PAID
    payment = await stack.payment(started.payment_id)
    assert (payment.status, payment.refund_id) == (paypb.PAYMENT_STATUS_SUCCEEDED, "")
    assert [(r.status, r.refund_count) for r in await payments_of(stack, order_id)] == [
        (paypb.PAYMENT_STATUS_SUCCEEDED, 0)
    ]

    # Through the order it is refunded, once; an operator's Refund then answers that same refund.
    await stack.cancel(order_id, "returned")
    await stack.order_status(order_id, REFUNDED, within=60)
    refunded = await stack.payment(started.payment_id)
    assert refunded.status == paypb.PAYMENT_STATUS_REFUNDED and refunded.refund_id
    again = await stack.pay.Refund(refund_of(started.payment_id, f"r2-{order_id}"), timeout=20)
    assert again.refund_id == refunded.refund_id
    assert [(r.refund_count, r.refunded_cents) for r in await payments_of(stack, order_id)] == [(1, PRICE)]
    assert await stack.account(user) == (POINTS_GRANTED, 0)


@pytest.mark.timeout(180)
async def test_issue15_item2_second_channel_while_pending_is_refused(stack: Stack) -> None:
    order_id, user = await new_order(stack)
    started = await stack.pay_order(order_id, EXTERNAL)

    error = await rpc_error(stack.pay_order(order_id, POINTS))

    assert error.code() == PRECONDITION, error.details()
    assert started.payment_id in (error.details() or "")
    assert (await stack.get_order(order_id)).status == CREATED
    assert await stack.account(user) == (POINTS_GRANTED, 0)  # nothing deducted, nothing frozen

    await stack.pay.SimulateGatewayPay(paypb.SimulateGatewayPayRequest(payment_id=started.payment_id))
    await stack.order_status(order_id, PAID)
    for channel in (POINTS, EXTERNAL):
        paid_error = await rpc_error(stack.pay_order(order_id, channel))
        assert paid_error.code() == PRECONDITION and "PAID" in (paid_error.details() or "")

    await stack.cancel(order_id, "returned")
    await stack.order_status(order_id, REFUNDED, within=60)
    rows = await payments_of(stack, order_id)
    assert [(r.status, r.refund_count, r.refunded_cents) for r in rows] == [
        (paypb.PAYMENT_STATUS_REFUNDED, 1, PRICE)
    ]
    assert await stack.account(user) == (POINTS_GRANTED, 0)


@pytest.mark.timeout(180)
async def test_issue15_item2_same_channel_again_returns_the_same_payment(stack: Stack) -> None:
    order_id, _ = await new_order(stack)

    first = await stack.pay_order(order_id, EXTERNAL)
    concurrent = await asyncio.gather(*(stack.pay_order(order_id, EXTERNAL) for _ in range(3)))
    again = await stack.pay_order(order_id, EXTERNAL)

    assert first.payment_id and first.token
    assert {(a.payment_id, a.token) for a in [*concurrent, again]} == {(first.payment_id, first.token)}
    assert (await stack.get_order(order_id)).payment_id == first.payment_id
    assert len(await payments_of(stack, order_id)) == 1


@pytest.mark.timeout(240)
async def test_issue15_item2_concurrent_pay_with_two_channels_one_wins(stack: Stack) -> None:
    for _ in range(3):
        order_id, user = await new_order(stack)

        external, points = await asyncio.gather(
            stack.pay_order(order_id, EXTERNAL), stack.pay_order(order_id, POINTS), return_exceptions=True
        )

        won = [r for r in (external, points) if isinstance(r, opb.PayResponse)]
        lost = [r for r in (external, points) if isinstance(r, grpc.aio.AioRpcError)]
        assert (len(won), len(lost)) == (1, 1), (external, points)
        assert lost[0].code() == PRECONDITION, lost[0].details()
        if isinstance(external, opb.PayResponse):
            # The external attempt is the order's; points were not touched; the gateway pays it.
            assert external.payment_id in (lost[0].details() or "")
            assert (await stack.get_order(order_id)).status == CREATED
            assert await stack.account(user) == (POINTS_GRANTED, 0)
            await stack.pay.SimulateGatewayPay(
                paypb.SimulateGatewayPayRequest(payment_id=external.payment_id)
            )
            await stack.order_status(order_id, PAID)
            assert (await stack.get_order(order_id)).payment_id == external.payment_id
        else:
            # Points paid; an external payment pay_svc created for the losing call never pays the order.
            await stack.order_status(order_id, PAID)
            assert await stack.account(user) == (POINTS_GRANTED - PRICE, 0)
            for row in await payments_of(stack, order_id):
                assert row.status == paypb.PAYMENT_STATUS_PENDING
                late = await stack.pay.SimulateGatewayPay(
                    paypb.SimulateGatewayPayRequest(payment_id=row.payment_id)
                )
                assert late.status == paypb.PAYMENT_STATUS_REFUNDED
            assert (await stack.get_order(order_id)).payment_id == f"points:{order_id}"


@pytest.mark.timeout(180)
async def test_issue15_item2_a_failed_external_payment_is_void_and_points_may_pay(stack: Stack) -> None:
    order_id, user = await new_order(stack)
    started = await stack.pay_order(order_id, EXTERNAL)
    failed = await stack.pay.SimulateGatewayPay(
        paypb.SimulateGatewayPayRequest(payment_id=started.payment_id, outcome=paypb.PAYMENT_STATUS_FAILED)
    )
    assert failed.status == paypb.PAYMENT_STATUS_FAILED

    paid = await stack.pay_order(order_id, POINTS)

    assert paid.payment_id == f"points:{order_id}"
    await stack.order_status(order_id, PAID)
    assert await stack.account(user) == (POINTS_GRANTED - PRICE, 0)
    assert (await stack.get_order(order_id)).payment_id == f"points:{order_id}"
    # The void attempt can never pay the order: money arriving for it now goes back at once.
    late = await stack.pay.SimulateGatewayPay(paypb.SimulateGatewayPayRequest(payment_id=started.payment_id))
    assert late.status == paypb.PAYMENT_STATUS_REFUNDED
    assert (await stack.get_order(order_id)).status == PAID


@pytest.mark.timeout(180)
async def test_issue15_item3_pay_external_after_a_gateway_failure_is_refused(stack: Stack) -> None:
    order_id, user = await new_order(stack)
    started = await stack.pay_order(order_id, EXTERNAL)
    await stack.pay.SimulateGatewayPay(
        paypb.SimulateGatewayPayRequest(payment_id=started.payment_id, outcome=paypb.PAYMENT_STATUS_FAILED)
    )
    recorded = (await stack.get_order(order_id)).payment_id

    error = await rpc_error(stack.pay_order(order_id, EXTERNAL))

    assert error.code() is PRECONDITION
    assert f"external payment {started.payment_id} failed" in (error.details() or "")
    assert "pay with points or cancel the order" in (error.details() or "")
    assert (await stack.get_order(order_id)).payment_id == recorded  # nothing recorded again
    assert [p.status for p in await payments_of(stack, order_id)] == [paypb.PAYMENT_STATUS_FAILED]
    paid = await stack.pay_order(order_id, POINTS)
    assert paid.payment_id == f"points:{order_id}"
    await stack.order_status(order_id, PAID)
    assert await stack.account(user) == (POINTS_GRANTED - PRICE, 0)
