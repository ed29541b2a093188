"""A JetStream timer fire is acked only once its gid was claimed (or found not due), never before.

Real engine and store (SQLite and MariaDB), real gRPC participant, a nats-server of its own; the
engine's clock is manual, the fire itself comes from a real message schedule due now.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy.ext.asyncio import AsyncEngine

from coordinator.engine.commands import OptionsInput, PrepareCommand
from coordinator.engine.driver import CLAIM_RETRY_SECONDS
from coordinator.engine.model import BranchSpec, Mode, Status
from coordinator.engine.service import TxEngine
from coordinator.engine.settings import EngineSettings
from coordinator.timers.jetstream import FIRE_PREFIX, STREAM, JetStreamTimers, subject_token
from meshctl.stack.embedded import NatsServer
from meshkit.infra.nats import connect
from meshkit.settings.config import NatsSettings
from tests.integration.asserts import eventually
from tests.integration.coordinator.clocked import clocked_engine, settle
from tests.integration.coordinator.failing_claims import table_away
from tests.integration.coordinator.participants import Bank, payload

TIMEOUT_MS = 60_000


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


async def fire_in_stream(js: JetStreamContext, gid: str) -> bool:
    """Whether the fired message of ``gid`` is still in the work-queue stream (i.e. not acked)."""
    try:
        await js.get_last_msg(STREAM, f"{FIRE_PREFIX}.{subject_token(gid)}")
    except NotFoundError:
        return False
    return True


async def test_jetstream_fire_is_acked_only_after_its_claim(
    db_engine: AsyncEngine, nats: NatsServer, bank: Bank, gid: str
) -> None:
    settings = EngineSettings(replica_id="acks", jitter=0.0, lease_ms=5_000)
    async with clocked_engine(db_engine, settings) as (engine, clock):
        await prepare(engine, bank, gid)
        await engine.driver._local.close()  # only the JetStream fire below, no local wake-up
        clock.advance(TIMEOUT_MS / 1000 + 0.1)
        client = await connect(NatsSettings(url=nats.url), "test-timer-acks")
        timers = JetStreamTimers(client, engine, clock)
        try:
            await timers.start()
            js = client.jetstream()
            async with table_away(db_engine):  # the claim fails until the table is back
                timers.schedule(gid, int(time.time() * 1000))  # fires at once

                async def claims() -> float:
                    return engine.metrics.registry.get_sample_value("mesh_timer_claims_total") or 0.0

                await eventually(claims, lambda made: made >= 1, within=10, what="a claim of the fired gid")
                assert await fire_in_stream(js, gid)  # fetched, its claim failed: not acked
            clock.advance(CLAIM_RETRY_SECONDS)
            await eventually(
                lambda: fire_in_stream(js, gid), lambda kept: not kept, within=10, what="the fire acked"
            )
            await settle(engine)
            view = await engine.query(gid)
            assert (view.tx.status, view.tx.reason) == (Status.FAILED, "timeout")
            assert bank.calls_of(gid)[("01", "cancel")] == 1
        finally:
            await timers.stop()
            await client.close()


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
