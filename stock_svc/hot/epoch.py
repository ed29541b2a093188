"""The Redis epoch: how stock_svc tells "no try has run" from "the try's entry was lost with Redis".

A confirm sells only what its try reserved, so a confirm with no try entry in the Redis barrier is
refused "not yet" (:meth:`stock_svc.stock.domain.StockDomain.confirm_reserve`). But a Redis that lost its data
(a restart without AOF) lost the try entries of tries that did run; refusing their confirms forever would
leave the sale unrecorded in the database while the reloaded copy counts its units as available (sold
twice) and the transaction stuck.

So Redis holds an epoch, ``{<namespace>}:epoch``: a random id, set if absent by the first stock_svc that
finds it missing. Every epoch seen is recorded in ``stock_redis_epoch``. Finding the key missing while
the database knows an earlier epoch means the Redis data was lost: the new epoch's row gets ``lost_at``,
one ERROR line is logged (by the replica whose insert wins), and ``mesh_stock_redis_losses_total`` counts
it; ``mesh_stock_redis_last_loss_timestamp_seconds`` shows the latest loss on every replica. For
``barrier.retention_days`` after a loss (the longest a barrier entry lives), a confirm with no try entry
is let through, with a WARNING naming the gid: its try may have run before the loss. Outside that window
it is "not yet", as before.

The epoch is read in the same round trip as the try entry on every confirm, at start and in each
reconciler round; an epoch equal to the one already known costs nothing more. A Redis that never had an
epoch while the database has none either (first start, or an upgrade) is no loss.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from meshkit.runtime.clock import Clock, now_ms
from stock_svc.hot.redis_stock import HotStock
from stock_svc.stock.queries import StockRepo
from stock_svc.stock.tables import stock_redis_epoch

log = logging.getLogger(__name__)


class EpochMetrics:
    """The Prometheus metrics of Redis data losses."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.losses = Counter(
            "mesh_stock_redis_losses_total",
            "Redis data losses this replica found and recorded (the Redis epoch was missing while the "
            "database knew an earlier one).",
            registry=registry,
        )
        self.last_loss = Gauge(
            "mesh_stock_redis_last_loss_timestamp_seconds",
            "When the latest recorded Redis data loss was found (0: none recorded).",
            registry=registry,
        )


@dataclass(frozen=True, slots=True)
class EpochRow:
    """One ``stock_redis_epoch`` row."""

    epoch: str
    first_seen_at: int
    lost_at: int | None


class EpochStore:
    """The ``stock_redis_epoch`` table."""

    def __init__(self, repo: StockRepo) -> None:
        self._repo = repo

    async def rows(self) -> list[EpochRow]:
        """Every epoch recorded."""
        cols = stock_redis_epoch.c
        async with self._repo.transaction() as session:
            found = (await session.execute(select(cols.epoch, cols.first_seen_at, cols.lost_at))).all()
        return [
            EpochRow(str(r.epoch), int(r.first_seen_at), None if r.lost_at is None else int(r.lost_at))
            for r in found
        ]

    async def add(self, row: EpochRow) -> bool:
        """Record ``row``; False when another replica recorded that epoch first."""
        values = {"epoch": row.epoch, "first_seen_at": row.first_seen_at, "lost_at": row.lost_at}
        try:
            async with self._repo.transaction() as session:
                await session.execute(insert(stock_redis_epoch).values(**values))
        except IntegrityError:
            return False
        return True


class RedisEpoch:
    """Follows the Redis epoch, records new ones, and knows when Redis data was last found lost."""

    def __init__(
        self, hot: HotStock, store: EpochStore, clock: Clock, *, window_ms: int, metrics: EpochMetrics
    ) -> None:
        self._hot = hot
        self._store = store
        self._clock = clock
        self._window_ms = window_ms
        self._metrics = metrics
        self._known: str | None = None
        self._last_loss_ms: int | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the epoch from Redis and follow it (start and reconciler rounds)."""
        await self.observe(await self._hot.epoch())

    async def observe(self, epoch: str | None) -> None:
        """Follow ``epoch`` as just read from Redis: claim one when it is missing, record a new one."""
        if epoch is not None and epoch == self._known:
            return
        async with self._lock:
            if epoch is None:
                epoch = await self._hot.claim_epoch(uuid.uuid4().hex)
            if epoch != self._known:
                await self._adopt(epoch)

    def recent_loss_ms(self) -> int | None:
        """When Redis data was found lost, if that was within the window (the barrier retention)."""
        last = self._last_loss_ms
        if last is None or now_ms(self._clock) - last > self._window_ms:
            return None
        return last

    async def _adopt(self, epoch: str) -> None:
        rows = await self._store.rows()
        if all(r.epoch != epoch for r in rows):
            now = now_ms(self._clock)
            row = EpochRow(epoch, now, now if rows else None)
            if await self._store.add(row) and row.lost_at is not None:
                self._metrics.losses.inc()
                log.error(
                    "stock: Redis data lost (epoch missing; the database knows %d earlier); new epoch %s. "
                    "Reservations in flight and barrier entries are gone; confirms without a try entry "
                    "are accepted for the barrier retention",
                    len(rows),
                    epoch,
                    extra={"epoch": epoch},
                )
            rows = await self._store.rows()
        self._known = epoch
        self._last_loss_ms = max((r.lost_at for r in rows if r.lost_at is not None), default=None)
        if self._last_loss_ms is not None:
            self._metrics.last_loss.set(self._last_loss_ms / 1000)
