"""An in-process stock_svc for tests: the real runtime behind a real MeshServer, plus helpers.

Branch calls carry the metadata the coordinator sends (:func:`meshkit.tx.branchcall.branch_metadata`).
Every test gets its own database (``db_url``) and its own Redis namespace, so its SKU keys are its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from meshkit.rpc.server import MeshServer
from meshkit.runtime.clock import Clock
from meshkit.settings.config import DbSettings, RedisSettings
from meshkit.tx.branchcall import branch_metadata
from meshkit.tx.context import Op, TxContext, TxMode
from meshpb.common.v1 import common_pb2
from meshpb.stock.v1 import stock_pb2, stock_pb2_grpc
from stock_svc.config import StockSection, StockServerSettings, StockSettings
from stock_svc.runtime import PROTECTED, SERVICE_NAME, StockRuntime
from tests.integration.creds import ADMIN, AUTH, trusted_channel

BRANCH = "stock"
MERCHANT = "m-1"
PRICE = 250

Items = Sequence[tuple[str, int]]

# RPC -> the op the coordinator calls it with.
OPS = {
    "TryReserve": Op.TRY,
    "ConfirmReserve": Op.CONFIRM,
    "CancelReserve": Op.CANCEL,
    "ReleaseStock": Op.ACTION,
}


def stock_settings(
    db_url: str, redis_url: str, namespace: str | None = None, **section: Any
) -> StockSettings:
    """Settings of a test stock_svc on a free port."""
    return StockSettings(
        server=StockServerSettings(host="127.0.0.1", port=0, grace_seconds=0.5),
        db=DbSettings(url=db_url),
        redis=RedisSettings(url=redis_url),
        stock=StockSection(redis_namespace=namespace or f"t{uuid.uuid4().hex[:12]}", **section),
        auth=AUTH,
        admin=ADMIN,
    )


def reserve_request(items: Items, order_ids: Sequence[str] = ()) -> stock_pb2.ReserveRequest:
    """A ReserveRequest of ``items``."""
    return stock_pb2.ReserveRequest(
        items=[common_pb2.SkuQuantity(sku=s, quantity=q) for s, q in items], order_ids=list(order_ids)
    )


def release_request(items: Items, order_id: str = "order-1") -> stock_pb2.ReleaseStockRequest:
    """A ReleaseStockRequest of ``items``."""
    return stock_pb2.ReleaseStockRequest(
        items=[common_pb2.SkuQuantity(sku=s, quantity=q) for s, q in items], order_id=order_id
    )


def metadata(gid: str, op: Op, branch: str = BRANCH) -> list[tuple[str, str]]:
    """The metadata of a branch call, as the coordinator sends it."""
    mode = TxMode.MSG if op is Op.ACTION else TxMode.TCC
    return branch_metadata(TxContext(gid=gid, branch_id=branch, op=op, mode=mode))


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The error a call ends with (fails the test when it succeeds)."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc
    pytest.fail("call succeeded, an error was expected")


@dataclass
class RunningStock:
    """A started stock_svc: runtime, server, a stub, and a Redis client on the same server."""

    runtime: StockRuntime
    server: MeshServer
    channel: grpc.aio.Channel
    stub: Any  # StockAsyncStub
    redis: aioredis.Redis
    registry: CollectorRegistry

    @classmethod
    async def start(cls, settings: StockSettings, *, clock: Clock | None = None) -> RunningStock:
        """Start the runtime (on ``clock``, default the system's) and its server."""
        registry = CollectorRegistry()
        runtime = await StockRuntime.start(settings, clock=clock, registry=registry)
        server = MeshServer(
            settings, "stock_svc", [runtime.register], [SERVICE_NAME], protected=PROTECTED, registry=registry
        )
        server.add_stop_hook(runtime.stop)
        await server.start()
        channel = trusted_channel(f"127.0.0.1:{server.port}")
        redis = aioredis.Redis.from_url(settings.redis.url)
        return cls(runtime, server, channel, stock_pb2_grpc.StockStub(channel), redis, registry)

    async def stop(self) -> None:
        """Stop the server (and with it the runtime)."""
        await self.channel.close()
        await self.redis.aclose()
        await self.server.stop(0.5)

    @property
    def namespace(self) -> str:
        """The Redis namespace of this service's stock keys."""
        return self.runtime.settings.stock.redis_namespace

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.server.port}"

    def target(self, method: str) -> str:
        """The branch target of ``method``."""
        return f"{self.address}/{SERVICE_NAME}/{method}"

    # ------------------------------------------------------------------ calls

    async def put(
        self,
        sku: str,
        quantity: int,
        merchant: str = MERCHANT,
        price: int = PRICE,
        request_id: str | None = None,
    ) -> stock_pb2.StockLevel:
        """PutSku (a fresh request id unless one is given, e.g. to retry)."""
        request = stock_pb2.PutSkuRequest(
            sku=sku,
            merchant_id=merchant,
            price_cents=price,
            quantity=quantity,
            request_id=request_id or uuid.uuid4().hex,
        )
        level: stock_pb2.StockLevel = await self.stub.PutSku(request)
        return level

    async def branch(
        self,
        method: str,
        gid: str,
        items: Items,
        order_ids: Sequence[str] = ("order-1",),
        branch: str = BRANCH,
    ) -> str:
        """One branch call of ``method`` (TryReserve / ConfirmReserve / CancelReserve); its note."""
        call = getattr(self.stub, method)
        reply = await call(reserve_request(items, order_ids), metadata=metadata(gid, OPS[method], branch))
        return str(reply.note)

    async def release(self, gid: str, items: Items, order_id: str = "order-1", branch: str = BRANCH) -> str:
        """ReleaseStock as the MSG branch of the cancel chain; its note."""
        reply = await self.stub.ReleaseStock(
            release_request(items, order_id), metadata=metadata(gid, Op.ACTION, branch)
        )
        return str(reply.note)

    async def level(self, sku: str) -> tuple[int, int, int]:
        """``(available, reserved, sold)`` as GetStock shows them."""
        level = await self.stub.GetStock(stock_pb2.GetStockRequest(sku=sku))
        return int(level.available), int(level.reserved), int(level.sold)

    async def audit(self) -> dict[str, stock_pb2.SkuAudit]:
        """Audit, by SKU."""
        reply = await self.stub.Audit(common_pb2.AuditRequest())
        return {a.sku: a for a in reply.skus}

    async def assert_invariant(self) -> dict[str, stock_pb2.SkuAudit]:
        """DESIGN.md section 8 for every SKU: initial = available + reserved + sold; DB agrees with Redis."""
        audit = await self.audit()
        for sku, a in audit.items():
            assert a.db_available + a.db_sold == a.initial, f"{sku}: database does not add up: {a}"
            if a.redis_loaded:
                assert a.redis_available + a.redis_reserved + a.db_sold == a.initial, f"{sku}: {a}"
                assert a.db_available == a.redis_available + a.redis_reserved, f"{sku}: {a}"
            assert a.redis_available >= 0 and a.redis_reserved >= 0 and a.db_sold >= 0, f"{sku}: {a}"
        return audit

    # ------------------------------------------------------------------ Redis

    async def drop_hot_copies(self) -> int:
        """Delete every key of this service's namespace (as a Redis restart without data would); the
        number of stock hashes among them."""
        keys = [key async for key in self.redis.scan_iter(match=f"{{{self.namespace}}}:*")]
        if keys:
            await self.redis.delete(*keys)
        return sum(1 for key in keys if key.startswith(f"{{{self.namespace}}}:sku:".encode()))
