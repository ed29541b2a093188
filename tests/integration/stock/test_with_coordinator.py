"""stock_svc driven by a real coordinator: the TCC of PlaceOrder and the MSG release of the cancel chain.

The initiator is meshkit.tx.initiator (what order_svc uses); branch payloads are the serialized requests,
called generically by target, exactly as in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from meshkit.barrier import BARRIER_VERSIONS, SqlBarrier
from meshkit.errors import BranchFailure
from meshkit.infra.db import create_engine
from meshkit.infra.migrate import upgrade
from meshkit.runtime.clock import SystemClock
from meshkit.settings.config import DbSettings
from meshkit.tx.initiator import msg, tcc
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from tests.integration.coordinator.harness import RunningCoordinator, coordinator_settings, wait_final
from tests.integration.stock.harness import RunningStock, release_request, reserve_request


class LaterBranchFailed(Exception):
    """Stands in for a later branch of the transaction failing."""


@pytest.fixture
async def coordinator(tmp_path: Path) -> AsyncIterator[RunningCoordinator]:
    running = await RunningCoordinator.start(
        coordinator_settings(f"sqlite+aiosqlite:///{tmp_path / 'tm.db'}")
    )
    try:
        yield running
    finally:
        await running.stop()


async def place(coordinator: RunningCoordinator, stock: RunningStock, items: list[tuple[str, int]]) -> str:
    async with tcc(coordinator.initiator, wait_result=True) as t:
        await t.call_branch(
            stock.target("TryReserve"),
            stock.target("ConfirmReserve"),
            stock.target("CancelReserve"),
            reserve_request(items, ["o-1"]),
            branch_id="stock",
        )
    assert t.status == pb.STATUS_SUCCEEDED
    return t.gid


async def test_tcc_through_the_coordinator_persists_the_sale(
    coordinator: RunningCoordinator, stock: RunningStock
) -> None:
    await stock.put("apple", 10)
    await stock.put("pear", 10)

    gid = await place(coordinator, stock, [("apple", 2), ("pear", 3)])

    tx = await wait_final(coordinator, gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    assert await stock.level("apple") == (8, 0, 2)
    assert await stock.level("pear") == (7, 0, 3)
    await stock.assert_invariant()


async def test_tcc_aborted_after_the_stock_try_cancels_the_reservation(
    coordinator: RunningCoordinator, stock: RunningStock
) -> None:
    await stock.put("apple", 10)

    with pytest.raises(LaterBranchFailed):
        async with tcc(coordinator.initiator) as t:
            await t.call_branch(
                stock.target("TryReserve"),
                stock.target("ConfirmReserve"),
                stock.target("CancelReserve"),
                reserve_request([("apple", 4)]),
                branch_id="stock",
            )
            assert await stock.level("apple") == (6, 4, 0)
            raise LaterBranchFailed

    tx = await wait_final(coordinator, t.gid)
    assert tx.status == pb.STATUS_FAILED
    assert await stock.level("apple") == (10, 0, 0)
    await stock.assert_invariant()


async def test_tcc_with_a_short_sku_rolls_back_with_nothing_reserved(
    coordinator: RunningCoordinator, stock: RunningStock
) -> None:
    await stock.put("apple", 10)
    await stock.put("pear", 1)

    with pytest.raises(BranchFailure, match="insufficient stock for sku pear"):
        async with tcc(coordinator.initiator) as t:
            await t.call_branch(
                stock.target("TryReserve"),
                stock.target("ConfirmReserve"),
                stock.target("CancelReserve"),
                reserve_request([("apple", 4), ("pear", 2)]),
                branch_id="stock",
            )

    tx = await wait_final(coordinator, t.gid)
    assert tx.status == pb.STATUS_FAILED
    assert await stock.level("apple") == (10, 0, 0)
    assert await stock.level("pear") == (1, 0, 0)
    await stock.assert_invariant()


async def test_cancel_chain_releases_the_sold_stock_through_a_msg_transaction(
    coordinator: RunningCoordinator, stock: RunningStock, tmp_path: Path
) -> None:
    await stock.put("apple", 10)
    await place(coordinator, stock, [("apple", 3)])
    local_db = create_engine(DbSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'order.db'}"))
    await upgrade(local_db, "barrier", BARRIER_VERSIONS)

    async def cancel_order(_session: AsyncSession) -> None:
        """The initiator's local transaction (order -> CANCELLED in order_svc)."""

    try:
        message = msg(coordinator.initiator, query_prepared=f"{stock.address}/test.Order/QueryPrepared").add(
            stock.target("ReleaseStock"), release_request([("apple", 3)], "o-1"), branch_id="stock"
        )
        await message.do_and_submit(SqlBarrier(local_db, SystemClock()), cancel_order, wait=True)
    finally:
        await local_db.dispose()

    tx = await wait_final(coordinator, message.gid)
    assert tx.status == pb.STATUS_SUCCEEDED
    assert [(op.branch_id, op.op, op.status) for op in tx.ops if op.branch_id == "stock"] == [
        ("stock", "action", "succeeded")
    ]
    assert await stock.level("apple") == (10, 0, 0)
    await stock.assert_invariant()
