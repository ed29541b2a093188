"""A REAL whole stack for the flow tests (coordinator + four services as processes, embedded Redis and
NATS) started with meshctl's launcher in a temporary directory on a free base port, and the helpers the
flows share: seeding SKUs and points, placing orders, waiting for states, reading every service.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshctl.audit.clients import MeshAddresses, MeshClients
from meshctl.stack import layout
from meshctl.stack.launcher import StackLauncher, free_base_port
from meshkit.runtime.clock import SystemClock
from meshpb.coordinator.v1 import coordinator_pb2 as cpb
from meshpb.order.v1 import order_pb2 as opb
from meshpb.pay.v1 import pay_pb2 as paypb
from meshpb.points.v1 import points_pb2 as ppb
from meshpb.stock.v1 import stock_pb2 as spb
from tests.integration.asserts import eventually
from tests.integration.creds import stack_auth

RPC_SECONDS = 20.0
FINAL = (cpb.STATUS_SUCCEEDED, cpb.STATUS_FAILED)

# Fast retries so the cancel chain and confirms finish quickly in tests.
COORDINATOR_ENV = {
    "MESH_COORDINATOR__RETRY_INTERVAL_SECONDS": "0.1",
    "MESH_COORDINATOR__MAX_RETRY_INTERVAL_SECONDS": "1",
    "MESH_COORDINATOR__SWEEP_INTERVAL_SECONDS": "0.5",
    "MESH_LOG__LEVEL": "INFO",
}


@dataclass
class Stack:
    """A running stack and typed clients of all its services."""

    launcher: StackLauncher
    clients: MeshClients

    @property
    def order(self) -> Any:
        """The Order stub."""
        return self.clients.order

    @property
    def stock(self) -> Any:
        """The Stock stub."""
        return self.clients.stock

    @property
    def points(self) -> Any:
        """The Points stub."""
        return self.clients.points

    @property
    def pay(self) -> Any:
        """The Pay stub."""
        return self.clients.pay

    @property
    def coordinator(self) -> Any:
        """The Coordinator stub."""
        return self.clients.coordinator

    def log(self, name: str) -> str:
        """The log of one process (for failure messages)."""
        return layout.log_path(self.launcher.data_dir, name).read_text(errors="replace")

    # ------------------------------------------------------------------ seeding

    async def sku(self, merchant: str, price: int, quantity: int, *, prefix: str = "sku") -> str:
        """A fresh SKU of ``merchant`` with ``quantity`` units at ``price`` cents."""
        sku = f"{prefix}-{uuid.uuid4().hex[:10]}"
        await self.stock.PutSku(
            spb.PutSkuRequest(
                sku=sku,
                merchant_id=merchant,
                price_cents=price,
                quantity=quantity,
                request_id=uuid.uuid4().hex,
            ),
            timeout=RPC_SECONDS,
        )
        return sku

    async def user(self, points: int = 0) -> str:
        """A fresh user, granted ``points``."""
        user = f"user-{uuid.uuid4().hex[:10]}"
        if points:
            await self.points.Grant(
                ppb.GrantRequest(user_id=user, amount=points, out_trade_no=f"grant-{user}"),
                timeout=RPC_SECONDS,
            )
        return user

    # ------------------------------------------------------------------ reading

    async def get_order(self, order_id: str) -> opb.OrderInfo:
        """GetOrder."""
        info: opb.OrderInfo = await self.order.GetOrder(
            opb.GetOrderRequest(order_id=order_id), timeout=RPC_SECONDS
        )
        return info

    async def listed(self, user_id: str) -> dict[str, opb.OrderInfo]:
        """The user's orders by id (ListOrders: no passive close)."""
        page = await self.order.ListOrders(opb.ListOrdersRequest(user_id=user_id), timeout=RPC_SECONDS)
        return {o.order_id: o for o in page.orders}

    async def stock_of(self, sku: str) -> tuple[int, int, int]:
        """``(available, reserved, sold)``."""
        level = await self.stock.GetStock(spb.GetStockRequest(sku=sku), timeout=RPC_SECONDS)
        return level.available, level.reserved, level.sold

    async def account(self, user_id: str) -> tuple[int, int]:
        """``(balance, frozen)``."""
        acc = await self.points.GetAccount(ppb.GetAccountRequest(user_id=user_id), timeout=RPC_SECONDS)
        return acc.balance, acc.frozen

    async def payment(self, payment_id: str) -> paypb.Payment:
        """GetPayment."""
        found: paypb.Payment = await self.pay.GetPayment(
            paypb.GetPaymentRequest(payment_id=payment_id), timeout=RPC_SECONDS
        )
        return found

    async def tx(self, gid: str) -> cpb.Transaction:
        """The coordinator's view of ``gid``."""
        reply = await self.coordinator.Query(cpb.QueryRequest(gid=gid), timeout=RPC_SECONDS)
        tx: cpb.Transaction = reply.transaction
        return tx

    async def final_tx(self, gid: str, within: float = 20.0) -> cpb.Transaction:
        """The transaction once it is final."""
        return await eventually(
            lambda: self.tx(gid), lambda tx: tx.status in FINAL, within, f"tx {gid} final"
        )

    async def transactions(self, prefix: str, mode: int = cpb.MODE_MSG) -> list[cpb.Transaction]:
        """Every transaction of ``mode`` whose gid starts with ``prefix`` (Admin List, with the token)."""
        found: list[cpb.Transaction] = []
        cursor = ""
        while True:
            page = await self.clients.admin.List(
                cpb.ListRequest(mode=mode, cursor=cursor, limit=500),  # type: ignore[arg-type]
                metadata=self.clients.admin_metadata,
                timeout=RPC_SECONDS,
            )
            found += [tx for tx in page.transactions if tx.gid.startswith(prefix)]
            cursor = page.next_cursor
            if not cursor:
                return found

    # ------------------------------------------------------------------ acting

    async def place(
        self,
        user_id: str,
        items: Sequence[tuple[str, str, int, int]],
        points: int = 0,
        request_id: str | None = None,
    ) -> opb.PlaceOrderResponse:
        """PlaceOrder of ``(sku, merchant, quantity, unit price)`` items."""
        request = opb.PlaceOrderRequest(
            request_id=request_id or f"req-{uuid.uuid4().hex}",
            user_id=user_id,
            items=[
                opb.OrderItem(sku=s, merchant_id=m, quantity=q, unit_price_cents=p) for s, m, q, p in items
            ],
            points_to_use=points,
        )
        response: opb.PlaceOrderResponse = await self.order.PlaceOrder(request, timeout=RPC_SECONDS)
        return response

    async def pay_order(self, order_id: str, channel: int) -> opb.PayResponse:
        """Pay."""
        response: opb.PayResponse = await self.order.Pay(
            opb.PayRequest(order_id=order_id, channel=channel),  # type: ignore[arg-type]
            timeout=RPC_SECONDS,
        )
        return response

    async def cancel(self, order_id: str, reason: str = "test") -> opb.OrderInfo:
        """Cancel."""
        info: opb.OrderInfo = await self.order.Cancel(
            opb.CancelRequest(order_id=order_id, reason=reason), timeout=RPC_SECONDS
        )
        return info

    async def order_status(
        self, order_id: str, status: int, within: float = 20.0, *, user_id: str | None = None
    ) -> opb.OrderInfo:
        """Wait for ``status`` (read through ListOrders when ``user_id`` is given: no passive close)."""

        async def read() -> opb.OrderInfo:
            if user_id is not None:
                return (await self.listed(user_id))[order_id]
            return await self.get_order(order_id)

        name = opb.OrderStatus.Name(status)  # type: ignore[arg-type]
        return await eventually(read, lambda o: o.status == status, within, f"order {order_id} {name}")


@asynccontextmanager
async def whole_stack(data_dir: Path, order_env: Mapping[str, str] | None = None) -> AsyncIterator[Stack]:
    """Start the whole mesh in ``data_dir``; ``order_env`` adds MESH_* settings of order_svc."""
    overrides = {
        "coordinator": dict(COORDINATOR_ENV),
        "order_svc": {"MESH_LOG__LEVEL": "INFO", **(order_env or {})},
    }
    launcher = StackLauncher(data_dir, free_base_port(), SystemClock(), env_overrides=overrides)
    await launcher.start(detached=True)
    clients = MeshClients(
        MeshAddresses.for_base_port(launcher.base_port),
        (launcher.data_dir / "admin.token").read_text().strip(),
        stack_auth(launcher.data_dir),  # the tests play operator and service: both credentials
    )
    try:
        yield Stack(launcher, clients)
    finally:
        await clients.close()
        await launcher.stop()
