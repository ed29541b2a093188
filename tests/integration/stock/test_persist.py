"""stock_svc's persisted changes (confirm, release, restock) and its Redis copy's life: reloads, crashes
between the database half and the Redis half, retries. Real Redis, SQLite and MariaDB.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from meshpb.stock.v1 import stock_pb2
from tests.integration.stock.harness import RunningStock, rpc_error, stock_settings

DEAD_REDIS = "redis://127.0.0.1:1/0"


@asynccontextmanager
async def without_redis(stock: RunningStock, db_url: str) -> AsyncIterator[RunningStock]:
    """A second replica on the same database whose Redis is unreachable: its calls die between halves."""
    broken = await RunningStock.start(stock_settings(db_url, DEAD_REDIS, stock.namespace))
    try:
        yield broken
    finally:
        await broken.stop()


async def sold_out(stock: RunningStock, gid: str, sku: str, quantity: int) -> None:
    """A confirmed sale of ``quantity`` units under ``gid``."""
    await stock.branch("TryReserve", gid, [(sku, quantity)])
    await stock.branch("ConfirmReserve", gid, [(sku, quantity)])


async def test_release_after_confirm_returns_the_stock_once(stock: RunningStock, gid: str) -> None:
    await stock.put("apple", 10)
    await stock.put("pear", 10)
    await stock.branch("TryReserve", gid, [("apple", 3), ("pear", 1)], order_ids=["o-1", "o-2"])
    await stock.branch("ConfirmReserve", gid, [("apple", 3), ("pear", 1)], order_ids=["o-1", "o-2"])
    cancel_gid = uuid.uuid4().hex

    assert await stock.release(cancel_gid, [("apple", 3)], order_id="o-1") == "applied/applied"
    assert await stock.release(cancel_gid, [("apple", 3)], order_id="o-1") == "duplicate/duplicate"

    assert await stock.level("apple") == (10, 0, 0)
    assert await stock.level("pear") == (9, 0, 1)
    audit = await stock.assert_invariant()
    assert (audit["apple"].db_available, audit["apple"].db_sold) == (10, 0)


async def test_release_before_its_sale_is_persisted_answers_not_yet(stock: RunningStock, gid: str) -> None:
    await stock.put("apple", 10)
    await stock.branch("TryReserve", gid, [("apple", 3)])
    cancel_gid = uuid.uuid4().hex

    # The cancel chain may overtake the confirm that persists the sale: "not yet", retried later.
    error = await rpc_error(stock.release(cancel_gid, [("apple", 3)]))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "apple (sold 0, release 3)" in (error.details() or "")
    assert await stock.level("apple") == (7, 3, 0)

    await stock.branch("ConfirmReserve", gid, [("apple", 3)])
    assert await stock.release(cancel_gid, [("apple", 3)]) == "applied/applied"
    assert await stock.level("apple") == (10, 0, 0)
    await stock.assert_invariant()


async def test_redis_flushed_stock_is_reloaded_from_the_db(stock: RunningStock, gid: str) -> None:
    await stock.put("apple", 10)
    await sold_out(stock, gid, "apple", 3)

    assert await stock.drop_hot_copies() == 1
    audit = await stock.assert_invariant()
    assert not audit["apple"].redis_loaded
    assert (audit["apple"].db_available, audit["apple"].db_sold) == (7, 3)

    # The next reserve loads the copy from the database (available 7) and runs against it.
    error = await rpc_error(stock.branch("TryReserve", uuid.uuid4().hex, [("apple", 8)]))
    assert error.code() == grpc.StatusCode.ABORTED
    assert "available 7, requested 8" in (error.details() or "")
    await sold_out(stock, uuid.uuid4().hex, "apple", 7)
    assert await stock.level("apple") == (0, 0, 10)
    audit = await stock.assert_invariant()
    assert audit["apple"].redis_loaded


async def test_confirm_retried_after_a_crash_between_db_and_redis_applies_once(
    stock: RunningStock, db_url: str, gid: str
) -> None:
    await stock.put("apple", 10)
    await stock.branch("TryReserve", gid, [("apple", 3)])

    async with without_redis(stock, db_url) as broken:
        error = await rpc_error(broken.branch("ConfirmReserve", gid, [("apple", 3)]))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    audit = await stock.audit()
    assert (audit["apple"].db_sold, audit["apple"].redis_reserved) == (3, 3)  # half done

    # The coordinator retries: the database half is a duplicate, the Redis half runs once.
    assert await stock.branch("ConfirmReserve", gid, [("apple", 3)]) == "duplicate/applied"
    assert await stock.branch("ConfirmReserve", gid, [("apple", 3)]) == "duplicate/duplicate"
    assert await stock.level("apple") == (7, 0, 3)
    await stock.assert_invariant()


async def test_confirm_after_the_redis_copy_was_lost_between_its_halves_counts_once(
    stock: RunningStock, db_url: str, gid: str
) -> None:
    await stock.put("apple", 10)
    await stock.branch("TryReserve", gid, [("apple", 3)])
    async with without_redis(stock, db_url) as broken:
        await rpc_error(broken.branch("ConfirmReserve", gid, [("apple", 3)]))

    await stock.drop_hot_copies()
    # The reload reads the database after the sale was persisted; the version gate skips the Redis half.
    assert await stock.branch("ConfirmReserve", gid, [("apple", 3)]) == "duplicate/applied"

    assert await stock.level("apple") == (7, 0, 3)
    await stock.assert_invariant()


async def test_confirm_after_the_redis_copy_lost_its_reservation_counts_once(
    stock: RunningStock, gid: str
) -> None:
    await stock.put("apple", 10)
    await stock.branch("TryReserve", gid, [("apple", 3)])

    await stock.drop_hot_copies()  # the reservation is gone; the reload counts its units as available
    assert await stock.level("apple") == (10, 0, 0)
    await stock.branch("ConfirmReserve", gid, [("apple", 3)])

    assert await stock.level("apple") == (7, 0, 3)
    await stock.assert_invariant()


async def test_release_retried_after_a_crash_between_db_and_redis_applies_once(
    stock: RunningStock, db_url: str, gid: str
) -> None:
    await stock.put("apple", 10)
    await sold_out(stock, gid, "apple", 4)
    cancel_gid = uuid.uuid4().hex

    async with without_redis(stock, db_url) as broken:
        error = await rpc_error(broken.release(cancel_gid, [("apple", 4)]))
    assert error.code() == grpc.StatusCode.UNAVAILABLE

    assert await stock.release(cancel_gid, [("apple", 4)]) == "duplicate/applied"
    assert await stock.release(cancel_gid, [("apple", 4)]) == "duplicate/duplicate"
    assert await stock.level("apple") == (10, 0, 0)
    await stock.assert_invariant()


async def test_put_sku_restocks_in_step_and_refuses_a_merchant_change(stock: RunningStock, gid: str) -> None:
    created = await stock.put("apple", 10, merchant="m-1", price=100)
    assert (created.available, created.reserved, created.sold, created.merchant_id, created.price_cents) == (
        10,
        0,
        0,
        "m-1",
        100,
    )
    await stock.branch("TryReserve", gid, [("apple", 4)])

    restocked = await stock.put("apple", 5, merchant="m-1", price=120)
    assert (restocked.available, restocked.reserved, restocked.price_cents) == (11, 4, 120)
    repriced = await stock.put("apple", 0, merchant="m-1", price=130)
    assert (repriced.available, repriced.price_cents) == (11, 130)

    error = await rpc_error(stock.put("apple", 5, merchant="m-2"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "m-1" in (error.details() or "") and "m-2" in (error.details() or "")
    audit = await stock.assert_invariant()
    assert (audit["apple"].initial, audit["apple"].db_available) == (15, 15)


async def test_put_sku_after_the_redis_copy_was_lost_is_counted_once(stock: RunningStock) -> None:
    await stock.put("apple", 10)
    await stock.drop_hot_copies()

    level = await stock.put("apple", 5)

    assert (level.available, level.reserved) == (15, 0)
    audit = await stock.assert_invariant()
    assert audit["apple"].initial == 15


async def test_get_skus_answers_the_known_ones(stock: RunningStock) -> None:
    await stock.put("apple", 1, merchant="m-1", price=100)
    await stock.put("pear", 1, merchant="m-2", price=200)

    reply = await stock.stub.GetSkus(stock_pb2.GetSkusRequest(skus=["pear", "ghost", "apple", "pear"]))

    assert [(s.sku, s.merchant_id, s.price_cents) for s in reply.skus] == [
        ("pear", "m-2", 200),
        ("apple", "m-1", 100),
    ]
    error = await rpc_error(stock.stub.GetStock(stock_pb2.GetStockRequest(sku="ghost")))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_concurrent_puts_of_a_new_sku_count_every_unit(stock: RunningStock) -> None:
    levels = await asyncio.gather(*(stock.put("fresh", 3) for _ in range(10)), return_exceptions=True)

    assert [lv for lv in levels if isinstance(lv, BaseException)] == []
    assert await stock.level("fresh") == (30, 0, 0)
    audit = await stock.assert_invariant()
    assert audit["fresh"].initial == 30
