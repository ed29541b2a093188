"""Timer fires are claimed in batches, and a duplicate or stale fire changes nothing.

Real engine and store (SQLite and MariaDB), real gRPC invoker and participant, manual clock. A fire
is :meth:`TxEngine.poke` - what local wake-ups and JetStream fires call - and each claim statement it
leads to counts in ``mesh_timer_claims_total``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from coordinator.engine.commands import OptionsInput, PrepareCommand, TxView
from coordinator.engine.driver import CLAIM_RETRY_SECONDS
from coordinator.engine.model import BranchSpec, Mode, Status
from coordinator.engine.service import TxEngine
from coordinator.engine.settings import EngineSettings
from meshkit.runtime.clock import ManualClock
from tests.integration.asserts import eventually
from tests.integration.coordinator.clocked import clocked_engine, settle
from tests.integration.coordinator.failing_claims import table_away
from tests.integration.coordinator.participants import Bank, payload

TIMEOUT_MS = 60_000


@pytest.fixture
async def clocked(db_engine: AsyncEngine) -> AsyncIterator[tuple[TxEngine, ManualClock]]:
    settings = EngineSettings(replica_id="batches", jitter=0.0, lease_ms=5_000)
    async with clocked_engine(db_engine, settings) as clocked:
        yield clocked


def claims(engine: TxEngine) -> float:
    return engine.metrics.registry.get_sample_value("mesh_timer_claims_total") or 0.0


async def prepare(engine: TxEngine, bank: Bank, gid: str, timeout_ms: int = TIMEOUT_MS) -> None:
    branch = BranchSpec(
        "01",
        action=bank.target("Try"),
        confirm=bank.target("Confirm"),
        cancel=bank.target("Cancel"),
        payload=payload("a", 1),
    )
    options = OptionsInput(timeout_ms=timeout_ms)
    await engine.prepare(PrepareCommand(gid=gid, mode=int(Mode.TCC), options=options, branches=(branch,)))


def snapshot(view: TxView) -> tuple[object, ...]:
    return (view.tx, view.ops, view.history)


async def test_many_due_timeouts_are_claimed_in_few_statements(
    clocked: tuple[TxEngine, ManualClock], bank: Bank, gid: str
) -> None:
    engine, clock = clocked
    gids = [f"{gid}-{i:02d}" for i in range(40)]
    for one in gids:
        await prepare(engine, bank, one)
    clock.advance(TIMEOUT_MS / 1000 + 0.1)  # every local wake-up falls due in the same pass
    await settle(engine)
    for one in gids:
        view = await engine.query(one)
        assert (view.tx.status, view.tx.reason) == (Status.FAILED, "timeout")
        assert bank.calls_of(one)[("01", "cancel")] == 1
    hints = engine.metrics.registry.get_sample_value("mesh_timer_hints_total", {"source": "local"})
    assert hints == len(gids)
    assert 1 <= claims(engine) < len(gids) / 4


async def test_fires_for_a_final_transaction_change_nothing(
    clocked: tuple[TxEngine, ManualClock], bank: Bank, gid: str
) -> None:
    engine, clock = clocked
    await prepare(engine, bank, gid)
    clock.advance(TIMEOUT_MS / 1000 + 0.1)
    await settle(engine)
    before = await engine.query(gid)
    assert before.tx.status is Status.FAILED
    claims_before = claims(engine)
    for _ in range(3):  # JetStream delivers the (now stale) fire again, twice over
        engine.poke(gid, "jetstream")
    await settle(engine)
    assert snapshot(await engine.query(gid)) == snapshot(before)
    assert bank.calls_of(gid)[("01", "cancel")] == 1
    assert claims(engine) == claims_before  # a gid that just finished is not even claimed


async def test_fire_before_a_moved_deadline_changes_nothing(
    clocked: tuple[TxEngine, ManualClock], bank: Bank, gid: str
) -> None:
    engine, clock = clocked
    await prepare(engine, bank, gid, timeout_ms=10 * TIMEOUT_MS)
    before = await engine.query(gid)
    clock.advance(TIMEOUT_MS / 1000 + 0.1)  # a fire for an earlier deadline arrives now
    engine.poke(gid, "jetstream")
    engine.poke(gid, "jetstream")
    await settle(engine)
    assert snapshot(await engine.query(gid)) == snapshot(before)
    assert ("01", "cancel") not in bank.calls_of(gid)


async def test_duplicate_fires_of_a_due_timeout_abort_it_once(
    clocked: tuple[TxEngine, ManualClock], bank: Bank, gid: str
) -> None:
    engine, clock = clocked
    await prepare(engine, bank, gid, timeout_ms=TIMEOUT_MS)
    clock.advance(TIMEOUT_MS / 1000 + 0.1)
    for source in ("jetstream", "jetstream", "local", "jetstream"):
        engine.poke(gid, source)
    await settle(engine)
    view = await engine.query(gid)
    assert (view.tx.status, view.tx.reason) == (Status.FAILED, "timeout")
    entered = [e.to_status for e in view.history if e.to_status is not None]
    assert entered == [Status.PREPARED, Status.ABORTING, Status.FAILED]
    assert bank.calls_of(gid)[("01", "cancel")] == 1


async def test_fresh_fire_during_a_stale_claim_of_the_same_gid_is_claimed_after_it(
    clocked: tuple[TxEngine, ManualClock], bank: Bank, gid: str
) -> None:
    engine, clock = clocked
    await prepare(engine, bank, gid, timeout_ms=TIMEOUT_MS)
    await engine.driver._local.close()  # only the fires below, no local wake-up
    clock.advance(TIMEOUT_MS / 1000 - 1)
    engine.poke(gid, "jetstream")  # a stale fire (an earlier deadline): its claim runs at "now"
    for _ in range(100):  # until its claim statement is running
        if gid in engine.driver._claiming:
            break
        await asyncio.sleep(0)
    assert gid in engine.driver._claiming
    clock.advance(1.1)  # meanwhile the deadline passed and its fire arrives, during that claim
    engine.poke(gid, "jetstream")
    await settle(engine)
    view = await engine.query(gid)
    assert (view.tx.status, view.tx.reason) == (Status.FAILED, "timeout")
    assert bank.calls_of(gid)[("01", "cancel")] == 1


async def test_failed_hint_claim_is_retried_not_dropped(
    clocked: tuple[TxEngine, ManualClock], db_engine: AsyncEngine, bank: Bank, gid: str
) -> None:
    engine, clock = clocked
    await prepare(engine, bank, gid, timeout_ms=TIMEOUT_MS)
    await engine.driver._local.close()  # only the fire below, no local wake-up, no sweeper
    clock.advance(TIMEOUT_MS / 1000 + 0.1)
    async with table_away(db_engine):
        engine.poke(gid, "jetstream")

        async def queued_again() -> bool:  # its claim failed and the hint waits for the retry
            return claims(engine) >= 1 and gid in engine.driver._hinted

        await eventually(queued_again, bool, within=10, what="the hint queued again after a failed claim")
    clock.advance(CLAIM_RETRY_SECONDS)
    await settle(engine)
    view = await engine.query(gid)
    assert (view.tx.status, view.tx.reason) == (Status.FAILED, "timeout")
    assert bank.calls_of(gid)[("01", "cancel")] == 1
