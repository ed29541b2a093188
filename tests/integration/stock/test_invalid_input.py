"""Bad input on every public Stock RPC answers INVALID_ARGUMENT naming the field, and changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from sqlalchemy import func, select

from meshkit.barrier import tx_barrier
from meshkit.tx.context import Op
from meshpb.common.v1 import common_pb2
from meshpb.stock.v1 import stock_pb2
from stock_svc.stock.tables import stock_log
from tests.integration.stock.harness import (
    RunningStock,
    metadata,
    release_request,
    reserve_request,
    rpc_error,
)

LONG = "x" * 65
TOO_MANY = [(f"sku-{i}", 1) for i in range(101)]

Case = tuple[str, Callable[[RunningStock, str], Awaitable[Any]], str]


def put(
    sku: str = "apple", merchant: str = "m-1", price: int = 100, quantity: int = 1, request_id: str = "r-1"
) -> Any:
    request = stock_pb2.PutSkuRequest(
        sku=sku, merchant_id=merchant, price_cents=price, quantity=quantity, request_id=request_id
    )
    return lambda s, _gid: s.stub.PutSku(request)


def branch(method: str, items: Any, order_ids: Any = ("o-1",), op: Op | None = None) -> Any:
    ops = {"TryReserve": Op.TRY, "ConfirmReserve": Op.CONFIRM, "CancelReserve": Op.CANCEL}
    return lambda s, gid: getattr(s.stub, method)(
        reserve_request(items, order_ids), metadata=metadata(gid, op or ops[method])
    )


def release(items: Any, order_id: str = "o-1", op: Op = Op.ACTION) -> Any:
    return lambda s, gid: s.stub.ReleaseStock(release_request(items, order_id), metadata=metadata(gid, op))


CASES: list[Case] = [
    ("put empty sku", put(sku=""), "sku"),
    ("put long sku", put(sku=LONG), "sku"),
    ("put sku with a space", put(sku="app le"), "sku"),
    ("put empty merchant", put(merchant=""), "merchant_id"),
    ("put negative price", put(price=-1), "price_cents"),
    ("put negative quantity", put(quantity=-1), "quantity"),
    ("put too many units", put(quantity=10_001), "quantity"),
    ("put without a request id", put(request_id=""), "request_id"),
    ("put long request id", put(request_id=LONG), "request_id"),
    ("get empty sku", lambda s, _g: s.stub.GetStock(stock_pb2.GetStockRequest(sku="")), "sku"),
    (
        "get skus with an empty one",
        lambda s, _g: s.stub.GetSkus(stock_pb2.GetSkusRequest(skus=["a", ""])),
        "skus[1]",
    ),
    (
        "get too many skus",
        lambda s, _g: s.stub.GetSkus(stock_pb2.GetSkusRequest(skus=[f"s{i}" for i in range(101)])),
        "skus",
    ),
    ("try no items", branch("TryReserve", []), "items"),
    ("try empty sku", branch("TryReserve", [("", 1)]), "items[0].sku"),
    ("try long sku", branch("TryReserve", [("apple", 1), (LONG, 1)]), "items[1].sku"),
    ("try zero quantity", branch("TryReserve", [("apple", 0)]), "items[0].quantity"),
    ("try negative quantity", branch("TryReserve", [("apple", -3)]), "items[0].quantity"),
    ("try too many units", branch("TryReserve", [("apple", 10_001)]), "items[0].quantity"),
    ("try duplicate sku", branch("TryReserve", [("apple", 1), ("pear", 1), ("apple", 2)]), "items[2].sku"),
    ("try too many items", branch("TryReserve", TOO_MANY), "items"),
    ("try empty order id", branch("TryReserve", [("apple", 1)], order_ids=["o-1", ""]), "order_ids[1]"),
    ("try called as cancel", branch("TryReserve", [("apple", 1)], op=Op.CANCEL), "x-mesh-op"),
    (
        "try without context",
        lambda s, _g: s.stub.TryReserve(reserve_request([("apple", 1)])),
        "x-mesh-gid",
    ),
    (
        "try with a malformed op",
        lambda s, g: s.stub.TryReserve(
            reserve_request([("apple", 1)]),
            metadata=[(k, "bogus" if k == "x-mesh-op" else v) for k, v in metadata(g, Op.TRY)],
        ),
        "x-mesh-op",
    ),
    ("confirm zero quantity", branch("ConfirmReserve", [("apple", 0)]), "items[0].quantity"),
    ("confirm duplicate sku", branch("ConfirmReserve", [("apple", 1), ("apple", 1)]), "items[1].sku"),
    ("confirm called as try", branch("ConfirmReserve", [("apple", 1)], op=Op.TRY), "x-mesh-op"),
    ("cancel no items", branch("CancelReserve", []), "items"),
    ("cancel too many units", branch("CancelReserve", [("apple", 10_001)]), "items[0].quantity"),
    ("release empty order id", release([("apple", 1)], order_id=""), "order_id"),
    ("release negative quantity", release([("apple", -5)]), "items[0].quantity"),
    ("release called as try", release([("apple", 1)], op=Op.TRY), "x-mesh-op"),
]


async def state(stock: RunningStock) -> tuple[Any, ...]:
    """Everything a call could have changed: audit figures, barrier rows and keys, log rows."""
    audit = await stock.audit()
    figures = sorted(
        (a.sku, a.initial, a.redis_available, a.redis_reserved, a.db_available, a.db_sold, a.redis_loaded)
        for a in audit.values()
    )
    async with stock.runtime.db.connect() as conn:
        barrier_rows = (await conn.execute(select(func.count()).select_from(tx_barrier))).scalar_one()
        log_rows = (await conn.execute(select(func.count()).select_from(stock_log))).scalar_one()
    barrier_keys = [k async for k in stock.redis.scan_iter(match="mesh:barrier:{invalid-*")]
    return figures, barrier_rows, log_rows, barrier_keys


async def test_invalid_input_answers_invalid_argument_naming_the_field_without_state_change(
    stock: RunningStock,
) -> None:
    await stock.put("apple", 10)
    await stock.put("pear", 10)
    before = await state(stock)

    for i, (name, call, field) in enumerate(CASES):
        error = await rpc_error(call(stock, f"invalid-{i}"))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{name}: {error.code()} {error.details()}"
        assert (error.details() or "").startswith(f"{field}: "), f"{name}: {error.details()!r}"

    assert await state(stock) == before
    assert await stock.level("apple") == (10, 0, 0)
    await stock.assert_invariant()


async def test_audit_request_takes_no_input(stock: RunningStock) -> None:
    reply = await stock.stub.Audit(common_pb2.AuditRequest())
    assert list(reply.skus) == []
