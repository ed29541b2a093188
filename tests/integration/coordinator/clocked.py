"""A coordinator engine on a manual clock over a real store and a real gRPC invoker, for engine tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from coordinator.engine.metrics import EngineMetrics
from coordinator.engine.service import TxEngine
from coordinator.engine.settings import EngineSettings
from coordinator.invoker import GrpcBranchInvoker
from coordinator.store.sql import SqlTxStore, migrate
from meshkit.runtime.clock import ManualClock


@asynccontextmanager
async def clocked_engine(
    db_engine: AsyncEngine,
    settings: EngineSettings,
    *,
    metrics: EngineMetrics | None = None,
    invoker: GrpcBranchInvoker | None = None,
) -> AsyncIterator[tuple[TxEngine, ManualClock]]:
    """A :class:`TxEngine` on ``db_engine`` (migrated) and a :class:`ManualClock` at now; closed on exit."""
    await migrate(db_engine)
    clock = ManualClock(start=time.time())
    invoker = invoker or GrpcBranchInvoker()
    store = SqlTxStore(db_engine)
    engine = TxEngine(store, invoker, clock, settings, metrics or EngineMetrics(CollectorRegistry()))
    try:
        yield engine, clock
    finally:
        await engine.close()
        await invoker.close()
        await store.close()


async def settle(engine: TxEngine) -> None:
    """Let the tasks the engine just started run, then wait until it is idle."""
    for _ in range(10):
        await asyncio.sleep(0)
    await engine.idle()
