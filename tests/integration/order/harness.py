"""An in-process order_svc (real runtime behind a real MeshServer) next to an in-process coordinator.

Stock, points and pay are not running here: their peer addresses point at ports nobody listens on, so
the cancel chain's release branches keep being retried by the coordinator while the order's own state
is asserted. Branch RPCs are called the way the coordinator calls them: with ``x-mesh-*`` metadata.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import pytest

from meshctl.stack.embedded import free_port
from meshkit.rpc.server import MeshServer
from meshkit.settings.config import DbSettings, NatsSettings
from meshkit.settings.peers import PeersSection
from meshkit.tx.context import Op, TxContext, TxMode
from meshpb.common.v1 import common_pb2
from meshpb.order.v1 import order_pb2 as pb
from meshpb.order.v1 import order_pb2_grpc
from order_svc.__main__ import SERVICE_NAME
from order_svc.config import OrderSection, OrderServerSettings, OrderSettings
from order_svc.orders.states import OrderState
from order_svc.orders.values import HistoryEntry
from order_svc.runtime import PROTECTED, OrderRuntime
from tests.integration.creds import ADMIN, AUTH, trusted_channel

NOWHERE = "127.0.0.1:1"


def order_settings(
    db_url: str,
    coordinator: str,
    *,
    nats_url: str | None = None,
    port: int | None = None,
    pay: str | None = None,
    **section: Any,
) -> OrderSettings:
    """Settings of a test order_svc on ``db_url`` (peers but the coordinator and ``pay`` unreachable)."""
    port = port or free_port()
    dead = f"127.0.0.1:{free_port()}"
    section.setdefault("sweep_interval_seconds", 3600.0)
    section.setdefault("tx_timeout_seconds", 5.0)
    section.setdefault("request_timeout_seconds", 2.0)
    return OrderSettings(
        server=OrderServerSettings(host="127.0.0.1", port=port, grace_seconds=0.5),
        db=DbSettings(url=db_url),
        nats=NatsSettings(url=nats_url or NOWHERE, enabled=nats_url is not None),
        peers=PeersSection(
            coordinator=coordinator, order=f"127.0.0.1:{port}", stock=dead, pay=pay or dead, points=dead
        ),
        order=OrderSection(**section),
        auth=AUTH,
        admin=ADMIN,
    )


@dataclass
class RunningOrder:
    """A started order_svc: runtime, server, and a stub on a channel to it."""

    runtime: OrderRuntime
    server: MeshServer
    channel: grpc.aio.Channel
    stub: Any  # OrderAsyncStub

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.server.port}"

    @classmethod
    async def start(cls, settings: OrderSettings) -> RunningOrder:
        """Start the runtime and its server."""
        runtime = await OrderRuntime.start(settings)
        server = MeshServer(settings, "order_svc", [runtime.register], [SERVICE_NAME], protected=PROTECTED)
        server.add_stop_hook(runtime.stop)
        await server.start()
        channel = trusted_channel(f"127.0.0.1:{server.port}")
        return cls(runtime, server, channel, order_pb2_grpc.OrderStub(channel))

    async def stop(self) -> None:
        """Stop the server (and with it the runtime)."""
        await self.channel.close()
        await self.server.stop(0.5)

    async def branch(
        self,
        method: str,
        request: Any,
        gid: str,
        op: Op,
        *,
        mode: TxMode = TxMode.TCC,
        branch_id: str = "order",
    ) -> common_pb2.BranchReply:
        """Call branch RPC ``method`` as the coordinator would."""
        metadata = TxContext(gid=gid, branch_id=branch_id, op=op, mode=mode).to_metadata()
        reply: common_pb2.BranchReply = await getattr(self.stub, method)(request, metadata=metadata)
        return reply

    async def history(self, order_id: str) -> list[HistoryEntry]:
        """The order's history rows."""
        return await self.runtime.service.repo.history(order_id)

    async def transitions(self, order_id: str) -> list[tuple[str | None, str]]:
        """The order's history as ``(from, to)`` pairs."""
        return [
            (h.from_status.value if h.from_status else None, h.to_status.value)
            for h in await self.history(order_id)
        ]


def new_id() -> str:
    """A fresh numeric order id (the shape order_svc's snowflakes have)."""
    return str(uuid.uuid4().int % 10**18)


def orders_branch(
    user_id: str, *merchants: tuple[str, Sequence[tuple[str, int, int]]], points: Sequence[int] = ()
) -> pb.CreateOrdersBranch:
    """A CreateOrdersBranch payload: per merchant ``(merchant_id, [(sku, quantity, unit_price)])``."""
    orders = []
    for index, (merchant, lines) in enumerate(merchants):
        items = [
            pb.OrderItem(sku=s, merchant_id=merchant, quantity=q, unit_price_cents=p) for s, q, p in lines
        ]
        orders.append(
            pb.OrderInfo(
                order_id=new_id(),
                user_id=user_id,
                merchant_id=merchant,
                total_cents=sum(q * p for _, q, p in lines),
                points_used=points[index] if index < len(points) else 0,
                items=items,
            )
        )
    return pb.CreateOrdersBranch(request_id=f"req-{uuid.uuid4().hex}", orders=orders)


async def expect_code(call: Any, code: grpc.StatusCode) -> str:
    """Await ``call``, which must fail with ``code``; returns the details."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() is code, info.value.details()
    return info.value.details() or ""


async def wait_for_status(
    order: RunningOrder, order_id: str, status: OrderState, within: float = 10.0, *, passive: bool = False
) -> None:
    """Poll until the order's stored status is ``status`` (through the repository, or GetOrder if passive)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    current: OrderState | None = None
    while loop.time() < deadline:
        if passive:
            info = await order.stub.GetOrder(pb.GetOrderRequest(order_id=order_id))
            current = OrderState[pb.OrderStatus.Name(info.status).removeprefix("ORDER_STATUS_")]
        else:
            found = await order.runtime.service.repo.load(order_id, with_items=False)
            current = found.status if found else None
        if current is status:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"order {order_id} is {current}, expected {status} within {within}s")
