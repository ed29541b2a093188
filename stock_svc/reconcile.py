"""The stock reconciler: finds and repairs drift between the database and Redis, at start and periodically.

A round does two things:

1. **Owed restocks.** Every ``stock_restock`` row whose Redis half is not recorded as done (the PutSku
   call died between its halves and no client retried) and that is older than
   ``stock.reconcile_grace_seconds`` gets that half applied, once (its marker), and is marked done.
2. **Drift.** For every SKU whose Redis copy is loaded, ``available + reserved`` in Redis must equal the
   database's ``available``, less what the Redis halves still owed will change: a confirm whose database
   half committed but whose Redis half did not run yet still holds its units in ``reserved``, a release
   or restock has not added its units yet. Those are in flight, not drift. ``reserved`` itself (tries
   not yet confirmed or cancelled, which live in Redis only) is never touched: only ``available`` is
   corrected. The check runs under the database row lock, in one Lua script (:data:`~.hot.REPAIR_SCRIPT`)
   that reads the barrier entries of the candidate halves, so neither side can move during it.

A confirm or release half counts as owed while its barrier entry is absent. Log rows older than the
barrier retention are taken as finished (their gid's barrier entries may be gone once it is final), and
only log rows newer than the copy's ``base`` are read: a copy loaded, or checked with nothing owed, after
a change already contains it.

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

from meshkit.clock import Clock, now_ms
from meshkit.periodic import Periodic
from meshkit.txcontext import Op
from stock_svc.config import StockSettings
from stock_svc.domain import StockDomain
from stock_svc.hot import HotStock, OwedHalf, Repair, Snapshot, branch_half
from stock_svc.models import KIND_CONFIRM
from stock_svc.repo import LoggedChange, StockRepo

log = logging.getLogger(__name__)

KIND_RESTOCK = "restock"
KIND_AVAILABLE = "available"
MS_PER_DAY = 86_400_000
DRAIN_SECONDS = 10.0


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

    Owed restocks per round (only those older than the grace), log rows per SKU check, and the barrier
    retention (older log rows count as finished).
    """

    batch: int
    grace_ms: int
    max_changes: int
    retention_ms: int


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
            retention_ms=retention_ms(settings.barrier.retention_days),
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

        A restock younger than the grace is left alone: its PutSku call is most likely finishing it.
        """
        before = now_ms(self._clock) - self._limits.grace_ms
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
            halves = [_half(c) for c in changes]
            halves += [self._hot.restock_half(r.request_id, r.version, r.quantity) for r in restocks]
            return await self._hot.repair(sku, Snapshot(row.available, row.version), halves)


def retention_ms(retention_days: float) -> int:
    """The barrier retention in milliseconds (log rows older than that count as finished)."""
    return max(1, int(retention_days * MS_PER_DAY))
