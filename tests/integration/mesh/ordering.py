"""Placing orders in tests and finding out, for sure, how each request ended.

A PlaceOrder call either answers order ids (placed), is refused for a business reason (``ABORTED``:
rolled back), or fails in a way that says nothing about the outcome (a timeout, a service down). The
last kind is settled by asking again with the same ``request_id``: PlaceOrder is idempotent on it, so
the retry answers how that very request ended.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

import grpc
import grpc.aio

from meshctl.audit.checks import all_pass
from meshctl.audit.clients import MeshClients
from meshctl.audit.gather import AuditOutcome, audit_until_settled
from meshkit.runtime.clock import SystemClock
from meshpb.order.v1 import order_pb2 as opb
from meshpb.stock.v1 import stock_pb2 as spb

# Long enough that a call is never cut short by the client (which would cancel the server's handler).
CALL_SECONDS = 60.0
REFUSED = grpc.StatusCode.ABORTED


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one PlaceOrder request ended (or, with ``unknown``, what the last attempt said)."""

    request_id: str
    order_ids: tuple[str, ...] = ()
    gid: str = ""
    refused: str = ""  # details of a business refusal (rolled back)
    unknown: str = ""  # last inconclusive error
    inconclusive: int = 0  # inconclusive answers (timeouts, a service down) before this one

    @property
    def placed(self) -> bool:
        """The request placed its orders."""
        return bool(self.order_ids)


async def place_once(clients: MeshClients, request: opb.PlaceOrderRequest) -> Outcome:
    """One PlaceOrder call, classified."""
    try:
        reply = await clients.order.PlaceOrder(request, timeout=CALL_SECONDS)
    except grpc.aio.AioRpcError as exc:
        text = f"{exc.code().name}: {exc.details()}"
        if exc.code() == REFUSED:
            return Outcome(request.request_id, refused=text)
        return Outcome(request.request_id, unknown=text)
    return Outcome(request.request_id, tuple(reply.order_ids), reply.gid)


async def settle(clients: MeshClients, request: opb.PlaceOrderRequest, within: float = 180.0) -> Outcome:
    """Ask again (same request_id) until the outcome is known or ``within`` seconds passed."""
    deadline = time.monotonic() + within
    inconclusive = 0
    while True:
        outcome = await place_once(clients, request)
        if not outcome.unknown or time.monotonic() >= deadline:
            return replace(outcome, inconclusive=inconclusive)
        inconclusive += 1
        await asyncio.sleep(0.5)


async def wait_until(check: Callable[[], bool], within: float) -> bool:
    """Poll ``check`` until it holds (True) or ``within`` seconds passed (False)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def put_sku(clients: MeshClients, sku: str, merchant: str, price: int, quantity: int) -> None:
    """Create (or restock) a SKU."""
    await clients.stock.PutSku(
        spb.PutSkuRequest(
            sku=sku, merchant_id=merchant, price_cents=price, quantity=quantity, request_id=uuid.uuid4().hex
        ),
        timeout=CALL_SECONDS,
    )


async def stock_of(clients: MeshClients, sku: str) -> spb.StockLevel:
    """GetStock."""
    return await clients.stock.GetStock(spb.GetStockRequest(sku=sku), timeout=CALL_SECONDS)


async def passing_audit(clients: MeshClients, within: float = 120.0) -> AuditOutcome:
    """The audit, re-gathered until every invariant passes (or ``within`` seconds)."""
    return await audit_until_settled(clients, SystemClock(), wait_seconds=within)


def audit_failures(outcome: AuditOutcome) -> str:
    """What did not pass, for an assertion message ('' when everything passed)."""
    if all_pass(outcome.results):
        return ""
    return "\n".join(
        f"{r.key} {r.verdict.value}: {list(r.violations[:5])} {r.note}"
        for r in outcome.results
        if r.verdict.value != "PASS"
    )
