"""Issue 9 item 6: the simulated gateway exists only when enabled; refunds and payments need credentials.

``SimulateGatewayPay`` answers UNIMPLEMENTED unless ``pay.simulator_enabled``. ``Refund`` (by hand) needs
the admin token, ``RefundBranch`` and ``CreatePayment`` the mesh credentials; pay_svc's own call to
``Order.PaymentSucceeded`` carries them (the order stand-in refuses unsigned calls, as order_svc does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from meshkit.tx.branchcall import branch_metadata
from meshkit.tx.context import Op, TxContext, TxMode
from meshpb.order.v1 import order_pb2
from meshpb.pay.v1 import pay_pb2, pay_pb2_grpc
from tests.integration.creds import plain_channel
from tests.integration.pay.harness import FakeOrder, RunningPay, pay_settings, rpc_error

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


async def rpc_code(call: Any) -> grpc.StatusCode:
    """The code ``call`` fails with."""
    return (await rpc_error(call)).code()


async def test_item6_simulate_gateway_pay_is_unimplemented_unless_enabled(
    tmp_path: Path, fake_order: FakeOrder
) -> None:
    settings = pay_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'pay.db'}", fake_order.address, simulator_enabled=False
    )
    running = await RunningPay.start(settings)
    try:
        created = await running.create(amount_cents=500)
        code = await rpc_code(
            running.stub.SimulateGatewayPay(pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id))
        )
        assert code is grpc.StatusCode.UNIMPLEMENTED
        stored = await running.stored(created.payment_id)
        assert stored.status.name == "PENDING"
        assert fake_order.calls_for(created.order_id) == []
    finally:
        await running.stop()


async def test_item6_enabled_simulator_pays_and_tells_the_order_with_credentials(
    pay: RunningPay, fake_order: FakeOrder
) -> None:
    created = await pay.create(amount_cents=700)
    paid = await pay.stub.SimulateGatewayPay(pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id))
    assert paid.status == pay_pb2.PAYMENT_STATUS_SUCCEEDED
    calls = fake_order.calls_for(created.order_id)
    assert [c.answered for c in calls] == ["accepted"]
    assert calls[0].metadata["x-mesh-auth"].startswith("v1.")


async def test_item6_refunds_and_payments_need_credentials(pay: RunningPay) -> None:
    created = await pay.create(amount_cents=900)
    await pay.stub.SimulateGatewayPay(pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id))
    refund = pay_pb2.RefundRequest(
        payment_id=created.payment_id, order_id=created.order_id, amount_cents=900, out_refund_no="r-1"
    )
    ctx = TxContext(gid="g-forged", branch_id="refund", op=Op.ACTION, mode=TxMode.MSG)
    async with plain_channel(pay.address) as channel:
        outsider = pay_pb2_grpc.PayStub(channel)
        assert await rpc_code(outsider.Refund(refund)) is UNAUTHENTICATED
        assert await rpc_code(outsider.RefundBranch(refund, metadata=branch_metadata(ctx))) is UNAUTHENTICATED
        create = pay_pb2.CreatePaymentRequest(
            order_id="o-outsider", user_id="u1", amount_cents=1, channel=order_pb2.PAY_CHANNEL_EXTERNAL
        )
        assert await rpc_code(outsider.CreatePayment(create)) is UNAUTHENTICATED
        # reading a payment stays open
        shown = await outsider.GetPayment(pay_pb2.GetPaymentRequest(payment_id=created.payment_id))
    assert shown.status == pay_pb2.PAYMENT_STATUS_SUCCEEDED
    assert (await pay.stored(created.payment_id)).status.name == "SUCCEEDED"
    assert (await pay.audit_of(created.payment_id)).refund_count == 0
