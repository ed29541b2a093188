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

from meshkit.barrier import RunnerBarrier
from meshkit.runtime.clock import SystemClock, now_ms
from meshkit.store import Conn
from meshkit.tx.context import Op
from meshpb.order.v1 import order_pb2 as pb
from order_svc.adapters.coordinator import GrpcMesh
from order_svc.adapters.ports import LocalTx, Release, TxState
from order_svc.cancelling import Canceller
from order_svc.orders.lifecycle import Actor, transition_in
from order_svc.orders.queries import read_order
from order_svc.orders.states import OrderState
from order_svc.orders.values import Channel
from order_svc.runtime import OrderRuntime
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


def pay_externally(conn: Conn, order_id: str, payment_id: str, now: int) -> None:
    """Unit: what PaymentSucceeded commits for an external payment (CREATED -> PAID)."""
    order = read_order(conn, order_id)
    assert order is not None
    transition_in(
        conn,
        order,
        OrderState.PAID,
        reason=f"paid externally ({payment_id})",
        actor=Actor("pay_svc"),
        now_ms=now,
        values={"payment_id": payment_id, "channel": int(Channel.EXTERNAL), "paid_at": now},
    )


class PaidInBetween(GrpcMesh):
    """The real cancel MSG, with an external payment committed after the deadline check read the order."""

    def __init__(self, runtime: OrderRuntime) -> None:
        settings = runtime.settings
        super().__init__(
            runtime.coordinator, settings.peers, settings.order, RunnerBarrier(runtime.store, SystemClock())
        )
        self._store = runtime.store
        self.gids: list[str] = []

    async def cancel(self, release: Release, local: LocalTx) -> None:
        self.gids.append(release.gid)
        now = now_ms(SystemClock())
        await self._store.run(
            lambda conn: pay_externally(conn, release.order_id, f"ext-{release.order_id}", now)
        )
        await super().cancel(release, local)


async def test_an_order_paid_between_the_deadline_check_and_the_cancel_stays_paid(
    start_order: Starter,
) -> None:
    async with start_order(pay_timeout_seconds=0.3, sweep_interval_seconds=3600) as order:
        order_id = await place(order)
        await asyncio.sleep(0.5)  # past the deadline; nobody swept it
        mesh = PaidInBetween(order.runtime)
        canceller = Canceller(order.runtime.service.repo, mesh, SystemClock())
        assert not await canceller.expire(order_id)
        stored = await order.runtime.service.repo.load(order_id)
        assert stored is not None
        assert stored.status is OrderState.PAID
        assert [to for _, to in await order.transitions(order_id)][-1] == OrderState.PAID.value
        (gid,) = mesh.gids
        view = await mesh.query(gid)
        assert view is not None
        assert view.state in (TxState.FAILED, TxState.ABORTING)
