"""Issue 9 item 6: stock moves only with mesh credentials, restocks only with the admin token.

A caller without the mesh secret (no header, a forged or stale signature, a signature for another gid
or method, two headers) gets UNAUTHENTICATED and the stock does not move; the coordinator's signed call
works. PutSku without the admin token is refused the same way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import grpc
import pytest

from meshkit.tx.context import Op
from meshpb.stock.v1 import stock_pb2, stock_pb2_grpc
from stock_svc.runtime import SERVICE_NAME
from tests.integration.creds import MESH_SECRET, auth_item, plain_channel
from tests.integration.stock.harness import RunningStock, metadata, reserve_request, rpc_error

TRY = f"/{SERVICE_NAME}/TryReserve"
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


def forged(gid: str) -> Sequence[tuple[str, str]]:
    """Every way an outsider might present credentials for TryReserve of ``gid``."""
    stale = int(time.time() * 1000) - 301_000
    return [
        (),  # none
        (auth_item(TRY, gid, secret="guessed-secret"),),
        (auth_item(TRY, gid, at_ms=stale),),
        (auth_item(TRY, gid, at_ms=int(time.time() * 1000) + 301_000),),
        (auth_item(TRY, "another-gid"),),
        (auth_item(f"/{SERVICE_NAME}/CancelReserve", gid),),
        (auth_item(TRY, gid), auth_item(TRY, gid)),
        (("x-mesh-auth", "v1.not-a-time.00"),),
        (("x-mesh-auth", f"v2.{int(time.time() * 1000)}.00"),),
    ]


@pytest.mark.parametrize("case", range(9))
async def test_item6_try_reserve_without_valid_mesh_credentials_is_refused_and_moves_nothing(
    stock: RunningStock, gid: str, case: int
) -> None:
    await stock.put("apple", 10)
    headers = forged(gid)[case]
    async with plain_channel(stock.address) as channel:
        outsider = stock_pb2_grpc.StockStub(channel)
        call = outsider.TryReserve(
            reserve_request([("apple", 7)]), metadata=[*metadata(gid, Op.TRY), *headers]
        )
        error = await rpc_error(call)
    assert error.code() is UNAUTHENTICATED, error.details()
    assert await stock.level("apple") == (10, 0, 0)
    await stock.assert_invariant()


async def test_item6_signed_branch_calls_move_stock(stock: RunningStock, gid: str) -> None:
    await stock.put("apple", 10)
    async with plain_channel(stock.address) as channel:
        signed = stock_pb2_grpc.StockStub(channel)
        reply = await signed.TryReserve(
            reserve_request([("apple", 3)]), metadata=[*metadata(gid, Op.TRY), auth_item(TRY, gid)]
        )
    assert reply.note == "applied"
    assert MESH_SECRET not in str(reply)
    # the harness's channel signs through the client interceptor, as the coordinator's pool does
    assert await stock.branch("ConfirmReserve", gid, [("apple", 3)]) == "applied/applied"
    assert await stock.level("apple") == (7, 0, 3)


async def test_item6_release_stock_without_credentials_is_refused(stock: RunningStock, gid: str) -> None:
    await stock.put("apple", 10)
    async with plain_channel(stock.address) as channel:
        outsider = stock_pb2_grpc.StockStub(channel)
        release = stock_pb2.ReleaseStockRequest(order_id="o-1")
        release.items.add(sku="apple", quantity=5)
        error = await rpc_error(outsider.ReleaseStock(release, metadata=metadata(gid, Op.ACTION)))
    assert error.code() is UNAUTHENTICATED
    assert await stock.level("apple") == (10, 0, 0)


async def test_item6_put_sku_needs_the_admin_token(stock: RunningStock) -> None:
    request = stock_pb2.PutSkuRequest(
        sku="apple", merchant_id="m-1", price_cents=100, quantity=5, request_id="restock-1"
    )
    async with plain_channel(stock.address) as channel:
        outsider = stock_pb2_grpc.StockStub(channel)
        missing = await rpc_error(outsider.PutSku(request))
        wrong = await rpc_error(outsider.PutSku(request, metadata=[("authorization", "Bearer nope")]))
        signed_only = await rpc_error(
            outsider.PutSku(request, metadata=[auth_item(f"/{SERVICE_NAME}/PutSku")])
        )
        # reads stay open
        skus = await outsider.GetSkus(stock_pb2.GetSkusRequest(skus=["apple"]))
    assert (missing.code(), wrong.code(), signed_only.code()) == (UNAUTHENTICATED,) * 3
    assert "admin" in (missing.details() or "")
    assert list(skus.skus) == []
    await stock.put("apple", 5)  # the operator's channel carries the token
    assert await stock.level("apple") == (5, 0, 0)
