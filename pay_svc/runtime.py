"""Assembly of pay_svc: database and migrations, store runner, domain, gateway, adapters, background loops.

``pay_svc/__main__.py`` builds one :class:`PayRuntime` next to its :class:`MeshServer`; tests build
one in-process the same way (with a :class:`meshkit.runtime.clock.ManualClock` if they want to move time).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc.aio
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from meshkit.barrier import BARRIER_VERSIONS, BarrierCleaner, BarrierMetrics, RunnerBarrier
from meshkit.infra.db import create_engine
from meshkit.infra.migrate import Schema, prepare_schema, upgrade_all
from meshkit.observability.metrics import ClientRpcMetrics
from meshkit.rpc.auth import ADMIN, MESH, MESH_OR_ADMIN, Protected, protect
from meshkit.runtime.clock import Clock, SystemClock
from meshkit.runtime.ids import Snowflake
from meshkit.store import StoreRunner
from meshkit.tx.finality import CoordinatorFinality
from meshpb.pay.v1 import pay_pb2, pay_pb2_grpc
from pay_svc.adapters.grpc_clients import GrpcCallbackClient, GrpcOrderClient, own_address
from pay_svc.api.servicer import PayServicer
from pay_svc.background import Background, run_periodically
from pay_svc.config import PaySettings
from pay_svc.gateway.simulator import GatewaySimulator
from pay_svc.payments.domain import PayDomain
from pay_svc.payments.tables import VERSIONS_DIR

SERVICE_NAME = pay_pb2.DESCRIPTOR.services_by_name["Pay"].full_name
# Payments are created by order_svc and refunded through the order's cancel chain; a refund by hand
# is an operator's act. Callback carries the gateway's own signature; GetPayment is a read.
PROTECTED: Protected = {
    **protect(SERVICE_NAME, MESH, ["CreatePayment", "RefundBranch"]),
    **protect(SERVICE_NAME, ADMIN, ["Refund"]),
    **protect(SERVICE_NAME, MESH_OR_ADMIN, ["Audit"]),
}


# This process's database components, in upgrade order (`python -m <process> migrate`).
SCHEMA: Schema = (("barrier", BARRIER_VERSIONS), ("pay", VERSIONS_DIR))


async def migrate(engine: AsyncEngine) -> None:
    """Create or upgrade the barrier table and pay_svc's tables."""
    await upgrade_all(engine, SCHEMA)


@dataclass
class PayRuntime:
    """Everything pay_svc runs besides its gRPC server."""

    settings: PaySettings
    clock: Clock
    db: AsyncEngine
    store: StoreRunner  # the hot path: RefundBranch and Refund
    domain: PayDomain
    gateway: GatewaySimulator
    order: GrpcOrderClient
    callbacks: GrpcCallbackClient
    background: Background
    finality: CoordinatorFinality  # the barrier cleaner's view of the coordinator

    @classmethod
    async def start(
        cls,
        settings: PaySettings,
        *,
        clock: Clock | None = None,
        background: bool = True,
        registry: CollectorRegistry | None = None,
    ) -> PayRuntime:
        """Migrate, build the domain and, unless ``background`` is False, start the background loops.

        ``registry`` (the server's) gets the barrier-outcome and client RPC metrics.
        """
        clock = clock or SystemClock()
        registry = registry if registry is not None else CollectorRegistry()
        db = create_engine(settings.db)
        await prepare_schema(db, SCHEMA, migrate=settings.db.migrate_on_start)
        section = settings.pay
        store = StoreRunner.for_engine(db, settings.store)
        order = GrpcOrderClient(
            settings.peers.order, section.order_call_seconds, settings.auth, ClientRpcMetrics(registry)
        )
        domain = PayDomain(
            db,
            settings=section,
            clock=clock,
            ids=Snowflake(settings.server.worker_id, clock),
            order=order,
            store=store,
            barrier=RunnerBarrier(store, clock, metrics=BarrierMetrics(registry, "pay_svc")),
        )
        callbacks = GrpcCallbackClient(settings.server.default_deadline_seconds)
        gateway = GatewaySimulator(domain, callbacks, clock, section)
        finality = CoordinatorFinality.of(settings.peers.coordinator, settings.auth)
        runtime = cls(settings, clock, db, store, domain, gateway, order, callbacks, Background(), finality)
        if background:
            runtime.start_background()
        return runtime

    def start_background(self) -> None:
        """Start the order notifier, the nonce cleanup and the barrier cleanup."""
        section = self.settings.pay
        self.background.start(
            "pay-notifier",
            run_periodically(
                "order notifier", self.domain.notify_due, self.clock, section.notify_interval_seconds
            ),
        )
        self.background.start(
            "pay-nonce-cleanup",
            run_periodically(
                "nonce cleanup", self.domain.clean_nonces, self.clock, section.nonce_cleanup_interval_seconds
            ),
        )
        cleaner = BarrierCleaner(self.db, self.settings.barrier, self.clock, self.finality)
        self.background.start("pay-barrier-cleanup", cleaner.run_forever())

    def register(self, server: grpc.aio.Server) -> None:
        """Add the Pay servicer to ``server``."""
        pay_pb2_grpc.add_PayServicer_to_server(PayServicer(self.domain, self.gateway), server)

    def bind(self, port: int) -> None:
        """The server listens on ``port``: the simulated gateway calls back there."""
        self.callbacks.bind(own_address(self.settings.server.host, port))

    async def stop(self) -> None:
        """Stop background work and delayed callbacks, close channels and the database."""
        await self.background.stop()
        await self.gateway.close()
        await self.callbacks.close()
        await self.order.close()
        await self.finality.close()
        await self.store.close()
        await self.db.dispose()
