"""Assembly of an order_svc process: database, migrations, adapters, domain, background work, servicer.

Besides the database and the barrier: the peer channels (stock, pay), the coordinator client, the
deadline messages, the sweeper and the barrier cleanup.

``order_svc/__main__.py`` builds one :class:`OrderRuntime` next to its :class:`MeshServer`; tests build one
in-process the same way (with their own clock).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import grpc.aio
from sqlalchemy.ext.asyncio import AsyncEngine

from meshkit.barrier import BARRIER_VERSIONS, BarrierCleaner, SqlBarrier
from meshkit.branchcall import DEFAULT_CHANNEL_OPTIONS
from meshkit.clock import Clock, SystemClock
from meshkit.db import create_engine
from meshkit.ids import Snowflake
from meshkit.initiator import CoordinatorClient
from meshkit.migrate import upgrade
from meshpb.order.v1 import order_pb2_grpc
from order_svc.branches import OrderBranches
from order_svc.cancelling import Canceller
from order_svc.config import OrderSettings
from order_svc.deadlines import NatsDeadlines
from order_svc.domain import OrderService
from order_svc.mesh import GrpcMesh
from order_svc.models import COMPONENT, VERSIONS
from order_svc.paying import Payer
from order_svc.peers import GrpcCatalogue, GrpcPayments
from order_svc.placement import Placement
from order_svc.repo import OrderRepo
from order_svc.servicer import OrderServicer
from order_svc.sweeper import Sweeper


async def migrate(engine: AsyncEngine) -> None:
    """Create or upgrade the barrier table and the order tables (idempotent)."""
    await upgrade(engine, "barrier", BARRIER_VERSIONS)
    await upgrade(engine, COMPONENT, VERSIONS)


@dataclass
class OrderRuntime:
    """Everything an order_svc process runs besides its gRPC server."""

    settings: OrderSettings
    db: AsyncEngine
    service: OrderService
    deadlines: NatsDeadlines
    sweeper: Sweeper
    coordinator: CoordinatorClient
    channels: list[grpc.aio.Channel]
    _cleanup: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    async def start(cls, settings: OrderSettings, *, clock: Clock | None = None) -> OrderRuntime:
        """Migrate, build the domain and its adapters, start deadlines, sweeper and barrier cleanup."""
        clock = clock or SystemClock()
        db = create_engine(settings.db)
        try:
            await migrate(db)
        except BaseException:
            await db.dispose()
            raise
        section, peers = settings.order, settings.peers
        repo = OrderRepo(db)
        barrier = SqlBarrier(db, clock)
        coordinator = CoordinatorClient(peers.coordinator)
        stock = grpc.aio.insecure_channel(peers.stock, options=DEFAULT_CHANNEL_OPTIONS)
        pay = grpc.aio.insecure_channel(peers.pay, options=DEFAULT_CHANNEL_OPTIONS)
        deadlines = NatsDeadlines(settings.nats, clock, section.pay_timeout_seconds)
        mesh = GrpcMesh(coordinator, peers, section, barrier)
        canceller = Canceller(repo, mesh, clock)
        service = OrderService(
            repo=repo,
            placement=Placement(
                repo=repo,
                mesh=mesh,
                catalogue=GrpcCatalogue(stock, section.request_timeout_seconds),
                ids=Snowflake(settings.server.worker_id, clock),
                clock=clock,
                settings=section,
            ),
            payer=Payer(repo, mesh, GrpcPayments(pay, section.request_timeout_seconds), canceller, clock),
            canceller=canceller,
            branches=OrderBranches(repo, barrier, deadlines, clock, section),
            clock=clock,
            settings=section,
        )
        sweeper = Sweeper(service.sweep_once, clock, section.sweep_interval_seconds)
        runtime = cls(settings, db, service, deadlines, sweeper, coordinator, [stock, pay])
        deadlines.start(service.expire)
        sweeper.start()
        runtime._cleanup = asyncio.get_running_loop().create_task(
            BarrierCleaner(db, settings.barrier, clock).run_forever(), name="barrier-cleanup"
        )
        return runtime

    def register(self, server: grpc.aio.Server) -> None:
        """Add the Order servicer to ``server``."""
        order_pb2_grpc.add_OrderServicer_to_server(OrderServicer(self.service), server)

    async def stop(self) -> None:
        """Stop the background work, close the peer channels and the database pool."""
        await self.sweeper.stop()
        await self.deadlines.stop()
        if self._cleanup is not None:
            self._cleanup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cleanup
        await self.coordinator.close()
        await asyncio.gather(*(channel.close() for channel in self.channels), return_exceptions=True)
        await self.db.dispose()
