"""A confirm with no try entry in the Redis barrier (issue 9, review of issue 15 item 4).

With Redis intact that confirm is "not yet" and sells nothing. After a Redis data loss (FLUSHALL on the
test's own redis-server: the barrier hash with the try entry is gone, the SKU hashes are reloaded from
the database) the confirm of a try that did run persists its sale, within the barrier retention.
Real Redis, SQLite and MariaDB.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from meshctl.stack.embedded import RedisServer
from meshkit.runtime.clock import ManualClock
from tests.integration.stock.harness import RunningStock, rpc_error, stock_settings

DAY = 86_400.0
LOSSES = "mesh_stock_redis_losses_total"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone, so FLUSHALL loses no other test's keys."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clock() -> ManualClock:
    """The clock stock_svc runs on (only its wall time is moved, so no background round wakes)."""
    return ManualClock()


@pytest.fixture
async def lossy_stock(db_url: str, own_redis: RedisServer, clock: ManualClock) -> AsyncIterator[RunningStock]:
    """stock_svc on its own Redis."""
    running = await RunningStock.start(stock_settings(db_url, own_redis.url), clock=clock)
    try:
        yield running
    finally:
        await running.stop()


def losses(stock: RunningStock) -> float:
    """Redis data losses this stock_svc recorded."""
    return stock.registry.get_sample_value(LOSSES) or 0.0


async def test_item9_confirm_after_redis_loss_persists_the_sale(lossy_stock: RunningStock, gid: str) -> None:
    stock = lossy_stock
    await stock.put("apple", 10)
    await stock.branch("TryReserve", gid, [("apple", 3)])
    assert losses(stock) == 0

    await stock.redis.flushall()  # Redis restarted without its data: the try entry is gone

    assert await stock.branch("ConfirmReserve", gid, [("apple", 3)]) == "applied/applied"
    assert losses(stock) == 1
    assert await stock.level("apple") == (7, 0, 3)
    audit = await stock.assert_invariant()
    assert (audit["apple"].db_available, audit["apple"].db_sold, audit["apple"].redis_available) == (7, 3, 7)
    # The sold units are not offered again, and the retry is absorbed.
    error = await rpc_error(stock.branch("TryReserve", uuid.uuid4().hex, [("apple", 8)]))
    assert error.code() == grpc.StatusCode.ABORTED
    assert await stock.branch("ConfirmReserve", gid, [("apple", 3)]) == "duplicate/duplicate"
    assert await stock.level("apple") == (7, 0, 3)
    await stock.assert_invariant()


async def test_issue15_item4_confirm_without_try_sells_nothing(lossy_stock: RunningStock, gid: str) -> None:
    stock = lossy_stock
    await stock.put("apple", 10)

    error = await rpc_error(stock.branch("ConfirmReserve", gid, [("apple", 3)]))

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no try has run" in (error.details() or "")
    assert await stock.level("apple") == (10, 0, 0)
    audit = await stock.assert_invariant()
    assert (audit["apple"].db_available, audit["apple"].db_sold) == (10, 0)
    assert losses(stock) == 0


async def test_item9_confirm_without_try_past_the_loss_window_is_not_yet(
    lossy_stock: RunningStock, clock: ManualClock, gid: str
) -> None:
    stock = lossy_stock
    await stock.put("apple", 10)
    await stock.redis.flushall()
    await stock.runtime.domain.check_redis_epoch()  # the reconciler's round finds the loss
    assert losses(stock) == 1

    clock.set(clock.now() + 8 * DAY)  # past the 7-day barrier retention: every lost entry is past its life

    error = await rpc_error(stock.branch("ConfirmReserve", gid, [("apple", 3)]))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await stock.level("apple") == (10, 0, 0)
    await stock.assert_invariant()


async def test_item9_redis_loss_while_stopped_is_found_at_start(
    db_url: str, own_redis: RedisServer, clock: ManualClock, gid: str
) -> None:
    settings = stock_settings(db_url, own_redis.url)
    first = await RunningStock.start(settings, clock=clock)
    try:
        await first.put("apple", 10)
        await first.branch("TryReserve", gid, [("apple", 4)])
        await first.redis.flushall()
    finally:
        await first.stop()

    second = await RunningStock.start(settings, clock=clock)
    try:
        assert losses(second) == 1  # found by the start-up check, before any call
        assert await second.branch("ConfirmReserve", gid, [("apple", 4)]) == "applied/applied"
        assert await second.level("apple") == (6, 0, 4)
        await second.assert_invariant()
        assert losses(second) == 1
    finally:
        await second.stop()
