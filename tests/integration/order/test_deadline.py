"""The pay deadline: JetStream message, sweeper, passive close, and the pay lock holding it off.

SQLite only (the store does not matter here); each test starts its own order_svc with a short timeout.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import grpc
import pytest

from meshkit.tx.context import Op
from meshpb.order.v1 import order_pb2 as pb
from order_svc.orders.states import OrderState
from tests.integration.coordinator.harness import RunningCoordinator, wait_for
from tests.integration.order.harness import (
    RunningOrder,
    expect_code,
    order_settings,
    orders_branch,
    wait_for_status,
)

Starter = Callable[..., AbstractAsyncContextManager[RunningOrder]]


@pytest.fixture
def start_order(sqlite_url: str, coordinator: RunningCoordinator) -> Starter:
    """Start an order_svc with the given ``order`` settings (and ``nats_url``)."""

    @asynccontextmanager
    async def start(nats_url: str | None = None, **section: Any) -> AsyncIterator[RunningOrder]:
        running = await RunningOrder.start(
            order_settings(sqlite_url, coordinator.address, nats_url=nats_url, **section)
        )
        try:
            yield running
        finally:
            await running.stop()

    return start


async def place(order: RunningOrder) -> str:
    payload = orders_branch(f"u-{uuid.uuid4().hex[:6]}", ("m-1", [("a", 1, 100)]))
    gid = f"test-{uuid.uuid4().hex}"
    await order.branch("TryCreate", payload, gid, Op.TRY)
    await order.branch("ConfirmCreate", payload, gid, Op.CONFIRM)
    return str(payload.orders[0].order_id)


async def last_actor(order: RunningOrder, order_id: str) -> str:
    return (await order.history(order_id))[-1].actor


async def test_deadline_message_cancels_overdue_order(start_order: Starter, nats_url: str) -> None:
    async with start_order(nats_url=nats_url, pay_timeout_seconds=1.0) as order:
        await wait_for(lambda: order.runtime.deadlines.connected, 10, what="deadline consumer")
        order_id = await place(order)
        await wait_for_status(order, order_id, OrderState.CANCELLED, within=8)
        assert await last_actor(order, order_id) == "deadline"
        history = await order.history(order_id)
        assert history[-1].reason == "pay deadline passed"


async def test_sweeper_cancels_what_the_message_missed(start_order: Starter) -> None:
    async with start_order(pay_timeout_seconds=0.5, sweep_interval_seconds=0.2) as order:
        order_id = await place(order)
        await wait_for_status(order, order_id, OrderState.CANCELLED, within=5)
        assert await last_actor(order, order_id) == "deadline"


async def test_get_order_closes_an_overdue_order(start_order: Starter) -> None:
    async with start_order(pay_timeout_seconds=0.3) as order:
        order_id = await place(order)
        await asyncio.sleep(0.5)
        stored = await order.runtime.service.repo.load(order_id)
        assert stored is not None
        assert stored.status is OrderState.CREATED  # nobody swept it
        info = await order.stub.GetOrder(pb.GetOrderRequest(order_id=order_id))
        assert info.status == pb.ORDER_STATUS_CANCELLED


async def test_pay_of_an_overdue_order_is_refused_and_closes_it(start_order: Starter) -> None:
    async with start_order(pay_timeout_seconds=0.3) as order:
        order_id = await place(order)
        await asyncio.sleep(0.5)
        details = await expect_code(
            order.stub.Pay(pb.PayRequest(order_id=order_id, channel=pb.PAY_CHANNEL_POINTS)),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert "CANCELLED" in details and "deadline" in details
        await wait_for_status(order, order_id, OrderState.CANCELLED, within=1)


async def test_pay_lock_holds_off_the_deadline(start_order: Starter) -> None:
    async with start_order(pay_timeout_seconds=0.3, sweep_interval_seconds=0.1) as order:
        order_id = await place(order)
        info = await order.runtime.service.repo.load(order_id)
        assert info is not None
        paid = pb.MarkPaidBranch(
            order_id=order_id,
            payment_id=f"points:{order_id}",
            amount_cents=info.amount_due_cents,
            channel=pb.PAY_CHANNEL_POINTS,
        )
        gid = f"test-{uuid.uuid4().hex}"
        await order.branch("TryMarkPaid", paid, gid, Op.TRY)
        await asyncio.sleep(0.8)  # several sweeps past the deadline
        got = await order.stub.GetOrder(pb.GetOrderRequest(order_id=order_id))
        assert got.status == pb.ORDER_STATUS_CREATED
        await order.branch("ConfirmMarkPaid", paid, gid, Op.CONFIRM)
        await wait_for_status(order, order_id, OrderState.PAID, within=1)
        await asyncio.sleep(0.3)
        await wait_for_status(order, order_id, OrderState.PAID, within=1)
