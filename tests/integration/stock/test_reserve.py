"""stock_svc TCC branches on real Redis and a real database (SQLite and MariaDB), over gRPC.

Every scenario ends by checking the stock invariant (DESIGN.md section 8) on the Audit RPC.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc

from meshkit.barrier.redis import barrier_key
from tests.integration.stock.harness import BRANCH, RunningStock, rpc_error, stock_settings


def new_gid() -> str:
    return uuid.uuid4().hex


async def test_try_then_confirm_persists_the_sale_and_audit_balances(stock: RunningStock, gid: str) -> None:
    await stock.put("apple", 10)
    await stock.put("pear", 5)

    assert await stock.branch("TryReserve", gid, [("apple", 3), ("pear", 2)]) == "applied"
    assert await stock.level("apple") == (7, 3, 0)
    assert await stock.branch("ConfirmReserve", gid, [("apple", 3), ("pear", 2)]) == "applied/applied"

    assert await stock.level("apple") == (7, 0, 3)
    assert await stock.level("pear") == (3, 0, 2)
    audit = await stock.assert_invariant()
    assert (audit["apple"].initial, audit["apple"].db_available, audit["apple"].db_sold) == (10, 7, 3)
    assert audit["apple"].redis_loaded


async def test_try_then_cancel_returns_the_stock(stock: RunningStock, gid: str) -> None:
    await stock.put("apple", 10)

    await stock.branch("TryReserve", gid, [("apple", 4)])
    assert await stock.level("apple") == (6, 4, 0)
    assert await stock.branch("CancelReserve", gid, [("apple", 4)]) == "applied"

    assert await stock.level("apple") == (10, 0, 0)
    audit = await stock.assert_invariant()
    assert (audit["apple"].db_available, audit["apple"].db_sold) == (10, 0)


async def test_multi_sku_reserve_is_all_or_nothing_when_one_sku_is_short(
    stock: RunningStock, gid: str
) -> None:
    await stock.put("apple", 10)
    await stock.put("pear", 1)
    await stock.put("plum", 10)

    error = await rpc_error(stock.branch("TryReserve", gid, [("apple", 2), ("pear", 2), ("plum", 3)]))

    assert error.code() == grpc.StatusCode.ABORTED
    assert "pear" in (error.details() or "")
    assert "apple" not in (error.details() or "")
    for sku, total in (("apple", 10), ("pear", 1), ("plum", 10)):
        assert await stock.level(sku) == (total, 0, 0)
    assert not await stock.redis.hexists(barrier_key(gid), f"{BRANCH}:try")
    # The initiator aborts: the coordinator's cancel finds no try (empty rollback) and changes nothing.
    assert (
        await stock.branch("CancelReserve", gid, [("apple", 2), ("pear", 2), ("plum", 3)]) == "empty_rollback"
    )
    assert await stock.level("apple") == (10, 0, 0)
    await stock.assert_invariant()


async def test_unknown_sku_fails_the_try_and_reserves_nothing(stock: RunningStock, gid: str) -> None:
    await stock.put("apple", 10)

    error = await rpc_error(stock.branch("TryReserve", gid, [("apple", 1), ("ghost", 1)]))

    assert error.code() == grpc.StatusCode.ABORTED
    assert "unknown sku: ghost" in (error.details() or "")
    assert await stock.level("apple") == (10, 0, 0)
    assert await stock.branch("CancelReserve", gid, [("apple", 1), ("ghost", 1)]) == "empty_rollback"
    assert set(await stock.assert_invariant()) == {"apple"}


async def test_duplicate_try_and_confirm_are_applied_once(stock: RunningStock, gid: str) -> None:
    await stock.put("apple", 10)
    items = [("apple", 3)]

    assert await stock.branch("TryReserve", gid, items) == "applied"
    assert await stock.branch("TryReserve", gid, items) == "duplicate"
    assert await stock.level("apple") == (7, 3, 0)
    assert await stock.branch("ConfirmReserve", gid, items) == "applied/applied"
    assert await stock.branch("ConfirmReserve", gid, items) == "duplicate/duplicate"
    # A try re-delivered after the confirm is still a duplicate.
    assert await stock.branch("TryReserve", gid, items) == "duplicate"

    assert await stock.level("apple") == (7, 0, 3)
    await stock.assert_invariant()


async def test_duplicate_cancel_is_applied_once(stock: RunningStock, gid: str) -> None:
    await stock.put("apple", 10)
    await stock.branch("TryReserve", gid, [("apple", 3)])
    other = new_gid()
    await stock.branch("TryReserve", other, [("apple", 2)])

    assert await stock.branch("CancelReserve", gid, [("apple", 3)]) == "applied"
    assert await stock.branch("CancelReserve", gid, [("apple", 3)]) == "duplicate"

    assert await stock.level("apple") == (8, 2, 0)
    await stock.assert_invariant()


async def test_concurrent_duplicate_tries_reserve_once(stock: RunningStock, gid: str) -> None:
    await stock.put("apple", 10)

    notes = await asyncio.gather(*(stock.branch("TryReserve", gid, [("apple", 2)]) for _ in range(10)))

    assert sorted(notes) == ["applied"] + ["duplicate"] * 9
    assert await stock.level("apple") == (8, 2, 0)
    await stock.assert_invariant()


async def test_cancel_before_try_is_an_empty_rollback_and_the_late_try_is_rejected(
    stock: RunningStock, gid: str
) -> None:
    await stock.put("apple", 10)

    assert await stock.branch("CancelReserve", gid, [("apple", 3)]) == "empty_rollback"
    error = await rpc_error(stock.branch("TryReserve", gid, [("apple", 3)]))

    assert error.code() == grpc.StatusCode.ABORTED
    assert "late try rejected" in (error.details() or "")
    assert await stock.level("apple") == (10, 0, 0)
    await stock.assert_invariant()


async def test_concurrent_reserves_for_the_last_ten_units_exactly_ten_succeed(stock: RunningStock) -> None:
    await stock.put("hot", 10)
    gids = [new_gid() for _ in range(50)]

    results = await asyncio.gather(
        *(stock.branch("TryReserve", g, [("hot", 1)]) for g in gids), return_exceptions=True
    )

    won = [g for g, r in zip(gids, results, strict=True) if r == "applied"]
    lost = [g for g, r in zip(gids, results, strict=True) if r != "applied"]
    assert len(won) == 10
    for r in results:
        if isinstance(r, BaseException):
            assert isinstance(r, grpc.aio.AioRpcError) and r.code() == grpc.StatusCode.ABORTED
            assert "insufficient stock for sku hot" in (r.details() or "")
    assert await stock.level("hot") == (0, 10, 0)
    await asyncio.gather(
        *(stock.branch("ConfirmReserve", g, [("hot", 1)]) for g in won),
        *(stock.branch("CancelReserve", g, [("hot", 1)]) for g in lost),
    )
    assert await stock.level("hot") == (0, 0, 10)
    await stock.assert_invariant()


async def test_lowered_limits_do_not_strand_an_open_reservation(
    stock: RunningStock, db_url: str, redis_url: str, gid: str
) -> None:
    await stock.put("apple", 100)
    await stock.branch("TryReserve", gid, [("apple", 50)])
    strict = await RunningStock.start(
        stock_settings(db_url, redis_url, stock.namespace, max_quantity=10, max_items_per_request=1)
    )
    try:
        error = await rpc_error(strict.branch("TryReserve", new_gid(), [("apple", 50)]))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert await strict.branch("ConfirmReserve", gid, [("apple", 50)]) == "applied/applied"
    finally:
        await strict.stop()
    assert await stock.level("apple") == (50, 0, 50)
    await stock.assert_invariant()
