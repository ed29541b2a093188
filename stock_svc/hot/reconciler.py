"""The stock reconciler: finds and repairs drift between the database and Redis, at start and periodically.

A round first follows the Redis epoch (records a Redis data loss, :mod:`stock_svc.hot.epoch`), then does two
things:

1. **Owed restocks.** Every ``stock_restock`` row whose Redis half is not recorded as done (the PutSku
   call died between its halves and no client retried) and that is older than
   ``stock.reconcile_grace_seconds`` gets that half applied, once (its marker), and is marked done.
2. **Drift.** For every SKU whose Redis copy is loaded, ``available + reserved`` in Redis must equal the
   database's ``available``, less what the Redis halves still owed will change: a confirm whose database
   half committed but whose Redis half did not run yet still holds its units in ``reserved``, a release
   or restock has not added its units yet. Those are in flight, not drift. ``reserved`` itself (tries
   not yet confirmed or cancelled, which live in Redis only) is never touched: only ``available`` is
   corrected. The check runs under the database row lock, in one Lua script
   (:data:`~.redis_stock.REPAIR_SCRIPT`) that reads the barrier entries of the candidate halves, so neither
   side can move during it.

A confirm or release half counts as owed while its barrier entry is absent. That is trusted only for log
rows younger than the barrier retention less :data:`RETENTION_MARGIN_MS` (clock skew between replicas):
the Redis barrier cleaner deletes a final gid's hash once its LATEST entry is past the retention, and a
Redis half writes its entry after its log row, so such a row's entry is still there when it ran. Older log
rows are taken as finished. Only log rows newer than the copy's ``base`` are read: a copy loaded, or
checked with nothing owed, after a change already contains it.

A restock's marker lives ``stock.restock_marker_ttl_seconds``; every retry of its Redis half (a client's,
or each round here) renews it, so it outlives a ``mark_restock_done`` that keeps failing. A restock still
owed when it is older than the marker TTL less the margin is never applied again (its marker may have
lapsed, and then the half would add the units twice): it is recorded done with an ERROR line, the marker
is not counted as owed, and the drift check makes Redis agree with the database's absolute figures, which
is right whether or not the half ran.

Every repair is logged at WARNING (one line per SKU or restock) and counted in
``mesh_stock_drift_repaired_total{kind}`` (``kind`` = ``restock`` or ``available``);
``mesh_stock_drift_skus`` is the number of SKUs found drifting in the last round,
``mesh_stock_reconcile_rounds_total`` counts the rounds completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from meshkit.runtime.clock import Clock, days_to_ms, now_ms
from meshkit.runtime.periodic import Periodic
from meshkit.tx.context import Op
from stock_svc.config import StockSettings
from stock_svc.hot.redis_stock import HotStock, OwedHalf, Repair, Snapshot, branch_half
from stock_svc.stock.domain import StockDomain
from stock_svc.stock.queries import LoggedChange, StockRepo
from stock_svc.stock.tables import KIND_CONFIRM

log = logging.getLogger(__name__)

KIND_RESTOCK = "restock"
KIND_AVAILABLE = "available"
DRAIN_SECONDS = 10.0
# Ages near the barrier retention or the restock marker TTL are not trusted to this much: replicas' clocks
# differ, and a cleaner or a marker expiry may run just before the reconciler's check.
RETENTION_MARGIN_MS = 3_600_000


class ReconcileMetrics:
    """The reconciler's Prometheus metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.repaired = Counter(
            "mesh_stock_drift_repaired_total",
            "Drift between the stock database and Redis repaired by the reconciler, by kind: restock (an "
            "owed PutSku Redis half applied) or available (Redis available corrected to the database).",
            ("kind",),
            registry=registry,
        )
        self.rounds = Counter(
            "mesh_stock_reconcile_rounds_total",
            "Reconciler rounds completed (one at start, then one per stock.reconcile_interval_seconds).",
            registry=registry,
        )
        self.drifting = Gauge(
            "mesh_stock_drift_skus",
            "SKUs whose Redis copy disagreed with the database in the reconciler's last round.",
            registry=registry,
        )


@dataclass(frozen=True, slots=True)
class ReconcileLimits:
    """What one round reads.

    Owed restocks per round (only those older than the grace), log rows per SKU check, how long a log
    row's barrier entry is trusted (older log rows count as finished), and how long a restock marker is
    (older owed restocks are recorded done, never applied again).
    """

    batch: int
    grace_ms: int
    max_changes: int
    retention_ms: int
    marker_ttl_ms: int


def _half(change: LoggedChange) -> OwedHalf:
    if change.kind == KIND_CONFIRM:
        return branch_half(change.gid, change.branch_id, Op.CONFIRM, change.version, -change.quantity)
    return branch_half(change.gid, change.branch_id, Op.ACTION, change.version, change.quantity)


class StockReconciler:
    """Repairs drift between the stock database and Redis; :meth:`round_once` is one round."""

    def __init__(
        self,
        domain: StockDomain,
        repo: StockRepo,
        hot: HotStock,
        clock: Clock,
        *,
        limits: ReconcileLimits,
        metrics: ReconcileMetrics,
    ) -> None:
        self._domain = domain
        self._repo = repo
        self._hot = hot
        self._clock = clock
        self._limits = limits
        self._metrics = metrics
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    @classmethod
    def build(
        cls,
        settings: StockSettings,
        parts: tuple[StockDomain, StockRepo, HotStock],
        clock: Clock,
        registry: CollectorRegistry,
    ) -> StockReconciler:
        """The reconciler of a stock_svc process, its limits taken from ``settings``."""
        limits = ReconcileLimits(
            batch=settings.stock.reconcile_batch,
            grace_ms=int(settings.stock.reconcile_grace_seconds * 1000),
            max_changes=settings.stock.reconcile_max_changes,
            retention_ms=trusted_ms(days_to_ms(settings.barrier.retention_days)),
            marker_ttl_ms=trusted_ms(int(settings.stock.restock_marker_ttl_seconds * 1000)),
        )
        domain, repo, hot = parts
        return cls(domain, repo, hot, clock, limits=limits, metrics=ReconcileMetrics(registry))

    def periodic(self, interval_seconds: float) -> Periodic:
        """The background runner: a round at start, then one every ``interval_seconds``."""
        return Periodic(self.round_once, self._clock, interval_seconds, "stock-reconcile", run_at_start=True)

    async def round_once(self) -> int:
        """One round: finish owed restocks, then repair drifting SKUs; how many repairs it made."""
        if self._stopping:
            return 0
        self._idle.clear()
        try:
            await self._domain.check_redis_epoch()
            repairs = await self.finish_owed_restocks() + await self.repair_drift()
        finally:
            self._idle.set()
        self._metrics.rounds.inc()
        return repairs

    async def drain(self, timeout_seconds: float = DRAIN_SECONDS) -> None:
        """Start no new round and let a running one end (up to ``timeout_seconds``) before the stop.

        A round cancelled inside a database transaction can leave the connection, and on SQLite the
        database's write lock, held until the pool is disposed.
        """
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_seconds)

    async def finish_owed_restocks(self) -> int:
        """Apply the Redis halves of restocks not recorded as done; how many added units just now.

        A restock younger than the grace is left alone: its PutSku call is most likely finishing it. One
        older than the marker TTL is recorded done without being applied (see the module docstring).
        """
        now = now_ms(self._clock)
        async with self._repo.transaction() as session:
            stale = await self._repo.owed_restocks(
                session, self._limits.batch, created_before_ms=now - self._limits.marker_ttl_ms
            )
            for record in stale:
                await self._repo.mark_restock_done(session, record.request_id)
        for record in stale:
            log.error(
                "stock restock %s of sku %s (+%d) still owed past its marker's life; recorded done without "
                "applying it again (the drift check sets Redis available from the database)",
                record.request_id,
                record.sku,
                record.quantity,
                extra={"sku": record.sku, "request_id": record.request_id},
            )
        before = now - self._limits.grace_ms
        async with self._repo.transaction() as session:
            owed = await self._repo.owed_restocks(session, self._limits.batch, created_before_ms=before)
        added = 0
        for record in owed:
            if await self._domain.finish_restock(record):
                added += 1
                self._metrics.repaired.labels(kind=KIND_RESTOCK).inc()
                log.warning(
                    "stock drift repaired: restock %s of sku %s (+%d) had no Redis half; applied it",
                    record.request_id,
                    record.sku,
                    record.quantity,
                    extra={"sku": record.sku, "request_id": record.request_id},
                )
        return added

    async def repair_drift(self) -> int:
        """Check every loaded SKU whose Redis total differs from the database; how many were corrected."""
        async with self._repo.transaction() as session:
            rows = await self._repo.all_skus(session)
        levels = await self._hot.levels([r.sku for r in rows])
        suspects = [
            r.sku
            for r in rows
            if levels[r.sku].loaded and levels[r.sku].available + levels[r.sku].reserved != r.available
        ]
        drifting = 0
        for sku in suspects:
            repair = await self._check(sku, levels[sku].base)
            if repair is not None and repair.drift:
                drifting += 1
                self._report(sku, repair)
        self._metrics.drifting.set(drifting)
        return drifting

    def _report(self, sku: str, repair: Repair) -> None:
        if repair.available_after != repair.available_before:
            self._metrics.repaired.labels(kind=KIND_AVAILABLE).inc()
        log.warning(
            "stock drift repaired: sku %s redis available %d -> %d (drift %+d, reserved %d in flight, "
            "%+d owed by unfinished halves)",
            sku,
            repair.available_before,
            repair.available_after,
            repair.drift,
            repair.reserved,
            repair.owed,
            extra={"sku": sku},
        )

    async def _check(self, sku: str, base: int) -> Repair | None:
        """The locked check and repair of one SKU (None: gone, or too many log rows to check now)."""
        since = now_ms(self._clock) - self._limits.retention_ms
        async with self._repo.transaction() as session:
            row = await self._repo.sku_for_update(session, sku)
            if row is None:
                return None
            cap = self._limits.max_changes
            changes = await self._repo.changes_since(session, sku, base, since, limit=cap + 1)
            restocks = await self._repo.owed_restocks(session, cap + 1, sku=sku)
            if len(changes) > cap or len(restocks) > cap:
                log.warning("stock reconcile: sku %s has too many recent changes to check; skipped", sku)
                return None
            stale_before = now_ms(self._clock) - self._limits.marker_ttl_ms
            if await self._repo.owed_restocks(session, 1, sku=sku, created_before_ms=stale_before):
                return None  # the restock pass records it done first; a marker that lapsed proves nothing
            halves = [_half(c) for c in changes]
            halves += [self._hot.restock_half(r.request_id, r.version, r.quantity) for r in restocks]
            return await self._hot.repair(sku, Snapshot(row.available, row.version), halves)


def trusted_ms(period_ms: int) -> int:
    """How much of a retention period or marker life (ms) the reconciler trusts: less the margin.

    At least half the period, so a short period (tests, tiny settings) still leaves a window.
    """
    return max(1, period_ms // 2, period_ms - RETENTION_MARGIN_MS)
