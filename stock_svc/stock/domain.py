"""The stock rules: SKUs, durable stock in the database, hot stock and reservations in Redis.

=================  ===========================================================================
op                 effect
=================  ===========================================================================
PutSku             DB: create, or restock (initial += q, available += q, price updated), and a
                   ``stock_restock`` row for the request id; then Redis: available += q
                   (version-gated and once per request id, see :mod:`stock_svc.hot.redis_stock`), and the
                   row is marked ``redis_done``
TryReserve         Redis (barrier ``try``): all items or none, available -= q, reserved += q
ConfirmReserve     DB (SQL barrier ``confirm``): available -= q, sold += q, log row per SKU;
                   then Redis (barrier ``confirm``): reserved -= q
CancelReserve      Redis (barrier ``cancel``): reserved -= q, available += q; nothing on an
                   empty rollback, and a later TryReserve of that branch is rejected
ReleaseStock       DB (SQL barrier ``action``, the MSG branch op): sold -= q, available += q,
                   log row per SKU; then Redis (barrier ``action``): available += q
=================  ===========================================================================

A confirm needs its try's entry in the Redis barrier ("not yet" without it, never after a cancel that
blocked it), unless Redis data was found lost within the barrier retention (:mod:`stock_svc.hot.epoch`).

Confirm and release run their two halves in order; each half has its own barrier entry, and the
Redis half is version-gated, so a retry after a crash between the two skips the database half
(duplicate) and applies only the missing Redis half. Both halves run on every call (the Redis half of
a duplicate is itself a duplicate), so the retry needs no memory of where the crash happened.

PutSku is idempotent per ``request_id``: a retry finds its ``stock_restock`` row, changes nothing in the
database (the same request id with another sku, merchant, price or quantity is FAILED_PRECONDITION: the
request is well formed, it conflicts with what that id already did) and finishes the Redis half if it is
not recorded as done. The Redis half writes a per-request marker in the same script, so it adds the units
once however often it runs; a half no client retries is finished by :mod:`stock_svc.hot.reconciler`.

Every Redis script refuses to run on a SKU whose hash is missing; the domain then loads the missing
hashes from the database (atomic set-if-absent) and runs the script again, up to
``stock.load_attempts`` times. The common case (hash present) costs one EVALSHA.

Decisions: PutSku on an existing SKU adds the quantity and takes the new price; the merchant of a SKU
never changes (orders are split per merchant, so a move would reassign sold stock): a different
merchant id is refused with FAILED_PRECONDITION naming both. ReleaseStock refuses to take ``sold``
below zero: "not yet" (FAILED_PRECONDITION, the coordinator retries) because a release may overtake
the confirm that persists the sale it gives back.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from meshkit.barrier import BarrierResult, RunnerBarrier
from meshkit.errors import (
    BranchFailure,
    BranchOngoing,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    TransientError,
)
from meshkit.runtime.clock import Clock, now_ms
from meshkit.store import Conn, StoreRunner
from meshkit.tx.context import OP_KEY, Op, TxContext
from stock_svc.config import StockSection
from stock_svc.hot.epoch import RedisEpoch
from stock_svc.hot.redis_stock import HotLevel, HotStock, StockNotLoaded
from stock_svc.stock import queries as q
from stock_svc.stock.queries import ORDER_IDS_SEPARATOR, LogEntry, Restock, RestockRaced, SkuRow, StockRepo
from stock_svc.stock.tables import KIND_CONFIRM, KIND_RELEASE
from stock_svc.stock.validation import (
    HARD_LIMITS,
    Item,
    Limits,
    PutSkuInput,
    check_id,
    check_items,
    check_order_ids,
    check_put_sku,
    check_sku,
    check_sku_list,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
RawItems = Sequence[tuple[str, int]]

# A concurrent create of the same SKU or attempt of the same request (RestockRaced; on MySQL possibly a
# deadlock on the key's locks) rolls the whole unit back, so it is retried, and the retry finds the row.
PUT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class StockLevel:
    """One SKU as GetStock shows it: Redis available/reserved, persisted sales, merchant and price."""

    sku: str
    available: int
    reserved: int
    sold: int
    merchant_id: str
    price_cents: int


@dataclass(frozen=True, slots=True)
class SkuInfo:
    """A known SKU."""

    sku: str
    merchant_id: str
    price_cents: int


@dataclass(frozen=True, slots=True)
class SkuAudit:
    """One SKU's figures for the stock invariant (DESIGN.md section 8)."""

    sku: str
    initial: int
    redis_available: int
    redis_reserved: int
    db_available: int
    db_sold: int
    redis_loaded: bool


@dataclass(frozen=True, slots=True)
class SoldByRef:
    """Net units of a SKU sold under one set of logged order ids (empty: none were named)."""

    sku: str
    order_ids: tuple[str, ...]
    sold: int


def _expect_op(ctx: TxContext, rpc: str, op: Op) -> None:
    if ctx.op is not op:
        raise InvalidArgument(OP_KEY, f"{rpc} is the {op.value} op, called as {ctx.op.value}")


def _require_same_request(recorded: Restock, put: PutSkuInput) -> None:
    """A PutSku retry must repeat its request; a request id reused for another one is refused."""
    asked = (put.sku, put.merchant_id, put.price_cents, put.quantity)
    done = (recorded.sku, recorded.merchant_id, recorded.price_cents, recorded.quantity)
    if asked != done:
        raise FailedPrecondition(
            f"request_id {put.request_id} was already used for sku {recorded.sku} (merchant "
            f"{recorded.merchant_id}, price_cents {recorded.price_cents}, quantity {recorded.quantity}); "
            "use a new request_id for a different PutSku"
        )


def _note(*results: BarrierResult[Any]) -> str:
    return "/".join(r.outcome.value for r in results)


@dataclass(frozen=True, slots=True)
class StockStores:
    """Where the stock domain keeps its data.

    The store runner (hot path) and its barrier, the SQLAlchemy repository (off-path reads), Redis
    (hot stock) and the Redis epoch.
    """

    runner: StoreRunner
    barrier: RunnerBarrier
    repo: StockRepo
    hot: HotStock
    epoch: RedisEpoch


class StockDomain:
    """The stock service's operations (grpc-free; the servicer converts messages).

    Database writes and hot-path reads are units of work on the store runner; the audit reads through
    the SQLAlchemy repository.
    """

    def __init__(self, stores: StockStores, section: StockSection, clock: Clock) -> None:
        self._runner = stores.runner
        self._repo = stores.repo
        self._hot = stores.hot
        self._barrier = stores.barrier
        self._epoch = stores.epoch
        self._clock = clock
        self._limits = Limits(max_items=section.max_items_per_request, max_quantity=section.max_quantity)
        self._load_attempts = section.load_attempts

    # ------------------------------------------------------------------ admin and reads

    async def put_sku(
        self, sku: str, merchant_id: str, price_cents: int, quantity: int, request_id: str
    ) -> StockLevel:
        """Create a SKU or restock it, once per ``request_id`` (see the module docstring); its level after."""
        put = check_put_sku(sku, merchant_id, price_cents, quantity, request_id, limits=self._limits)
        record = await self._put_in_db(put)
        if not record.redis_done:
            await self.finish_restock(record)
        return await self.get_stock(put.sku)

    async def finish_restock(self, record: Restock) -> bool:
        """Apply a recorded restock's Redis half (once: its marker) and record it done; True if it added."""
        added = await self._loaded(
            [record.sku],
            lambda: self._hot.restock(record.sku, record.request_id, record.quantity, record.version),
        )
        now = now_ms(self._clock)
        await self._runner.run(lambda conn: q.record_restock_done(conn, record.request_id, now))
        return added

    async def get_stock(self, sku: str) -> StockLevel:
        """One SKU's level (NotFound when unknown); loads its Redis copy when missing."""
        check_sku("sku", sku)
        row = await self._row(sku)
        level = (await self._hot_levels([sku]))[sku]
        return StockLevel(sku, level.available, level.reserved, row.sold, row.merchant_id, row.price_cents)

    async def get_skus(self, skus: Sequence[str]) -> list[SkuInfo]:
        """The known SKUs among ``skus``, in request order, each once."""
        wanted = check_sku_list(skus, self._limits)
        rows = await self._runner.read(lambda conn: q.skus_of(conn, wanted))
        return [SkuInfo(s, rows[s].merchant_id, rows[s].price_cents) for s in wanted if s in rows]

    async def audit(self) -> list[SkuAudit]:
        """Every SKU's database and Redis figures (reads only: missing Redis copies stay missing)."""
        async with self._repo.transaction() as session:
            rows = await self._repo.all_skus(session)
        levels = await self._hot.levels([r.sku for r in rows])
        return [
            SkuAudit(
                sku=r.sku,
                initial=r.initial,
                redis_available=levels[r.sku].available,
                redis_reserved=levels[r.sku].reserved,
                db_available=r.available,
                db_sold=r.sold,
                redis_loaded=levels[r.sku].loaded,
            )
            for r in rows
        ]

    async def audit_sold_by_ref(self) -> list[SoldByRef]:
        """Net units sold per SKU and logged order ids: lets the audit attribute sales to orders."""
        async with self._repo.transaction() as session:
            rows = await self._repo.sold_by_ref(session)
        return [
            SoldByRef(sku, tuple(r for r in refs.split(ORDER_IDS_SEPARATOR) if r), n) for sku, refs, n in rows
        ]

    # ------------------------------------------------------------------ branch ops

    async def try_reserve(self, ctx: TxContext, items: RawItems, order_ids: Sequence[str]) -> str:
        """Reserve every item or none; BranchFailure naming a short or unknown SKU."""
        checked = check_items(items, self._limits)
        check_order_ids(order_ids, self._limits.max_items)
        _expect_op(ctx, "TryReserve", Op.TRY)
        skus = [i.sku for i in checked]
        result = await self._loaded(skus, lambda: self._hot.reserve(ctx, checked), unknown_fails=True)
        return _note(result)

    async def confirm_reserve(self, ctx: TxContext, items: RawItems, order_ids: Sequence[str]) -> str:
        """Persist the reservation as a sale, then clear it in Redis."""
        checked = check_items(items, HARD_LIMITS)
        refs = check_order_ids(order_ids, HARD_LIMITS.max_items)
        _expect_op(ctx, "ConfirmReserve", Op.CONFIRM)
        await self._require_tried(ctx)
        now = now_ms(self._clock)

        def persist(conn: Conn) -> dict[str, int]:
            versions = q.sell_items(conn, checked, now)
            _require_known(checked, versions)
            q.insert_log(conn, LogEntry(ctx.gid, ctx.branch_id, KIND_CONFIRM, checked, versions, refs), now)
            return versions

        db = await self._barrier.run(ctx, persist)
        versions = await self._versions(ctx, KIND_CONFIRM, checked, db)
        skus = [i.sku for i in checked]
        redis = await self._loaded(skus, lambda: self._hot.confirm(ctx, checked, versions))
        return _note(db, redis)

    async def check_redis_epoch(self) -> None:
        """Follow the Redis epoch: record a new one, and a Redis data loss (:mod:`stock_svc.hot.epoch`)."""
        await self._epoch.refresh()

    async def cancel_reserve(self, ctx: TxContext, items: RawItems, order_ids: Sequence[str]) -> str:
        """Give the reservation back (an empty rollback changes nothing and blocks a late try)."""
        checked = check_items(items, HARD_LIMITS)
        check_order_ids(order_ids, HARD_LIMITS.max_items)
        _expect_op(ctx, "CancelReserve", Op.CANCEL)
        skus = [i.sku for i in checked]
        result = await self._loaded(skus, lambda: self._hot.cancel(ctx, checked))
        return _note(result)

    async def release_stock(self, ctx: TxContext, items: RawItems, order_id: str) -> str:
        """Give persisted (sold) stock back: the cancel chain's MSG branch (op ``action``)."""
        checked = check_items(items, HARD_LIMITS)
        check_id("order_id", order_id)
        _expect_op(ctx, "ReleaseStock", Op.ACTION)
        now = now_ms(self._clock)

        def persist(conn: Conn) -> dict[str, int]:
            versions = q.give_back_items(conn, checked, now)
            if len(versions) < len(checked):
                _refuse_release(conn, checked, versions)
            entry = LogEntry(ctx.gid, ctx.branch_id, KIND_RELEASE, checked, versions, [order_id])
            q.insert_log(conn, entry, now)
            return versions

        db = await self._barrier.run(ctx, persist)
        versions = await self._versions(ctx, KIND_RELEASE, checked, db)
        skus = [i.sku for i in checked]
        redis = await self._loaded(skus, lambda: self._hot.release(ctx, checked, versions))
        return _note(db, redis)

    # ------------------------------------------------------------------ helpers

    async def _put_in_db(self, put: PutSkuInput) -> Restock:
        """Insert or restock the row and record the request, in one transaction; or find it recorded."""
        for attempt in range(PUT_ATTEMPTS):
            try:
                return await self._runner.run(functools.partial(_put_once, put=put, now=now_ms(self._clock)))
            except (RestockRaced, TransientError):
                # A concurrent create of the SKU, or a concurrent attempt of the same request (its
                # restock row's key): the retry finds the row, or the request, committed.
                if attempt == PUT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _row(self, sku: str) -> SkuRow:
        rows = await self._runner.read(lambda conn: q.skus_of(conn, [sku]))
        if sku not in rows:
            raise NotFound(f"sku {sku} not found")
        return rows[sku]

    async def _hot_levels(self, skus: Sequence[str]) -> dict[str, HotLevel]:
        await self._ensure_loaded(skus, unknown_fails=False)
        return await self._hot.levels(skus)

    async def _loaded(
        self, skus: Sequence[str], run: Callable[[], Awaitable[T]], *, unknown_fails: bool = False
    ) -> T:
        """Run a Redis script; when a SKU hash is missing, load it from the database and run again."""
        for attempt in range(1, self._load_attempts + 1):
            try:
                return await run()
            except StockNotLoaded:
                if attempt == self._load_attempts:
                    raise
            await self._ensure_loaded(skus, unknown_fails=unknown_fails)
        raise AssertionError("unreachable")

    async def _ensure_loaded(self, skus: Sequence[str], *, unknown_fails: bool) -> None:
        """Load the missing Redis copies of ``skus``; BranchFailure for unknown SKUs if asked."""
        missing = await self._hot.missing(skus)
        if not missing:
            return
        snapshots = await self._runner.read(lambda conn: q.snapshots_of(conn, missing))
        unknown = sorted(set(missing) - snapshots.keys())
        if unknown and unknown_fails:
            raise BranchFailure(f"unknown sku: {', '.join(unknown)}")
        loaded = await self._hot.load(snapshots)
        if loaded:
            log.info("loaded %d stock copies into redis", loaded, extra={"loaded": loaded})

    async def _require_tried(self, ctx: TxContext) -> None:
        """A confirm sells only what its try reserved: no try yet is "not yet", a blocked one never.

        No try entry is let through when its database half already ran (a retry), or when Redis data
        was found lost within the barrier retention (the entry may have gone with it; see
        :mod:`stock_svc.hot.epoch`). With Redis unreachable the check is skipped: the database half must
        still persist the sale of a try that did run (the Redis half then fails and the confirm is retried).
        """
        try:
            tried = await self._hot.tried(ctx)
        except TransientError:
            return
        await self._epoch.observe(tried.epoch)
        if tried.reason is None:
            await self._require_try_or_loss(ctx)
        elif tried.reason == Op.CANCEL.value:
            message = f"confirm of gid {ctx.gid} branch {ctx.branch_id} can never succeed: it was cancelled"
            log.warning("%s", message, extra={"gid": ctx.gid})
            raise BranchFailure(message)

    async def _require_try_or_loss(self, ctx: TxContext) -> None:
        """No try entry: go on if the confirm's database half ran or Redis lost the entry, else "not yet"."""
        logged = await self._runner.read(
            lambda conn: q.logged_versions_of(conn, ctx.gid, ctx.branch_id, KIND_CONFIRM)
        )
        if logged:
            return
        lost_ms = self._epoch.recent_loss_ms()
        if lost_ms is not None:
            lost_at = datetime.fromtimestamp(lost_ms / 1000, UTC).isoformat()
            log.warning(
                "confirm of gid %s branch %s: try entry lost with Redis at %s; confirming from the database",
                ctx.gid,
                ctx.branch_id,
                lost_at,
                extra={"gid": ctx.gid},
            )
            return
        message = f"confirm of gid {ctx.gid} branch {ctx.branch_id} not yet possible: no try has run"
        log.warning("%s", message, extra={"gid": ctx.gid})
        raise BranchOngoing(message)

    async def _versions(
        self, ctx: TxContext, kind: str, items: Sequence[Item], db: BarrierResult[dict[str, int]]
    ) -> dict[str, int]:
        """The versions the database half produced: from this call, or from its log rows (duplicate)."""
        if db.applied and db.value is not None:
            return db.value
        versions = await self._runner.read(
            lambda conn: q.logged_versions_of(conn, ctx.gid, ctx.branch_id, kind)
        )
        missing = [i.sku for i in items if i.sku not in versions]
        if missing:  # a repeat whose payload differs from the call the barrier already applied
            raise InvalidArgument(
                "items",
                f"{', '.join(missing)} not in the {kind} gid {ctx.gid} branch {ctx.branch_id} applied",
            )
        return versions


# -------------------------------------------------------------------------- units of work (on a Conn)


def _put_once(conn: Conn, *, put: PutSkuInput, now: int) -> Restock:
    """PutSku's database half: the recorded request (a retry), or the SKU changed and the request recorded."""
    recorded = q.restock_record_of(conn, put.request_id)
    if recorded is not None:
        _require_same_request(recorded, put)
        return recorded
    version = q.put_sku_row(conn, put, now)
    return q.insert_restock(conn, put, version, now)


def _require_known(items: Sequence[Item], versions: dict[str, int]) -> None:
    unknown = [i.sku for i in items if i.sku not in versions]
    if unknown:
        raise BranchFailure(f"unknown sku: {', '.join(sorted(unknown))}")


def _refuse_release(conn: Conn, items: Sequence[Item], done: dict[str, int]) -> None:
    """Raise why some items could not be released: unknown SKU, or more than is sold (not yet)."""
    rows = q.skus_of(conn, [i.sku for i in items])
    _require_known(items, {s: 0 for s in rows})
    short = [i for i in items if i.sku not in done]
    detail = ", ".join(f"{i.sku} (sold {rows[i.sku].sold}, release {i.quantity})" for i in short)
    raise BranchOngoing(f"cannot release more than is sold yet: {detail}")
