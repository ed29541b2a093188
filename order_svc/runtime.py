"""Assembly of an order_svc process: database, migrations, adapters, domain, background work, servicer.

Besides the database, the store runner (one per process: branch ops and PlaceOrder's request record) and
the barriers: the peer channels (stock, pay), the coordinator client, the deadline messages, the sweeper
and the barrier cleanup; for the flash sale a Redis client (connecting
lazily: order_svc starts without Redis, only the flash RPCs need it), the work queue with this replica's
workers and the restock broadcast (NATS, connected in the background), and the flash sweeper.

``order_svc/__main__.py`` builds one :class:`OrderRuntime` next to its :class:`MeshServer`; tests build one
in-process the same way (with their own clock).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import grpc.aio
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from meshkit.barrier import BARRIER_VERSIONS, BarrierCleaner, BarrierMetrics, RunnerBarrier
from meshkit.infra.db import create_engine
from meshkit.infra.migrate import Schema, prepare_schema, upgrade_all
from meshkit.observability.metrics import ClientRpcMetrics
from meshkit.rpc.auth import ADMIN, MESH, MESH_OR_ADMIN, Protected, mesh_channel, protect
from meshkit.runtime.clock import Clock, SystemClock
from meshkit.runtime.ids import Snowflake
from meshkit.runtime.periodic import Periodic
from meshkit.store import StoreRunner
from meshkit.tx.branchcall import DEFAULT_CHANNEL_OPTIONS
from meshkit.tx.finality import CoordinatorFinality
from meshkit.tx.initiator import CoordinatorClient
from meshpb.order.v1 import order_pb2, order_pb2_grpc
from order_svc.adapters.coordinator import GrpcMesh
from order_svc.adapters.deadline_timer import NatsDeadlines
from order_svc.adapters.peers import GrpcCatalogue, GrpcPayments
from order_svc.api.servicer import OrderServicer
from order_svc.cancelling import Canceller
from order_svc.config import OrderSettings
from order_svc.flash.flags import SoldOutFlags
from order_svc.flash.hot import FlashHot
from order_svc.flash.jobs import FlashJobs
from order_svc.flash.queries import FlashRepo
from order_svc.flash.queue import NatsFlashQueue
from order_svc.flash.sales import SaleBook
from order_svc.flash.service import FlashService
from order_svc.migrations import COMPONENT, VERSIONS
from order_svc.orders.branches import OrderBranches
from order_svc.orders.queries import OrderRepo
from order_svc.paying import Payer
from order_svc.placing.place_order import Placement
from order_svc.service import OrderService

REDIS_TIMEOUT_SECONDS = 2.0
SERVICE_NAME = order_pb2.DESCRIPTOR.services_by_name["Order"].full_name
# Branch RPCs, the MSG check-back and pay_svc's notice: mesh credentials only; sales: operators only.
PROTECTED: Protected = {
    **protect(
        SERVICE_NAME,
        MESH,
        ["TryCreate", "ConfirmCreate", "CancelCreate", "TryMarkPaid", "ConfirmMarkPaid", "CancelMarkPaid"],
    ),
    **protect(SERVICE_NAME, MESH, ["QueryPrepared", "FinishRefund", "PaymentSucceeded"]),
    **protect(SERVICE_NAME, ADMIN, ["PutFlashSale"]),
    **protect(SERVICE_NAME, MESH_OR_ADMIN, ["Audit"]),
}


# This process's database components, in upgrade order (`python -m <process> migrate`).
SCHEMA: Schema = (("barrier", BARRIER_VERSIONS), (COMPONENT, VERSIONS))


async def migrate(engine: AsyncEngine) -> None:
    """Create or upgrade the barrier table and the order tables (idempotent)."""
    await upgrade_all(engine, SCHEMA)


@dataclass
class OrderRuntime:
    """Everything an order_svc process runs besides its gRPC server."""

    settings: OrderSettings
    db: AsyncEngine
    store: StoreRunner  # the hot path: branch ops and PlaceOrder's request record
    service: OrderService
    deadlines: NatsDeadlines
    sweeper: Periodic
    coordinator: CoordinatorClient
    channels: list[grpc.aio.Channel]
    redis: Redis
    flash: FlashService
    flash_jobs: FlashJobs
    flash_queue: NatsFlashQueue
    flash_sweeper: Periodic
    _cleanup: asyncio.Task[None] | None = field(default=None, repr=False)
    _finality: CoordinatorFinality | None = field(default=None, repr=False)

    @classmethod
    async def start(
        cls, settings: OrderSettings, *, clock: Clock | None = None, registry: CollectorRegistry | None = None
    ) -> OrderRuntime:
        """Migrate, build the domain and its adapters, start deadlines, sweeper and barrier cleanup.

        ``registry`` (the server's) gets the barrier-outcome and client RPC metrics.
        """
        clock = clock or SystemClock()
        registry = registry if registry is not None else CollectorRegistry()
        outcomes = BarrierMetrics(registry, "order_svc")
        calls = ClientRpcMetrics(registry)
        db = create_engine(settings.db)
        try:
            await prepare_schema(db, SCHEMA, migrate=settings.db.migrate_on_start)
        except BaseException:
            await db.dispose()
            raise
        section, peers = settings.order, settings.peers
        store = StoreRunner.for_engine(db, settings.store)
        repo = OrderRepo(db, store)
        barrier = RunnerBarrier(store, clock, metrics=outcomes)
        coordinator = CoordinatorClient(peers.coordinator, auth=settings.auth, metrics=calls)
        stock = mesh_channel(peers.stock, settings.auth, options=DEFAULT_CHANNEL_OPTIONS, metrics=calls)
        pay = mesh_channel(peers.pay, settings.auth, options=DEFAULT_CHANNEL_OPTIONS, metrics=calls)
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
            branches=OrderBranches(barrier, deadlines, clock, section),
            clock=clock,
            settings=section,
        )
        sweeper = Periodic(service.sweep_once, clock, section.sweep_interval_seconds, "order-sweeper")
        redis = Redis.from_url(
            settings.redis.url,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )
        flash, jobs, queue = cls._flash(
            settings, clock=clock, db=db, redis=redis, service=service, stock=stock
        )
        flash_sweeper = Periodic(
            jobs.sweep_once, clock, section.flash_sweep_interval_seconds, "flash-sweeper"
        )
        runtime = cls(
            settings,
            db,
            store,
            service,
            deadlines,
            sweeper,
            coordinator,
            [stock, pay],
            redis,
            flash,
            jobs,
            queue,
            flash_sweeper,
        )
        deadlines.start(service.expire_many)
        sweeper.start()
        queue.start(jobs.run, flash.on_restocked)
        flash_sweeper.start()
        runtime._finality = CoordinatorFinality.of(settings.peers.coordinator, settings.auth)
        cleaner = BarrierCleaner(db, settings.barrier, clock, runtime._finality)
        runtime._cleanup = asyncio.get_running_loop().create_task(
            cleaner.run_forever(), name="barrier-cleanup"
        )
        return runtime

    @staticmethod
    def _flash(
        settings: OrderSettings,
        *,
        clock: Clock,
        db: AsyncEngine,
        redis: Redis,
        service: OrderService,
        stock: grpc.aio.Channel,
    ) -> tuple[FlashService, FlashJobs, NatsFlashQueue]:
        """The flash sale's domain, workers and work queue."""
        section = settings.order
        repo = FlashRepo(db)
        hot = FlashHot(redis, section.flash_namespace)
        sales = SaleBook(repo, hot, clock, section)
        flags = SoldOutFlags(clock, section.flash_sold_out_ttl_seconds)
        queue = NatsFlashQueue(settings.nats, section, clock, f"order_svc-{settings.server.worker_id}")
        flash = FlashService(
            repo=repo,
            sales=sales,
            hot=hot,
            queue=queue,
            flags=flags,
            catalogue=GrpcCatalogue(stock, section.request_timeout_seconds),
            clock=clock,
            settings=section,
        )
        jobs = FlashJobs(
            repo=repo,
            sales=sales,
            hot=hot,
            queue=queue,
            flags=flags,
            placement=service.placement,
            clock=clock,
            settings=section,
        )
        return flash, jobs, queue

    def register(self, server: grpc.aio.Server) -> None:
        """Add the Order servicer to ``server``."""
        order_pb2_grpc.add_OrderServicer_to_server(OrderServicer(self.service, self.flash), server)

    async def stop(self) -> None:
        """Stop the background work, close the peer channels, Redis and the database pool."""
        await self.flash_sweeper.stop()
        await self.flash_queue.stop()
        await self.sweeper.stop()
        await self.deadlines.stop()
        if self._cleanup is not None:
            self._cleanup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cleanup
        if self._finality is not None:
            await self._finality.close()
        await self.coordinator.close()
        await asyncio.gather(*(channel.close() for channel in self.channels), return_exceptions=True)
        await self.redis.aclose()
        await self.store.close()
        await self.db.dispose()
