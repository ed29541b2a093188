"""The pay deadline on a REAL whole stack: the JetStream deadline message cancels an unpaid order, and a
gateway callback arriving after that is refunded automatically, exactly once.

Its own stack (module scope): order_svc runs with a 3 s pay timeout and a sweeper that never runs in
time, so the cancel can only come from the deadline message; the order is watched through ListOrders,
which does not close overdue orders passively.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from meshpb.common.v1 import common_pb2
from meshpb.coordinator.v1 import coordinator_pb2 as cpb
from meshpb.order.v1 import order_pb2 as opb
from meshpb.pay.v1 import pay_pb2 as paypb
from tests.integration.asserts import eventually
from tests.integration.flows.stack import Stack, whole_stack

PAY_TIMEOUT_SECONDS = 3.0


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    env = {
        "MESH_ORDER__PAY_TIMEOUT_SECONDS": str(PAY_TIMEOUT_SECONDS),
        "MESH_ORDER__SWEEP_INTERVAL_SECONDS": "3600",
    }
    async with whole_stack(tmp_path_factory.mktemp("deadline"), order_env=env) as running:
        yield running


async def refunds_of(stack: Stack, payment_id: str) -> tuple[bool, int]:
    audit = await stack.pay.Audit(common_pb2.AuditRequest(), timeout=20)
    row = next(p for p in audit.payments if p.payment_id == payment_id)
    return row.succeeded, row.refund_count


async def test_pay_deadline_then_late_callback_refunds_once(stack: Stack) -> None:
    await eventually(
        lambda: _log(stack), lambda text: "nats: connected" in text, 20, "order_svc connected to NATS"
    )
    shop = "m-deadline"
    clock_sku = await stack.sku(shop, 1500, 3)
    user = await stack.user()
    placed = await stack.place(user, [(clock_sku, shop, 2, 1500)])
    order_id = placed.order_ids[0]
    started = await stack.pay_order(order_id, opb.PAY_CHANNEL_EXTERNAL)
    assert await stack.stock_of(clock_sku) == (1, 0, 2)

    # nobody pays in time: the deadline message cancels the order and the stock comes back
    await stack.order_status(
        order_id, opb.ORDER_STATUS_CANCELLED, within=PAY_TIMEOUT_SECONDS + 10, user_id=user
    )
    await eventually(lambda: stack.stock_of(clock_sku), lambda s: s == (3, 0, 0), 20, "stock released")
    (cancel,) = await stack.transactions(f"cancel-{order_id}-")
    cancel = await stack.final_tx(cancel.gid)
    assert cancel.status == cpb.STATUS_SUCCEEDED
    assert [b.branch_id for b in cancel.branches] == ["stock"]

    # the user pays at the gateway anyway: the callback finds a cancelled order, the money goes back
    await stack.pay.SimulateGatewayPay(paypb.SimulateGatewayPayRequest(payment_id=started.payment_id))
    payment = await eventually(
        lambda: stack.payment(started.payment_id),
        lambda p: p.status == paypb.PAYMENT_STATUS_REFUNDED,
        20,
        "late payment refunded",
    )
    assert payment.refund_id
    assert await refunds_of(stack, started.payment_id) == (True, 1)

    # a second (duplicate) gateway notification changes nothing
    try:
        await stack.pay.SimulateGatewayPay(paypb.SimulateGatewayPayRequest(payment_id=started.payment_id))
    except grpc.aio.AioRpcError as exc:
        assert exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT)
    assert await refunds_of(stack, started.payment_id) == (True, 1)
    info = await stack.get_order(order_id)
    assert info.status == opb.ORDER_STATUS_CANCELLED
    assert (await stack.payment(started.payment_id)).status == paypb.PAYMENT_STATUS_REFUNDED
    # paying the cancelled order is refused, naming its state
    try:
        await stack.pay_order(order_id, opb.PAY_CHANNEL_POINTS)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "CANCELLED" in (exc.details() or "")
    else:
        pytest.fail("paying a cancelled order succeeded")


async def _log(stack: Stack) -> str:
    return stack.log("order_svc")
