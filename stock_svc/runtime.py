"""Assembly of stock_svc: database (migrated), store runner, Redis, barriers, domain, servicer, cleanup.

``__main__`` builds one :class:`StockRuntime` next to its :class:`~meshkit.rpc.server.MeshServer` and
registers :meth:`StockRuntime.stop` as a stop hook; tests build one in-process the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import grpc.aio
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from meshkit.barrier import (
    BARRIER_VERSIONS,
    BarrierCleaner,
    BarrierMetrics,
    RedisBarrier,
    RedisBarrierCleaner,
    RunnerBarrier,
)
from meshkit.errors import TransientError
from meshkit.infra.db import create_engine
from meshkit.infra.migrate import Schema, prepare_schema
from meshkit.infra.redis_persistence import check_persistence
from meshkit.rpc.auth import ADMIN, MESH, MESH_OR_ADMIN, Protected, protect
from meshkit.runtime.clock import Clock, SystemClock, days_to_ms
from meshkit.runtime.periodic import Periodic
from meshkit.store import StoreRunner
from meshkit.tx.finality import CoordinatorFinality
from meshpb.stock.v1 import stock_pb2, stock_pb2_grpc
from stock_svc.api.servicer import StockServicer
from stock_svc.config import StockSettings
from stock_svc.hot.epoch import EpochMetrics, EpochStore, RedisEpoch
from stock_svc.hot.reconciler import StockReconciler
from stock_svc.hot.redis_stock import HotStock
from stock_svc.migrations import STOCK_VERSIONS
from stock_svc.stock.domain import StockDomain, StockStores
from stock_svc.stock.queries import StockRepo

log = logging.getLogger(__name__)

SERVICE_NAME = stock_pb2.DESCRIPTOR.services_by_name["Stock"].full_name
# Branch RPCs: mesh credentials only; restocking: operators only (README "Threat model").
PROTECTED: Protected = {
    **protect(SERVICE_NAME, MESH, ["TryReserve", "ConfirmReserve", "CancelReserve", "ReleaseStock"]),
    **protect(SERVICE_NAME, ADMIN, ["PutSku"]),
    **protect(SERVICE_NAME, MESH_OR_ADMIN, ["Audit"]),
}
COMPONENT = "stock"
# This process's database components, in upgrade order (`python -m stock_svc migrate`).
SCHEMA: Schema = (("barrier", BARRIER_VERSIONS), (COMPONENT, STOCK_VERSIONS))
# A Redis that stops answering fails the call (UNAVAILABLE, retried by the caller) instead of hanging it.
REDIS_TIMEOUT_SECONDS = 5.0


@dataclass
class StockRuntime:
    """Everything stock_svc runs besides its gRPC server."""

    settings: StockSettings
    db: AsyncEngine
    runner: StoreRunner
    redis: Redis
    domain: StockDomain
    cleaner: BarrierCleaner
    redis_cleaner: RedisBarrierCleaner
    finality: CoordinatorFinality
    clock: Clock
    _cleaner_tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)
    reconciler: StockReconciler = field(init=False, repr=False)
    _reconcile: Periodic | None = field(default=None, init=False, repr=False)

    @classmethod
    async def start(
        cls, settings: StockSettings, *, clock: Clock | None = None, registry: CollectorRegistry | None = None
    ) -> StockRuntime:
        """Migrate, open the store runner, connect Redis, build the domain, start cleanups and reconciler.

        The database halves of the branch ops, PutSku and the hot reads run on the runner; the engine keeps
        the migrations, the audit, the reconciler, the Redis epoch and the barrier cleanup.
        """
        clock = clock or SystemClock()
        registry = registry if registry is not None else CollectorRegistry()
        outcomes = BarrierMetrics(registry, "stock_svc")
        db = create_engine(settings.db)
        redis: Redis | None = None
        runner: StoreRunner | None = None
        try:
            await prepare_schema(db, SCHEMA, migrate=settings.db.migrate_on_start)
            runner = StoreRunner.for_engine(db, settings.store)
            redis = Redis.from_url(
                settings.redis.url,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
            )
            await check_persistence(redis, settings.redis.persistence_check)
            marker_ttl_ms = int(settings.stock.restock_marker_ttl_seconds * 1000)
            hot = HotStock(
                redis,
                RedisBarrier(redis, clock, metrics=outcomes),
                settings.stock.redis_namespace,
                marker_ttl_ms,
            )
            repo = StockRepo(db, clock)
            epoch = RedisEpoch(
                hot,
                EpochStore(repo),
                clock,
                window_ms=days_to_ms(settings.barrier.retention_days),
                metrics=EpochMetrics(registry),
            )
            stores = StockStores(runner, RunnerBarrier(runner, clock, metrics=outcomes), repo, hot, epoch)
            domain = StockDomain(stores, settings.stock, clock)
            await _check_epoch(domain)
        except BaseException:
            if redis is not None:
                await redis.aclose()
            if runner is not None:
                await runner.close()
            await db.dispose()
            raise
        finality = CoordinatorFinality.of(settings.peers.coordinator, settings.auth)
        cleaner = BarrierCleaner(db, settings.barrier, clock, finality)
        redis_cleaner = RedisBarrierCleaner(redis, settings.barrier, clock, finality)
        runtime = cls(settings, db, runner, redis, domain, cleaner, redis_cleaner, finality, clock)
        loop = asyncio.get_running_loop()
        runtime._cleaner_tasks = [
            loop.create_task(cleaner.run_forever(), name="stock-barrier-cleanup"),
            loop.create_task(redis_cleaner.run_forever(), name="stock-redis-barrier-cleanup"),
        ]
        runtime.reconciler = StockReconciler.build(settings, (domain, repo, hot), clock, registry)
        runtime._reconcile = runtime.reconciler.periodic(settings.stock.reconcile_interval_seconds)
        runtime._reconcile.start()
        log.info("stock_svc ready")
        return runtime

    def register(self, server: grpc.aio.Server) -> None:
        """Add the Stock servicer to ``server``."""
        stock_pb2_grpc.add_StockServicer_to_server(StockServicer(self.domain), server)

    async def stop(self) -> None:
        """Stop the cleanups and reconciler, close the coordinator channel, Redis, the runner and the pool."""
        if self._reconcile is not None:
            await self.reconciler.drain()
            await self._reconcile.stop()
        for task in self._cleaner_tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.finality.close()
        await self.redis.aclose()
        await self.runner.close()
        await self.db.dispose()


async def _check_epoch(domain: StockDomain) -> None:
    """Follow the Redis epoch at start; an unreachable Redis is checked again by the reconciler."""
    try:
        await domain.check_redis_epoch()
    except TransientError as exc:
        log.warning("stock: Redis epoch not checked at start: %s", exc)
