"""``max_concurrent_drives`` bounds the drives of one replica, however its claims interleave.

Real engine and store (SQLite and MariaDB), real gRPC invoker and participant, manual clock.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from coordinator.engine.commands import OptionsInput, PrepareCommand
from coordinator.engine.model import BranchSpec, Mode, Status
from coordinator.engine.service import TxEngine
from coordinator.engine.settings import EngineSettings
from tests.integration.coordinator.clocked import clocked_engine, settle
from tests.integration.coordinator.participants import Bank, payload

LIMIT = 4
TIMEOUT_MS = 60_000


async def prepare(engine: TxEngine, bank: Bank, gid: str) -> None:
    branch = BranchSpec(
        "01",
        action=bank.target("Try"),
        confirm=bank.target("Confirm"),
        cancel=bank.target("Cancel"),
        payload=payload("a", 1),
    )
    options = OptionsInput(timeout_ms=TIMEOUT_MS)
    await engine.prepare(PrepareCommand(gid=gid, mode=int(Mode.TCC), options=options, branches=(branch,)))


def running_drives(engine: TxEngine) -> int:
    """Drives of claimed transactions alive right now (hint claims and sweeps)."""
    return sum(
        1
        for task in engine.driver._tasks
        if not task.done() and task.get_name().startswith(("drive-", "sweep-"))
    )


async def test_hint_claim_and_sweep_together_stay_within_max_concurrent_drives(
    db_engine: AsyncEngine, bank: Bank, gid: str
) -> None:
    settings = EngineSettings(replica_id="bound", jitter=0.0, lease_ms=5_000, max_concurrent_drives=LIMIT)
    async with clocked_engine(db_engine, settings) as (engine, clock):
        gids = [f"{gid}-{i:02d}" for i in range(12)]
        for one in gids:
            await prepare(engine, bank, one)
        await engine.driver._local.close()  # only the hints below, no local wake-ups
        clock.advance(TIMEOUT_MS / 1000 + 0.1)
        peak_slots = peak_drives = 0
        stop = False

        async def sample() -> None:
            nonlocal peak_slots, peak_drives
            while not stop:
                peak_slots = max(peak_slots, engine.driver._claimed_running)
                peak_drives = max(peak_drives, running_drives(engine))
                await asyncio.sleep(0)

        sampler = asyncio.create_task(sample())
        for one in reversed(gids):  # the hint batch takes the newest, the sweep the most overdue
            engine.poke(one, "jetstream")
        swept = await engine.sweep(100)
        await engine.idle()
        stop = True
        await sampler
        assert 1 <= swept <= LIMIT
        assert peak_slots <= LIMIT
        assert 1 <= peak_drives <= LIMIT
        for one in gids:  # the hints the full replica could not take at once were claimed later
            view = await engine.query(one)
            assert (view.tx.status, view.tx.reason) == (Status.FAILED, "timeout")


async def test_hint_waiting_for_the_slot_of_a_direct_drive_is_claimed_when_it_ends(
    db_engine: AsyncEngine, bank: Bank, gid: str
) -> None:
    settings = EngineSettings(replica_id="slot", jitter=0.0, lease_ms=5_000, max_concurrent_drives=1)
    async with clocked_engine(db_engine, settings) as (engine, clock):
        busy, hinted = f"{gid}-busy", f"{gid}-hinted"
        await prepare(engine, bank, hinted)
        await engine.driver._local.close()  # only the hint below, no local wake-ups
        clock.advance(TIMEOUT_MS / 1000 + 0.1)
        await prepare(engine, bank, busy)  # not due: its direct drive claims nothing
        await engine.driver._local.close()
        direct = asyncio.create_task(engine.drive(busy))
        await asyncio.sleep(0)  # the direct drive holds the only slot during its claim
        assert engine.driver._claimed_running == 1
        engine.poke(hinted, "jetstream")
        assert not engine.driver._claimer
        assert await direct is None
        await settle(engine)
        view = await engine.query(hinted)
        assert (view.tx.status, view.tx.reason) == (Status.FAILED, "timeout")
