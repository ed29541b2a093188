"""Assembly of a coordinator replica: database, store, engine, invoker, timers, sweeper, servicer.

``coordinator/__main__.py`` builds one :class:`CoordinatorRuntime` next to its :class:`MeshServer`;
tests build one in-process the same way. NATS is optional at every moment: when it is disabled or
unreachable the replica runs on local wake-ups and the sweeper alone, and connects its JetStream
timers in the background once NATS answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import grpc.aio
from nats.aio.client import Client
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from coordinator.api.admin import AdminService
from coordinator.api.coordinator import CoordinatorService
from coordinator.config import CoordinatorSection, CoordinatorSettings
from coordinator.engine.metrics import EngineMetrics
from coordinator.engine.service import TxEngine, default_replica_id
from coordinator.engine.settings import EngineSettings
from coordinator.invoker import GrpcBranchInvoker
from coordinator.store.retention import FinishedTxCleaner
from coordinator.store.sql import SqlTxStore
from coordinator.store.tables import COMPONENT, VERSIONS
from coordinator.timers.jetstream import JetStreamTimers
from coordinator.timers.sweeper import Sweeper
from meshkit.infra.db import create_engine
from meshkit.infra.migrate import Schema, prepare_schema
from meshkit.infra.nats import connect
from meshkit.observability.metrics import ClientRpcMetrics
from meshkit.rpc.auth import ADMIN, MESH, MESH_OR_ADMIN, Protected, protect
from meshkit.rpc.server import MeshServer
from meshkit.runtime.clock import Clock, SystemClock, now_ms
from meshkit.runtime.ids import Snowflake
from meshkit.runtime.periodic import Periodic
from meshpb.coordinator.v1 import coordinator_pb2, coordinator_pb2_grpc

log = logging.getLogger(__name__)

NATS_RETRY_SECONDS = 5.0
NATS_MAX_RETRY_SECONDS = 60.0
DRAIN_SECONDS = 5.0  # at most this long for running drives to finish on stop

# The coordinator's database components (`python -m coordinator migrate`).
SCHEMA: Schema = ((COMPONENT, VERSIONS),)
_SERVICES = coordinator_pb2.DESCRIPTOR.services_by_name
COORDINATOR_SERVICE = _SERVICES["Coordinator"].full_name
ADMIN_SERVICE = _SERVICES["Admin"].full_name
# Whoever may start a transaction may make the coordinator call any branch with the mesh's credentials,
# so the Coordinator service is mesh-only (Query, a read, also takes the admin token, for meshctl).
# Admin is checked here too, before the body is decoded (the servicer checks again).
PROTECTED: Protected = {
    **protect(COORDINATOR_SERVICE, MESH, [m.name for m in _SERVICES["Coordinator"].methods]),
    **protect(COORDINATOR_SERVICE, MESH_OR_ADMIN, ["Query"]),
    **protect(ADMIN_SERVICE, ADMIN, [m.name for m in _SERVICES["Admin"].methods]),
}


def engine_settings(section: CoordinatorSection, port: int = 0) -> EngineSettings:
    """The engine's settings from the ``coordinator`` config section (seconds -> milliseconds).

    ``port`` (the configured gRPC port) makes the default replica id stable: ``<hostname>:<port>``.
    """
    return EngineSettings(
        replica_id=section.replica_id or default_replica_id(port),
        default_timeout_ms=max(10, round(section.default_timeout_seconds * 1000)),
        default_retry_interval_ms=max(1, round(section.retry_interval_seconds * 1000)),
        default_retry_limit=section.retry_limit,
        default_request_timeout_ms=max(10, round(section.request_timeout_seconds * 1000)),
        max_backoff_ms=max(1, round(section.max_retry_interval_seconds * 1000)),
        jitter=section.retry_jitter,
        lease_ms=max(50, round(section.lease_seconds * 1000)),
        max_concurrent_drives=section.max_concurrent_drives,
    )


@dataclass
class CoordinatorRuntime:
    """Everything one replica runs besides its gRPC server."""

    settings: CoordinatorSettings
    db: AsyncEngine
    store: SqlTxStore
    engine: TxEngine
    invoker: GrpcBranchInvoker
    sweeper: Sweeper
    service: CoordinatorService
    admin: AdminService
    retention: Periodic
    clock: Clock
    _nats: Client | None = None
    _timers: JetStreamTimers | None = None
    _nats_task: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    async def build(
        cls, settings: CoordinatorSettings, registry: CollectorRegistry, *, clock: Clock | None = None
    ) -> CoordinatorRuntime:
        """Migrate (or check) the database and build the engine; nothing runs until :meth:`begin`."""
        clock = clock or SystemClock()
        db = create_engine(settings.db)
        await prepare_schema(db, SCHEMA, migrate=settings.db.migrate_on_start)
        store = SqlTxStore(db, settings.store)
        invoker = GrpcBranchInvoker(auth=settings.auth, metrics=ClientRpcMetrics(registry))
        section = settings.coordinator
        config = engine_settings(section, settings.server.port)
        engine = TxEngine(store, invoker, clock, config, EngineMetrics(registry, replica=config.replica_id))
        sweeper = Sweeper(
            engine, store, clock, interval_seconds=section.sweep_interval_seconds, batch=section.sweep_batch
        )
        service = CoordinatorService(
            engine,
            store,
            Snowflake(settings.server.worker_id, clock),
            settings.server.default_deadline_seconds,
        )
        admin = AdminService(engine, store, settings.admin.token.get_secret_value())
        cleaner = FinishedTxCleaner(
            store, clock, retention_days=section.finished_retention_days, batch=section.retention_batch
        )
        retention = Periodic(
            cleaner.run_once,
            clock,
            section.retention_interval_seconds,
            "coordinator-retention",
            run_at_start=True,
        )
        return cls(settings, db, store, engine, invoker, sweeper, service, admin, retention, clock)

    async def begin(self) -> None:
        """Take over this replica id's previous leases, start the sweeper and (in the background) timers.

        Call only once this process owns the replica's port (:func:`start_replica`): a second process
        started with a live replica's id would otherwise release that replica's leases and drive its
        calls a second time.
        """
        taken = await self.store.take_over(self.engine.owner, now_ms(self.clock))
        if taken:
            log.info(
                "replica %s took over %d transactions it held before it restarted", self.engine.owner, taken
            )
        self.sweeper.start()
        self.retention.start()
        if self.settings.nats.enabled:
            self._nats_task = asyncio.get_running_loop().create_task(self._connect_nats(), name="nats")
        log.info("coordinator replica %s ready", self.engine.owner)

    @classmethod
    async def start(
        cls, settings: CoordinatorSettings, registry: CollectorRegistry, *, clock: Clock | None = None
    ) -> CoordinatorRuntime:
        """:meth:`build` and :meth:`begin` (for a runtime whose server is bound already or not needed)."""
        runtime = await cls.build(settings, registry, clock=clock)
        await runtime.begin()
        return runtime

    def register(self, server: grpc.aio.Server) -> None:
        """Add the Coordinator and Admin servicers to ``server``."""
        coordinator_pb2_grpc.add_CoordinatorServicer_to_server(self.service, server)
        coordinator_pb2_grpc.add_AdminServicer_to_server(self.admin, server)

    @property
    def timers(self) -> JetStreamTimers | None:
        """The JetStream timers once connected (None while NATS is disabled or unreachable)."""
        return self._timers

    async def _connect_nats(self) -> None:
        delay = NATS_RETRY_SECONDS
        while True:
            client: Client | None = None
            try:
                client = await connect(self.settings.nats, f"coordinator-{self.engine.owner}")
                timers = JetStreamTimers(
                    client, self.engine, self.clock, replicas=self.settings.nats.stream_replicas
                )
                await timers.start()
            except Exception as exc:
                log.warning(
                    "JetStream timers unavailable (%s); the sweeper covers; retry in %.0fs", exc, delay
                )
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.close()
                await self.clock.sleep(delay)
                delay = min(NATS_MAX_RETRY_SECONDS, delay * 2)
                continue
            self._nats, self._timers = client, timers
            return

    async def stop(self) -> None:
        """Stop timers, sweeper and drives (leases lapse; other replicas take over), close connections."""
        if self._nats_task is not None:
            self._nats_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._nats_task
        await self.sweeper.stop()
        await self.retention.stop()
        if self._timers is not None:
            await self._timers.stop()
        if self._nats is not None:
            with contextlib.suppress(Exception):
                await self._nats.close()
        await self.engine.close(drain_seconds=min(DRAIN_SECONDS, self.settings.server.grace_seconds))
        await self.invoker.close()
        await self.store.close()
        await self.db.dispose()


async def start_replica(
    settings: CoordinatorSettings, registry: CollectorRegistry, *, clock: Clock | None = None
) -> tuple[CoordinatorRuntime, MeshServer]:
    """Build the runtime, bind its gRPC server, then :meth:`CoordinatorRuntime.begin`.

    The bind is exclusive (no ``SO_REUSEPORT``), so a second process configured with a live replica's
    port fails here, before it could take over that replica's leases. Raises ``RuntimeError`` then.
    """
    runtime = await CoordinatorRuntime.build(settings, registry, clock=clock)
    server = MeshServer(
        settings,
        "coordinator",
        [runtime.register],
        [COORDINATOR_SERVICE, ADMIN_SERVICE],
        registry=registry,
        protected=PROTECTED,
    )
    server.add_stop_hook(runtime.stop)
    try:
        await server.start()
    except BaseException:
        await runtime.stop()
        raise
    try:
        await runtime.begin()
    except BaseException:
        await server.stop(0)
        raise
    return runtime, server
