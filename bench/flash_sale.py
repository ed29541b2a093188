"""A flash-sale burst on a running whole stack: N FlashBuy attempts on a sale of U units.

The sale is put up as an operator does (``PutSku`` then ``PutFlashSale`` with the stack's admin token):
a SKU with exactly U units in stock_svc and a sale of U units, open now, no per-user limit. Every attempt
is a different user and request. A FlashBuy answers a ticket (a unit taken) or FAILED_PRECONDITION
"sold out"; both are answers. The burst measures answers per second and the CPU of every process; then
the bench waits until no ticket is pending (the workers placed the orders) and reads what was sold: the
tickets, the sale's succeeded tickets and stock_svc's sold units must all be exactly U.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import grpc
import grpc.aio
from google.protobuf.timestamp_pb2 import Timestamp

from bench.common import CpuMeter, Phase, cpu_used, fixed_count
from meshctl.audit.clients import MeshClients
from meshpb.order.v1 import order_pb2 as opb
from meshpb.stock.v1 import stock_pb2 as spb

RPC_SECONDS = 30.0
DRAIN_SECONDS = 180.0
POLL_SECONDS = 0.25
SALE_PRICE_CENTS = 500
HOUR_MS = 3_600_000
SOLD_OUT = "sold out"


@dataclass(frozen=True, slots=True)
class FlashOutcome:
    """What the burst measured and what was sold in the end."""

    units: int
    burst: Phase
    tickets: int
    sold_out: int
    drain_seconds: float
    succeeded: int
    failed: int
    pending: int
    stock_sold: int

    @property
    def exactly_sold(self) -> bool:
        """Every count of what was sold is exactly the sale's units (no oversell, no undersell)."""
        return self.tickets == self.succeeded == self.stock_sold == self.units and not self.pending

    @property
    def sold(self) -> int:
        """The units stock_svc sold for the sale."""
        return self.stock_sold


def _timestamp(ms: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMilliseconds(ms)
    return ts


async def put_sale(clients: MeshClients, run_id: str, units: int) -> opb.FlashSale:
    """A SKU with ``units`` units and a flash sale of all of them, open from a minute ago for an hour."""
    merchant, sku = f"m-flash-{run_id}", f"flash-{run_id}"
    await clients.stock.PutSku(
        spb.PutSkuRequest(
            sku=sku, merchant_id=merchant, price_cents=900, quantity=units, request_id=f"flash-{run_id}"
        ),
        timeout=RPC_SECONDS,
    )
    now = int(time.time() * 1000)
    sale: opb.FlashSale = await clients.order.PutFlashSale(
        opb.PutFlashSaleRequest(
            sale_id=f"sale-{run_id}",
            sku=sku,
            merchant_id=merchant,
            price_cents=SALE_PRICE_CENTS,
            quantity=units,
            starts_at=_timestamp(now - 60_000),
            ends_at=_timestamp(now + HOUR_MS),
        ),
        timeout=RPC_SECONDS,
    )
    return sale


async def flash_burst(
    clients: MeshClients,
    meter: CpuMeter,
    *,
    backend: str,
    run_id: str,
    attempts: int,
    units: int,
    concurrency: int,
) -> FlashOutcome:
    """Put up the sale, run the burst, wait for the orders, read what was sold."""
    sale = await put_sale(clients, run_id, units)
    answers = {"ticket": 0, SOLD_OUT: 0}

    async def buy(n: int) -> None:
        request = opb.FlashBuyRequest(
            request_id=f"fb-{run_id}-{n}",
            user_id=f"fu-{run_id}-{n}",
            sale_id=sale.sale_id,
            sku=sale.sku,
            quantity=1,
        )
        try:
            await clients.order.FlashBuy(request, timeout=RPC_SECONDS)
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.FAILED_PRECONDITION and SOLD_OUT in (exc.details() or ""):
                answers[SOLD_OUT] += 1
                return
            raise
        answers["ticket"] += 1

    before = meter.read()
    load = await fixed_count(buy, total=attempts, concurrency=concurrency, label=f"{backend} FlashBuy")
    burst = Phase(
        "FlashBuy burst", f"{attempts:,} on {units:,}", backend, load, cpu_used(before, meter.read())
    )
    started = time.monotonic()
    view = await _settled(clients, sale.sale_id)
    drained = time.monotonic() - started
    level = await clients.stock.GetStock(spb.GetStockRequest(sku=sale.sku), timeout=RPC_SECONDS)
    return FlashOutcome(
        units,
        burst,
        answers["ticket"],
        answers[SOLD_OUT],
        drained,
        view.tickets_succeeded,
        view.tickets_failed,
        view.tickets_pending,
        level.sold,
    )


async def _settled(clients: MeshClients, sale_id: str) -> opb.FlashSale:
    """The sale once no ticket is pending (or after :data:`DRAIN_SECONDS`, pending ones included)."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        view: opb.FlashSale = await clients.order.GetFlashSale(
            opb.GetFlashSaleRequest(sale_id=sale_id), timeout=RPC_SECONDS
        )
        if not view.tickets_pending or time.monotonic() > deadline:
            return view
        await asyncio.sleep(POLL_SECONDS)
