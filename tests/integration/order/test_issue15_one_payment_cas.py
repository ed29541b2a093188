"""Issue 15 item 2 at the order row, on SQLite and MariaDB: one live payment attempt per order.

order_svc next to a real pay_svc (no points_svc): the pay lock of the points channel is taken the way
the coordinator takes it (TryMarkPaid with ``x-mesh-*`` metadata), so the compare-and-set on the order
row that keeps the two channels apart is exercised on both storages.
"""

from __future__ import annotations

import asyncio

import grpc

from meshkit.tx.context import Op
from meshpb.order.v1 import order_pb2 as pb
from order_svc.orders.values import Channel
from tests.integration.order.harness import RunningOrder, expect_code
from tests.integration.order.test_branches import created, gid, mark_paid

PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
ABORTED = grpc.StatusCode.ABORTED
EXTERNAL = pb.PAY_CHANNEL_EXTERNAL


async def test_issue15_item2_pending_external_refuses_the_points_channel(paying_order: RunningOrder) -> None:
    order = paying_order
    info = await created(order)
    started = await order.stub.Pay(pb.PayRequest(order_id=info.order_id, channel=EXTERNAL))

    details = await expect_code(
        order.stub.Pay(pb.PayRequest(order_id=info.order_id, channel=pb.PAY_CHANNEL_POINTS)), PRECONDITION
    )
    branch = await expect_code(order.branch("TryMarkPaid", mark_paid(info), gid(), Op.TRY), ABORTED)

    assert started.payment_id in details and "cancel the order" in details
    assert started.payment_id in branch
    stored = await order.runtime.service.repo.load(info.order_id, with_items=False)
    assert stored is not None
    assert (stored.status.value, stored.paying_gid) == ("CREATED", None)
    assert (stored.channel, stored.payment_id) == (Channel.EXTERNAL, started.payment_id)


async def test_issue15_item2_concurrent_external_pays_answer_one_payment(paying_order: RunningOrder) -> None:
    order = paying_order
    info = await created(order)
    request = pb.PayRequest(order_id=info.order_id, channel=EXTERNAL)

    answers = await asyncio.gather(*(order.stub.Pay(request) for _ in range(4)))
    again = await order.stub.Pay(request)

    assert {(a.payment_id, a.token) for a in answers} == {(again.payment_id, again.token)}
    assert again.payment_id and again.token and again.status == pb.ORDER_STATUS_CREATED


async def test_issue15_item2_external_pay_racing_the_points_lock_one_wins(paying_order: RunningOrder) -> None:
    order = paying_order
    for _ in range(6):
        info = await created(order)
        lock_gid = gid()
        external, lock = await asyncio.gather(
            order.stub.Pay(pb.PayRequest(order_id=info.order_id, channel=EXTERNAL)),
            order.branch("TryMarkPaid", mark_paid(info), lock_gid, Op.TRY),
            return_exceptions=True,
        )
        stored = await order.runtime.service.repo.load(info.order_id, with_items=False)
        assert stored is not None and stored.status.value == "CREATED"
        if isinstance(external, pb.PayResponse):
            assert isinstance(lock, grpc.aio.AioRpcError) and lock.code() is ABORTED, lock
            assert (stored.external_attempt, stored.paying_gid) == (external.payment_id, None)
        else:
            assert isinstance(external, grpc.aio.AioRpcError) and external.code() is PRECONDITION, external
            assert not isinstance(lock, BaseException), lock
            assert (stored.external_attempt, stored.paying_gid) == (None, lock_gid)
