"""Assembly of a points_svc process: database, store runner, barrier, cleaner, domain, servicer.

``points_svc/__main__.py`` builds one :class:`PointsRuntime` next to its :class:`MeshServer`; tests
build one in-process the same way (with their own clock).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import grpc.aio
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from meshkit.barrier import BARRIER_VERSIONS, BarrierCleaner, BarrierMetrics, RunnerBarrier
from meshkit.infra.db import create_engine
from meshkit.infra.migrate import Schema, prepare_schema, upgrade_all
from meshkit.rpc.auth import ADMIN, MESH, MESH_OR_ADMIN, Protected, protect
from meshkit.runtime.clock import Clock, SystemClock
from meshkit.store import StoreRunner
from meshkit.tx.finality import CoordinatorFinality
from meshpb.points.v1 import points_pb2, points_pb2_grpc
from points_svc.api.servicer import PointsServicer
from points_svc.config import PointsSettings
from points_svc.ledger.domain import Points
from points_svc.ledger.queries import PointsRepo
from points_svc.ledger.tables import COMPONENT, POINTS_VERSIONS

SERVICE_NAME = points_pb2.DESCRIPTOR.services_by_name["Points"].full_name
# Branch RPCs: mesh credentials only; granting and refunding by hand: operators only.
PROTECTED: Protected = {
    **protect(
        SERVICE_NAME,
        MESH,
        ["TryFreeze", "ConfirmFreeze", "CancelFreeze", "TryDeduct", "ConfirmDeduct", "CancelDeduct"],
    ),
    **protect(SERVICE_NAME, MESH, ["RefundBranch"]),
    **protect(SERVICE_NAME, ADMIN, ["Grant", "Refund"]),
    **protect(SERVICE_NAME, MESH_OR_ADMIN, ["Audit"]),
}


# This process's database components, in upgrade order (`python -m <process> migrate`).
SCHEMA: Schema = (("barrier", BARRIER_VERSIONS), (COMPONENT, POINTS_VERSIONS))


async def migrate(engine: AsyncEngine) -> None:
    """Create or upgrade the barrier table and the points tables (idempotent)."""
    await upgrade_all(engine, SCHEMA)


@dataclass
class PointsRuntime:
    """Everything a points_svc process runs besides its gRPC server."""

    settings: PointsSettings
    db: AsyncEngine
    runner: StoreRunner
    points: Points
    cleaner: BarrierCleaner
    finality: CoordinatorFinality
    _cleanup: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    async def start(
        cls,
        settings: PointsSettings,
        *,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
    ) -> PointsRuntime:
        """Migrate the database, open the store runner, build the domain, start the barrier cleanup.

        The hot path (branch ops, Grant, Refund, GetAccount) runs on the runner; the engine keeps the
        migrations, the audit and the barrier cleanup. ``registry`` (the server's) gets the
        barrier-outcome metrics.
        """
        clock = clock or SystemClock()
        db = create_engine(settings.db)
        try:
            await prepare_schema(db, SCHEMA, migrate=settings.db.migrate_on_start)
            runner = StoreRunner.for_engine(db, settings.store)
        except BaseException:
            await db.dispose()
            raise
        points = Points(
            runner,
            RunnerBarrier(
                runner, clock, metrics=BarrierMetrics(registry or CollectorRegistry(), "points_svc")
            ),
            PointsRepo(db),
            clock,
            settings.points,
        )
        finality = CoordinatorFinality.of(settings.peers.coordinator, settings.auth)
        cleaner = BarrierCleaner(db, settings.barrier, clock, finality)
        runtime = cls(settings, db, runner, points, cleaner, finality)
        runtime._cleanup = asyncio.get_running_loop().create_task(
            cleaner.run_forever(), name="barrier-cleanup"
        )
        return runtime

    def register(self, server: grpc.aio.Server) -> None:
        """Add the Points servicer to ``server``."""
        points_pb2_grpc.add_PointsServicer_to_server(PointsServicer(self.points), server)

    async def stop(self) -> None:
        """Stop the cleanup, close the store runner (after the units already submitted) and the pool."""
        if self._cleanup is not None:
            self._cleanup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cleanup
        await self.finality.close()
        await self.runner.close()
        await self.db.dispose()
