"""The engine on a manual clock: timeouts and retry backoff happen when time is moved, never before.

Real store (SQLite and MariaDB), real gRPC invoker, real participant; only time is in the test's hands.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from coordinator.engine.commands import OptionsInput, PrepareCommand, SubmitCommand
from coordinator.engine.model import BranchSpec, Mode, OpStatus, Status
from coordinator.engine.service import TxEngine
from coordinator.engine.settings import EngineSettings
from meshkit.runtime.clock import ManualClock, now_ms
from meshkit.tx.branchcall import ChannelPool, branch_metadata
from meshkit.tx.context import Op, TxContext, TxMode
from tests.integration.coordinator.clocked import clocked_engine, settle
from tests.integration.coordinator.participants import Bank, payload


@pytest.fixture
async def clocked(db_engine: AsyncEngine) -> AsyncIterator[tuple[TxEngine, ManualClock]]:
    settings = EngineSettings(
        replica_id="manual", default_retry_interval_ms=1_000, jitter=0.0, lease_ms=5_000
    )
    async with clocked_engine(db_engine, settings) as clocked:
        yield clocked


def tcc_branch(bank: Bank, amount: int) -> BranchSpec:
    return BranchSpec(
        "01",
        action=bank.target("Try"),
        confirm=bank.target("Confirm"),
        cancel=bank.target("Cancel"),
        payload=payload("a", amount),
    )


async def call_try(bank: Bank, gid: str, amount: int) -> None:
    pool = ChannelPool()
    try:
        ctx = TxContext(gid, "01", Op.TRY, TxMode.TCC)
        await pool.call(bank.target("Try"), payload("a", amount), branch_metadata(ctx), 5)
    finally:
        await pool.close()


async def test_tcc_timeout_fires_when_the_clock_reaches_it(
    clocked: tuple[TxEngine, ManualClock], bank: Bank, gid: str
) -> None:
    engine, clock = clocked
    await engine.prepare(PrepareCommand(gid=gid, mode=int(Mode.TCC), options=OptionsInput(timeout_ms=60_000)))
    await engine.register_branch(gid, tcc_branch(bank, 8))
    await call_try(bank, gid, 8)
    clock.advance(59.9)
    await settle(engine)
    assert (await engine.query(gid)).tx.status is Status.PREPARED
    assert ("01", "cancel") not in bank.calls_of(gid)
    clock.advance(0.2)
    await settle(engine)
    view = await engine.query(gid)
    assert (view.tx.status, view.tx.reason) == (Status.FAILED, "timeout")
    assert await bank.balance("a") == (0, 0)
    assert engine.metrics.timer_lateness.labels(source="local")._sum.get() < 1


async def test_retry_backoff_follows_the_clock(
    clocked: tuple[TxEngine, ManualClock], bank: Bank, gid: str
) -> None:
    engine, clock = clocked
    bank.fail("Confirm", grpc.StatusCode.UNAVAILABLE, times=2, gid=gid)
    await engine.prepare(PrepareCommand(gid=gid, mode=int(Mode.TCC)))
    await engine.register_branch(gid, tcc_branch(bank, 4))
    await call_try(bank, gid, 4)
    await engine.submit(SubmitCommand(gid=gid, mode=int(Mode.TCC)))
    await settle(engine)

    view = await engine.query(gid)
    confirm = next(op for op in view.ops if op.op is Op.CONFIRM)
    assert (confirm.attempts, confirm.next_attempt_at) == (1, now_ms(clock) + 1_000)
    assert confirm.last_error.startswith("UNAVAILABLE")
    clock.advance(0.999)
    await settle(engine)
    assert bank.calls_of(gid)[("01", "confirm")] == 1
    clock.advance(0.001)
    await settle(engine)
    view = await engine.query(gid)
    confirm = next(op for op in view.ops if op.op is Op.CONFIRM)
    assert (confirm.attempts, confirm.next_attempt_at) == (2, now_ms(clock) + 2_000)  # doubled
    clock.advance(2.0)
    await settle(engine)
    view = await engine.query(gid)
    confirm = next(op for op in view.ops if op.op is Op.CONFIRM)
    assert (view.tx.status, confirm.status, confirm.attempts) == (Status.SUCCEEDED, OpStatus.SUCCEEDED, 3)
    assert await bank.balance("a") == (4, 0)
