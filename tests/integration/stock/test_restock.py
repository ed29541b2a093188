"""Issue 9 item 5: PutSku is idempotent per request_id, both halves apply exactly once, and the reconciler
finds and repairs drift between the database and Redis without touching reservations in flight.

The failure between the halves is real: a second replica on the same database whose Redis is unreachable
commits the database half and then fails the Redis half (UNAVAILABLE). Real Redis, SQLite and MariaDB.
Where a restock must age past ``stock.reconcile_grace_seconds``, every replica runs on one manual clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from meshkit.barrier import RedisBarrier
from meshkit.runtime.clock import ManualClock
from meshpb.stock.v1 import stock_pb2
from stock_svc.config import StockSection
from stock_svc.hot.redis_stock import HotStock, restock_marker, stock_key
from stock_svc.stock.queries import StockRepo
from tests.integration.stock.harness import RunningStock, rpc_error, stock_settings
from tests.integration.stock.test_persist import DEAD_REDIS, without_redis

RECONCILE_LOGGER = "stock_svc.hot.reconciler"
STARTUP_ROUND_SECONDS = 10.0
# Past the reconciler's grace for owed restocks, short of its next periodic round.
AGED_SECONDS = StockSection().reconcile_grace_seconds + 1
assert StockSection().reconcile_interval_seconds > AGED_SECONDS


async def settled(stock: RunningStock) -> RunningStock:
    """``stock`` once its start-up reconcile round is over (a test's own rounds then run alone)."""
    deadline = time.monotonic() + STARTUP_ROUND_SECONDS
    while not stock.registry.get_sample_value("mesh_stock_reconcile_rounds_total"):
        assert time.monotonic() < deadline, "the start-up reconcile round did not finish"
        await asyncio.sleep(0.02)
    return stock


@pytest.fixture
def clock() -> ManualClock:
    """The manual clock of every replica of one test."""
    return ManualClock()


@pytest.fixture
async def timed(db_url: str, redis_url: str, clock: ManualClock) -> AsyncIterator[RunningStock]:
    """stock_svc on ``clock``."""
    running = await RunningStock.start(stock_settings(db_url, redis_url), clock=clock)
    try:
        yield await settled(running)
    finally:
        await running.stop()


@asynccontextmanager
async def broken_replica(stock: RunningStock, db_url: str, clock: ManualClock) -> AsyncIterator[RunningStock]:
    """A replica on the same database and ``clock`` whose Redis is unreachable."""
    broken = await RunningStock.start(stock_settings(db_url, DEAD_REDIS, stock.namespace), clock=clock)
    try:
        yield broken
    finally:
        await broken.stop()


def repaired(stock: RunningStock, kind: str) -> float:
    """``mesh_stock_drift_repaired_total{kind}`` of ``stock``."""
    return stock.registry.get_sample_value("mesh_stock_drift_repaired_total", {"kind": kind}) or 0.0


async def figures(stock: RunningStock, sku: str) -> tuple[int, int, int, int]:
    """``(db_available, redis_available, redis_reserved, db_sold)`` from the audit."""
    a = (await stock.audit())[sku]
    return int(a.db_available), int(a.redis_available), int(a.redis_reserved), int(a.db_sold)


async def half_done_restock(
    stock: RunningStock, db_url: str, sku: str, quantity: int, clock: ManualClock | None = None
) -> str:
    """A PutSku whose database half committed and whose Redis half failed; its request id."""
    request_id = uuid.uuid4().hex
    replica = broken_replica(stock, db_url, clock) if clock is not None else without_redis(stock, db_url)
    async with replica as broken:
        error = await rpc_error(broken.put(sku, quantity, request_id=request_id))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    return request_id


async def test_item5_put_sku_retried_with_the_same_request_id_restocks_once(stock: RunningStock) -> None:
    await stock.put("apple", 10)
    first = await stock.put("apple", 5, request_id="restock-1")
    again = await stock.put("apple", 5, request_id="restock-1")

    assert (first.available, again.available) == (15, 15)
    assert await figures(stock, "apple") == (15, 15, 0, 0)
    audit = await stock.assert_invariant()
    assert audit["apple"].initial == 15

    # The same request id for another restock is refused, and changes nothing.
    for sku, quantity, price in (("apple", 6, 250), ("pear", 5, 250), ("apple", 5, 300)):
        error = await rpc_error(stock.put(sku, quantity, price=price, request_id="restock-1"))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "request_id restock-1 was already used" in (error.details() or "")
    assert await figures(stock, "apple") == (15, 15, 0, 0)
    assert "pear" not in await stock.audit()

    # A retried create does not restock either.
    await stock.put("plum", 4, request_id="create-plum")
    await stock.put("plum", 4, request_id="create-plum")
    assert await figures(stock, "plum") == (4, 4, 0, 0)


async def test_item5_concurrent_attempts_of_one_put_sku_restock_once(stock: RunningStock) -> None:
    await stock.put("apple", 10)
    levels = await asyncio.gather(*(stock.put("apple", 5, request_id="restock-1") for _ in range(8)))
    assert {level.available for level in levels} == {15}
    assert await figures(stock, "apple") == (15, 15, 0, 0)
    # ... and so do concurrent attempts of one create.
    await asyncio.gather(*(stock.put("fresh", 3, request_id="create-fresh") for _ in range(8)))
    assert await figures(stock, "fresh") == (3, 3, 0, 0)
    await stock.assert_invariant()


async def test_item5_put_sku_without_a_request_id_is_invalid_argument(stock: RunningStock) -> None:
    await stock.put("apple", 10)
    for request_id, why in (("", "missing"), ("r" * 65, "longer than 64")):
        error = await rpc_error(stock.stub.PutSku(_put_request("apple", 5, request_id)))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "request_id" in (error.details() or "") and why in (error.details() or "")
    assert await figures(stock, "apple") == (10, 10, 0, 0)


def _put_request(sku: str, quantity: int, request_id: str) -> stock_pb2.PutSkuRequest:
    return stock_pb2.PutSkuRequest(
        sku=sku, merchant_id="m-1", price_cents=250, quantity=quantity, request_id=request_id
    )


async def test_item5_put_sku_whose_redis_half_failed_is_finished_by_its_retry(
    stock: RunningStock, db_url: str
) -> None:
    await settled(stock)
    await stock.put("apple", 10)
    request_id = await half_done_restock(stock, db_url, "apple", 5)
    assert await figures(stock, "apple") == (15, 10, 0, 0)  # Redis is short: the old bug's state

    # The retry adds nothing to the database and finishes the Redis half, once.
    assert (await stock.put("apple", 5, request_id=request_id)).available == 15
    assert (await stock.put("apple", 5, request_id=request_id)).available == 15
    assert await figures(stock, "apple") == (15, 15, 0, 0)
    await stock.assert_invariant()
    # Nothing is owed any more: the reconciler has nothing to do.
    assert await stock.runtime.reconciler.round_once() == 0


async def test_item5_reconciler_finishes_a_restock_no_client_retried(
    timed: RunningStock, db_url: str, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    stock = timed
    await stock.put("apple", 10)
    request_id = await half_done_restock(stock, db_url, "apple", 5, clock)
    assert await figures(stock, "apple") == (15, 10, 0, 0)

    # A fresh one is left to its PutSku call (which may be finishing it right now); the owed half is
    # in flight, so the drift check leaves Redis alone too.
    assert await stock.runtime.reconciler.round_once() == 0
    assert await figures(stock, "apple") == (15, 10, 0, 0)

    clock.advance(AGED_SECONDS)
    with caplog.at_level(logging.WARNING, logger=RECONCILE_LOGGER):
        assert await stock.runtime.reconciler.round_once() == 1
    assert await figures(stock, "apple") == (15, 15, 0, 0)
    await stock.assert_invariant()
    assert repaired(stock, "restock") == 1
    lines = [r.getMessage() for r in caplog.records if r.name == RECONCILE_LOGGER]
    assert lines == [
        f"stock drift repaired: restock {request_id} of sku apple (+5) had no Redis half; applied it"
    ]

    # A late client retry of the same request changes nothing, and neither does the next round.
    assert (await stock.put("apple", 5, request_id=request_id)).available == 15
    assert await stock.runtime.reconciler.round_once() == 0
    assert await figures(stock, "apple") == (15, 15, 0, 0)


async def test_item5_reconciler_repairs_at_start(
    timed: RunningStock, db_url: str, clock: ManualClock
) -> None:
    stock = timed
    await stock.put("apple", 10)
    await half_done_restock(stock, db_url, "apple", 5, clock)
    clock.advance(AGED_SECONDS)

    # A replica starting on the same database and Redis repairs in its first round, without being asked.
    settings = stock_settings(db_url, stock.runtime.settings.redis.url, stock.namespace)
    fresh = await RunningStock.start(settings, clock=clock)
    try:
        deadline = time.monotonic() + STARTUP_ROUND_SECONDS
        while repaired(fresh, "restock") < 1:
            assert time.monotonic() < deadline, "the start-up round did not repair the restock"
            await asyncio.sleep(0.05)
        assert await figures(fresh, "apple") == (15, 15, 0, 0)
        await fresh.assert_invariant()
    finally:
        await fresh.stop()


async def test_item5_reconciler_corrects_available_that_drifted_without_a_record(
    stock: RunningStock, gid: str, caplog: pytest.LogCaptureFixture
) -> None:
    await settled(stock)
    await stock.put("apple", 10)
    await stock.branch("TryReserve", gid, [("apple", 3)])
    # Drift no database row explains (e.g. a PutSku of the old code whose Redis half was lost): 4 units short.
    await stock.redis.hincrby(stock_key(stock.namespace, "apple"), "available", -4)
    assert await figures(stock, "apple") == (10, 3, 3, 0)

    with caplog.at_level(logging.WARNING, logger=RECONCILE_LOGGER):
        assert await stock.runtime.reconciler.round_once() == 1
    # Available is corrected; the reservation in flight is left as it is.
    assert await figures(stock, "apple") == (10, 7, 3, 0)
    assert repaired(stock, "available") == 1
    assert stock.registry.get_sample_value("mesh_stock_drift_skus") == 1
    assert any("sku apple redis available 3 -> 7" in r.getMessage() for r in caplog.records)

    await stock.branch("ConfirmReserve", gid, [("apple", 3)])
    assert await stock.level("apple") == (7, 0, 3)
    await stock.assert_invariant()
    assert await stock.runtime.reconciler.round_once() == 0
    assert stock.registry.get_sample_value("mesh_stock_drift_skus") == 0


async def test_item5_reconciler_leaves_in_flight_reservations_alone(stock: RunningStock, db_url: str) -> None:
    await settled(stock)
    await stock.put("apple", 10)
    tried, confirming = uuid.uuid4().hex, uuid.uuid4().hex
    await stock.branch("TryReserve", tried, [("apple", 3)])  # reserved, not confirmed yet
    await stock.branch("TryReserve", confirming, [("apple", 2)])
    async with without_redis(stock, db_url) as broken:  # its confirm persists, its Redis half is owed
        error = await rpc_error(broken.branch("ConfirmReserve", confirming, [("apple", 2)]))
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
    before = await figures(stock, "apple")
    assert before == (8, 5, 5, 2)  # Redis total 10 vs database 8: in flight, not drift

    for _ in range(2):
        assert await stock.runtime.reconciler.round_once() == 0
        assert await figures(stock, "apple") == before
    assert repaired(stock, "available") == 0

    # The transactions end as they would have without the reconciler; everything adds up.
    assert await stock.branch("ConfirmReserve", confirming, [("apple", 2)]) == "duplicate/applied"
    assert await stock.branch("CancelReserve", tried, [("apple", 3)]) == "applied"
    assert await stock.level("apple") == (8, 0, 2)
    await stock.assert_invariant()
    assert await stock.runtime.reconciler.round_once() == 0


async def test_item5_reconciler_with_an_owed_restock_and_an_owed_confirm(
    timed: RunningStock, db_url: str, clock: ManualClock
) -> None:
    stock = timed
    await stock.put("apple", 10)
    confirming = uuid.uuid4().hex
    await stock.branch("TryReserve", confirming, [("apple", 2)])
    async with broken_replica(stock, db_url, clock) as broken:
        await rpc_error(broken.branch("ConfirmReserve", confirming, [("apple", 2)]))
        await rpc_error(broken.put("apple", 4))
    assert await figures(stock, "apple") == (12, 8, 2, 2)
    # Both owed halves are in flight: Redis total 10 = database 12 - restock 4 + confirm 2. No drift.
    assert await stock.runtime.reconciler.round_once() == 0
    assert await figures(stock, "apple") == (12, 8, 2, 2)

    # Once aged, the restock is finished; the owed confirm half keeps its reserved units.
    clock.advance(AGED_SECONDS)
    assert await stock.runtime.reconciler.round_once() == 1
    assert await figures(stock, "apple") == (12, 12, 2, 2)
    assert repaired(stock, "available") == 0

    assert await stock.branch("ConfirmReserve", confirming, [("apple", 2)]) == "duplicate/applied"
    assert await stock.level("apple") == (12, 0, 2)
    await stock.assert_invariant()


async def redis_half_not_recorded(stock: RunningStock, clock: ManualClock, request_id: str) -> None:
    """Apply a recorded restock's Redis half the way a finish that died before recording it done would."""
    repo = StockRepo(stock.runtime.db, clock)
    async with repo.transaction() as session:
        record = await repo.restock_record(session, request_id)
    assert record is not None and not record.redis_done
    hot = HotStock(stock.redis, RedisBarrier(stock.redis, clock), stock.namespace)
    assert await hot.restock(record.sku, record.request_id, record.quantity, record.version)


async def test_item5_restock_marker_is_renewed_by_every_retry_until_recorded_done(
    timed: RunningStock, db_url: str, clock: ManualClock
) -> None:
    """A restock whose Redis half ran but was never recorded done: each retry (here the reconciler's)
    renews the marker, so it cannot lapse while recording it keeps failing (before, it lapsed after
    its first 7 days whatever happened, and the next retry added the units again)."""
    stock = timed
    await stock.put("apple", 10)
    request_id = await half_done_restock(stock, db_url, "apple", 5, clock)
    await redis_half_not_recorded(stock, clock, request_id)
    marker = restock_marker(stock.namespace, request_id)
    await stock.redis.pexpire(marker, 60_000)  # a marker close to the end of its life

    clock.advance(AGED_SECONDS)
    assert await stock.runtime.reconciler.round_once() == 0  # nothing added: the marker says it ran
    ttl_ms = stock.runtime.settings.stock.restock_marker_ttl_seconds * 1000
    assert await stock.redis.pttl(marker) > ttl_ms - 60_000
    assert await figures(stock, "apple") == (15, 15, 0, 0)
    await stock.assert_invariant()


@pytest.fixture
async def rarely_reconciled(db_url: str, redis_url: str, clock: ManualClock) -> AsyncIterator[RunningStock]:
    """stock_svc on ``clock`` whose periodic reconcile rounds are 30 days apart: the test runs its own."""
    settings = stock_settings(db_url, redis_url)
    section = settings.stock.model_copy(update={"reconcile_interval_seconds": 30 * 86_400.0})
    running = await RunningStock.start(settings.model_copy(update={"stock": section}), clock=clock)
    try:
        yield await settled(running)
    finally:
        await running.stop()


async def test_item5_restock_still_owed_past_its_marker_life_is_never_applied_twice(
    rarely_reconciled: RunningStock, db_url: str, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the marker's life a restock's Redis half cannot tell whether it ran: the reconciler records
    it done with an ERROR and lets the drift check set Redis from the database, which is right both when
    the half ran (apple: before, it added the 5 units a second time) and when it never did (pear)."""
    stock = rarely_reconciled
    await stock.put("apple", 10)
    await stock.put("pear", 10)
    applied = await half_done_restock(stock, db_url, "apple", 5, clock)
    await redis_half_not_recorded(stock, clock, applied)
    never = await half_done_restock(stock, db_url, "pear", 5, clock)
    await stock.redis.delete(restock_marker(stock.namespace, applied))  # the marker lapsed
    assert await figures(stock, "apple") == (15, 15, 0, 0)
    assert await figures(stock, "pear") == (15, 10, 0, 0)

    with caplog.at_level(logging.WARNING, logger=RECONCILE_LOGGER):
        clock.advance(stock.runtime.settings.stock.restock_marker_ttl_seconds + 1)
        assert await stock.runtime.reconciler.finish_owed_restocks() == 0
        assert await figures(stock, "apple") == (15, 15, 0, 0)  # not 20: no second add
        assert await stock.runtime.reconciler.round_once() == 1  # the drift check gives pear its units
    assert await figures(stock, "apple") == (15, 15, 0, 0)
    assert await figures(stock, "pear") == (15, 15, 0, 0)
    assert repaired(stock, "restock") == 0
    assert repaired(stock, "available") == 1
    errors = {
        r.getMessage().split(" of sku")[0]
        for r in caplog.records
        if r.name == RECONCILE_LOGGER and r.levelno == logging.ERROR
    }
    assert errors == {f"stock restock {applied}", f"stock restock {never}"}

    # A late client retry finds both recorded done: nothing is added.
    assert (await stock.put("apple", 5, request_id=applied)).available == 15
    assert (await stock.put("pear", 5, request_id=never)).available == 15
    await stock.assert_invariant()
