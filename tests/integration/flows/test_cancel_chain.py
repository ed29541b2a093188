"""The cancel chain of a paid order on a REAL whole stack (issue 9 item 3): ``finish`` (FinishRefund,
REFUNDING -> REFUNDED) runs only after every refund branch succeeded, so with pay_svc down the order
stays REFUNDING, and it reaches REFUNDED, with the payment refunded, once pay_svc is back."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator

import pytest

from meshctl.stack import stackfile
from meshpb.coordinator.v1 import coordinator_pb2 as cpb
from meshpb.order.v1 import order_pb2 as opb
from meshpb.pay.v1 import pay_pb2 as paypb
from tests.integration.asserts import eventually
from tests.integration.flows.stack import Stack, whole_stack

PAID = opb.ORDER_STATUS_PAID
REFUNDING = opb.ORDER_STATUS_REFUNDING
REFUNDED = opb.ORDER_STATUS_REFUNDED
PAY = "pay_svc"


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with whole_stack(tmp_path_factory.mktemp("cancel-chain")) as running:
        yield running


def ops_of(tx: cpb.Transaction, branch_id: str) -> list[cpb.BranchOp]:
    """The ops of one branch of ``tx``."""
    return [op for op in tx.ops if op.branch_id == branch_id]


async def kill(stack: Stack, name: str) -> None:
    """kill -9 one service and wait until the launcher sees it gone."""
    state = stackfile.load(stack.launcher.data_dir)
    assert state is not None
    os.kill(next(p.pid for p in state.services() if p.name == name), signal.SIGKILL)
    await eventually(
        lambda: asyncio.sleep(0, stack.launcher.exited()), lambda dead: name in dead, 10, f"{name} gone"
    )


@pytest.mark.timeout(240)
async def test_item3_paid_order_stays_refunding_until_the_refund_succeeded(stack: Stack) -> None:
    shop = f"m-{uuid.uuid4().hex[:8]}"
    kettle = await stack.sku(shop, 3000, 4)
    user = await stack.user(points=1000)
    placed = await stack.place(user, [(kettle, shop, 2, 3000)], points=1000)
    order_id = placed.order_ids[0]
    paid = await stack.pay_order(order_id, opb.PAY_CHANNEL_EXTERNAL)
    await stack.pay.SimulateGatewayPay(paypb.SimulateGatewayPayRequest(payment_id=paid.payment_id))
    await stack.order_status(order_id, PAID)
    assert await stack.account(user) == (0, 0)  # the 1000 discount taken

    await kill(stack, PAY)
    try:
        assert (await stack.cancel(order_id, "returned")).status == REFUNDING
        # The stock and the points discount come back; the gateway refund cannot be made.
        await eventually(lambda: stack.account(user), lambda a: a == (1000, 0), 20, "discount back")
        await eventually(lambda: stack.stock_of(kettle), lambda s: s == (4, 0, 0), 20, "stock back")
        (cancel,) = await stack.transactions(f"cancel-{order_id}-")
        tx = await eventually(
            lambda: stack.tx(cancel.gid),
            lambda t: all(op.attempts >= 3 for op in ops_of(t, "refund")),
            30,
            "the refund to be retried while pay_svc is down",
        )
        assert tx.status == cpb.STATUS_SUBMITTED
        assert [(op.status, op.attempts) for op in ops_of(tx, "finish")] == [("pending", 0)]
        assert [op.status for op in ops_of(tx, "points")] == ["succeeded"]
        assert (await stack.get_order(order_id)).status == REFUNDING  # not REFUNDED before the refund
    finally:
        await stack.launcher.restart(PAY)

    await stack.order_status(order_id, REFUNDED, within=60)
    payment = await stack.payment(paid.payment_id)
    assert payment.status == paypb.PAYMENT_STATUS_REFUNDED and payment.refund_id
    done = await stack.final_tx(cancel.gid, within=30)
    assert done.status == cpb.STATUS_SUCCEEDED
    assert [op.status for op in ops_of(done, "finish")] == ["succeeded"]
