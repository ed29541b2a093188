"""Helpers of the flash sale tests: order_svc nodes wired for the flash sale, sales, buys, waiting.

A node is the real order_svc runtime behind a real MeshServer (:class:`RunningOrder`) with Redis and NATS
on, its flash names in the test's own namespace, and fast redeliveries.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from typing import Any

import grpc
import grpc.aio
import nats
from google.protobuf.timestamp_pb2 import Timestamp

from meshctl.stack.embedded import free_port
from meshkit.settings.config import DbSettings, NatsSettings, RedisSettings
from meshkit.settings.peers import PeersSection
from meshpb.order.v1 import order_pb2 as pb
from order_svc.config import OrderSection, OrderServerSettings, OrderSettings
from order_svc.flash.queue import QueueNames, job_payload
from order_svc.flash.rules import FlashTicket
from tests.integration.asserts import eventually, rpc_error
from tests.integration.creds import ADMIN, AUTH
from tests.integration.order.harness import RunningOrder

RPC_SECONDS = 20.0
HOUR_MS = 3_600_000

FAST_FLASH: dict[str, Any] = {
    "sweep_interval_seconds": 3600.0,
    "tx_timeout_seconds": 5.0,
    "request_timeout_seconds": 2.0,
    "flash_ack_wait_seconds": 2.0,
    "flash_retry_seconds": 0.2,
    "flash_max_retry_seconds": 1.0,
    "flash_sweep_interval_seconds": 1.0,
    "flash_requeue_after_seconds": 1.0,
}


def new_namespace() -> str:
    """A flash namespace of its own (Redis keys, NATS stream and subjects)."""
    return f"t{uuid.uuid4().hex[:12]}"


def node_settings(
    db_url: str,
    *,
    coordinator: str,
    stock: str,
    redis_url: str,
    nats_url: str,
    namespace: str,
    worker_id: int = 1,
    **section: Any,
) -> OrderSettings:
    """Settings of an order_svc node on ``db_url`` (pay and points unreachable: flash orders use neither)."""
    port = free_port()
    dead = f"127.0.0.1:{free_port()}"
    return OrderSettings(
        server=OrderServerSettings(host="127.0.0.1", port=port, grace_seconds=0.5, worker_id=worker_id),
        db=DbSettings(url=db_url),
        redis=RedisSettings(url=redis_url),
        nats=NatsSettings(url=nats_url, enabled=True),
        peers=PeersSection(
            coordinator=coordinator, order=f"127.0.0.1:{port}", stock=stock, pay=dead, points=dead
        ),
        order=OrderSection(**{**FAST_FLASH, "flash_namespace": namespace, **section}),
        auth=AUTH,
        admin=ADMIN,
    )


async def start_node(settings: OrderSettings, *, wait_queue: bool = True) -> RunningOrder:
    """Start a node; by default wait until its work queue is connected."""
    node = await RunningOrder.start(settings)
    if wait_queue:
        await eventually(
            lambda: asyncio.sleep(0, node.runtime.flash_queue.available), bool, 15, "flash work queue"
        )
    return node


def timestamp(ms: int) -> Timestamp:
    """A protobuf Timestamp."""
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


def now_ms() -> int:
    """Wall time in ms."""
    return int(time.time() * 1000)


def sale_request(
    sku: str,
    merchant: str,
    *,
    price: int = 100,
    quantity: int = 10,
    per_user_limit: int = 0,
    starts_at_ms: int | None = None,
    ends_at_ms: int | None = None,
    sale_id: str | None = None,
) -> pb.PutFlashSaleRequest:
    """A PutFlashSale request, open from a minute ago for an hour by default."""
    start = now_ms() - 60_000 if starts_at_ms is None else starts_at_ms
    end = start + HOUR_MS if ends_at_ms is None else ends_at_ms
    return pb.PutFlashSaleRequest(
        sale_id=sale_id or f"sale-{uuid.uuid4().hex[:10]}",
        sku=sku,
        merchant_id=merchant,
        price_cents=price,
        quantity=quantity,
        starts_at=timestamp(start),
        ends_at=timestamp(end),
        per_user_limit=per_user_limit,
    )


def buy_request(
    user_id: str, sale: pb.FlashSale, *, request_id: str | None = None, quantity: int = 1
) -> pb.FlashBuyRequest:
    """A FlashBuy request for ``sale``."""
    return pb.FlashBuyRequest(
        request_id=request_id or f"req-{uuid.uuid4().hex}",
        user_id=user_id,
        sale_id=sale.sale_id,
        sku=sale.sku,
        quantity=quantity,
    )


async def buy(stub: Any, user_id: str, sale: pb.FlashSale, **kwargs: Any) -> pb.FlashBuyResponse:
    """FlashBuy."""
    response: pb.FlashBuyResponse = await stub.FlashBuy(
        buy_request(user_id, sale, **kwargs), timeout=RPC_SECONDS
    )
    return response


async def expect(call: Awaitable[Any], code: grpc.StatusCode, starts: str = "") -> str:
    """``call`` fails with ``code`` and details starting with ``starts``; returns the details."""
    error = await rpc_error(call)
    details = error.details() or ""
    assert error.code() is code, f"{error.code()}: {details}"
    assert details.startswith(starts), details
    return details


async def final_result(stub: Any, ticket: str, within: float = 30.0) -> pb.FlashResult:
    """GetFlashResult once the ticket is final."""

    async def read() -> pb.FlashResult:
        result: pb.FlashResult = await stub.GetFlashResult(
            pb.GetFlashResultRequest(ticket=ticket),
            timeout=RPC_SECONDS,
            wait_for_ready=True,  # the stub's channel may still be backing off after a restarted order_svc
        )
        return result

    return await eventually(
        read, lambda r: r.state != pb.FLASH_STATE_PENDING, within, f"ticket {ticket} final"
    )


async def get_sale(stub: Any, sale_id: str) -> pb.FlashSale:
    """GetFlashSale."""
    sale: pb.FlashSale = await stub.GetFlashSale(pb.GetFlashSaleRequest(sale_id=sale_id), timeout=RPC_SECONDS)
    return sale


async def ticket_row(node: RunningOrder, ticket: str) -> FlashTicket:
    """The stored ticket."""
    found = await node.runtime.flash.repo.get_ticket(ticket)
    assert found is not None, ticket
    return found


class JobQueue:
    """A NATS client on a flash namespace's work queue: inspect the consumer, publish raw jobs."""

    def __init__(self, client: nats.aio.client.Client, namespace: str) -> None:
        self._client = client
        self._js = client.jetstream()
        self.names = QueueNames(namespace)

    @classmethod
    async def connect(cls, url: str, namespace: str) -> JobQueue:
        """Connect to ``url``."""
        return cls(await nats.connect(url), namespace)

    async def publish(self, ticket: str) -> None:
        """Queue a job for ``ticket`` again (a duplicate: another message id than FlashBuy's)."""
        headers = {"Nats-Msg-Id": f"dup-{uuid.uuid4().hex}"}
        await self._js.publish(self.names.job_subject, job_payload(ticket), headers=headers)

    async def drained(self, within: float = 20.0) -> None:
        """Wait until every job was taken and acked."""

        async def read() -> tuple[int, int]:
            info = await self._js.consumer_info(self.names.stream, self.names.durable)
            return int(info.num_pending or 0), int(info.num_ack_pending or 0)

        await eventually(read, lambda counts: counts == (0, 0), within, "flash work queue drained")

    async def close(self) -> None:
        """Disconnect."""
        await self._client.close()
