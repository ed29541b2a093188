"""Queries on the stock tables.

The hot path (the database halves of ConfirmReserve and ReleaseStock, PutSku, and the reads of
GetStock/GetSkus and of loading a Redis copy) is units of work on the process's
:class:`~meshkit.store.StoreRunner`: the module functions below take the unit's
:class:`~meshkit.store.Conn` and run raw ``?`` SQL in its transaction. :class:`StockRepo` keeps the
off-path queries (audit, reconciler, Redis epoch) on SQLAlchemy sessions.

Rows are changed in SKU order inside one transaction, so two transactions touching the same SKUs
lock them in the same order and cannot deadlock each other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, case, false, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from meshkit.errors import FailedPrecondition
from meshkit.infra.db import session_factory
from meshkit.infra.db import transaction as db_transaction
from meshkit.runtime.clock import Clock, now_ms
from meshkit.store import Conn
from stock_svc.hot.redis_stock import Snapshot
from stock_svc.stock.tables import KIND_RELEASE, stock_log, stock_restock, stock_sku
from stock_svc.stock.validation import Item, PutSkuInput

ORDER_IDS_SEPARATOR = ","


@dataclass(frozen=True, slots=True)
class SkuRow:
    """One ``stock_sku`` row."""

    sku: str
    merchant_id: str
    price_cents: int
    initial: int
    available: int
    sold: int
    version: int


@dataclass(frozen=True, slots=True)
class LogEntry:
    """The ``stock_log`` rows of one branch op: one per item, each with the version it produced."""

    gid: str
    branch_id: str
    kind: str
    items: Sequence[Item]
    versions: Mapping[str, int]
    order_ids: Sequence[str]


@dataclass(frozen=True, slots=True)
class Restock:
    """One ``stock_restock`` row: a PutSku request as applied, and whether its Redis half is done."""

    request_id: str
    sku: str
    merchant_id: str
    price_cents: int
    quantity: int
    version: int
    redis_done: bool


@dataclass(frozen=True, slots=True)
class LoggedChange:
    """One ``stock_log`` row of a SKU: a branch op's database half, whose Redis half may still be owed."""

    gid: str
    branch_id: str
    kind: str
    quantity: int
    version: int


_RESTOCK_COLUMNS = (
    stock_restock.c.request_id,
    stock_restock.c.sku,
    stock_restock.c.merchant_id,
    stock_restock.c.price_cents,
    stock_restock.c.quantity,
    stock_restock.c.version,
    stock_restock.c.redis_done,
)


def _restock(row: Row[*tuple[Any, ...]]) -> Restock:
    return Restock(
        request_id=str(row.request_id),
        sku=str(row.sku),
        merchant_id=str(row.merchant_id),
        price_cents=int(row.price_cents),
        quantity=int(row.quantity),
        version=int(row.version),
        redis_done=bool(row.redis_done),
    )


_COLUMNS = (
    stock_sku.c.sku,
    stock_sku.c.merchant_id,
    stock_sku.c.price_cents,
    stock_sku.c.initial,
    stock_sku.c.available,
    stock_sku.c.sold,
    stock_sku.c.version,
)


def _row(row: Row[*tuple[Any, ...]]) -> SkuRow:
    return SkuRow(
        sku=str(row.sku),
        merchant_id=str(row.merchant_id),
        price_cents=int(row.price_cents),
        initial=int(row.initial),
        available=int(row.available),
        sold=int(row.sold),
        version=int(row.version),
    )


class StockRepo:
    """Sessions on the service database, and the off-path stock queries (audit, reconciler, epoch)."""

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._sessions = session_factory(engine)
        self._clock = clock

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction that commits on success; lock/connection errors become transient."""
        async with db_transaction(self._sessions, "stock") as session:
            yield session

    # ------------------------------------------------------------------ reads

    async def all_skus(self, session: AsyncSession) -> list[SkuRow]:
        """Every SKU, ordered by SKU."""
        rows = (await session.execute(select(*_COLUMNS).order_by(stock_sku.c.sku))).all()
        return [_row(r) for r in rows]

    async def sold_by_ref(self, session: AsyncSession) -> list[tuple[str, str, int]]:
        """``(sku, order ids as logged, confirmed minus released units)`` for the audit, ordered."""
        signed = case((stock_log.c.kind == KIND_RELEASE, -stock_log.c.quantity), else_=stock_log.c.quantity)
        stmt = (
            select(stock_log.c.sku, stock_log.c.order_ids, func.sum(signed))
            .group_by(stock_log.c.sku, stock_log.c.order_ids)
            .order_by(stock_log.c.sku, stock_log.c.order_ids)
        )
        return [(r[0], r[1], int(r[2])) for r in (await session.execute(stmt)).all()]

    async def sku_for_update(self, session: AsyncSession, sku: str) -> SkuRow | None:
        """One row, locked until the transaction ends (None when unknown)."""
        stmt = select(*_COLUMNS).where(stock_sku.c.sku == sku).with_for_update()
        row = (await session.execute(stmt)).first()
        return _row(row) if row is not None else None

    async def restock_record(self, session: AsyncSession, request_id: str) -> Restock | None:
        """The restock recorded under ``request_id`` (None when that request never committed)."""
        stmt = select(*_RESTOCK_COLUMNS).where(stock_restock.c.request_id == request_id)
        row = (await session.execute(stmt)).first()
        return _restock(row) if row is not None else None

    async def owed_restocks(
        self,
        session: AsyncSession,
        limit: int,
        *,
        sku: str | None = None,
        created_before_ms: int | None = None,
    ) -> list[Restock]:
        """Restocks whose Redis half is not recorded as done, oldest first (of one SKU, older than ...)."""
        stmt = select(*_RESTOCK_COLUMNS).where(stock_restock.c.redis_done == false())
        if sku is not None:
            stmt = stmt.where(stock_restock.c.sku == sku)
        if created_before_ms is not None:
            stmt = stmt.where(stock_restock.c.created_at < created_before_ms)
        stmt = stmt.order_by(stock_restock.c.created_at, stock_restock.c.request_id).limit(limit)
        return [_restock(r) for r in (await session.execute(stmt)).all()]

    async def changes_since(
        self, session: AsyncSession, sku: str, above_version: int, since_ms: int, limit: int
    ) -> list[LoggedChange]:
        """Up to ``limit`` log rows of ``sku`` above ``above_version``, written at or after ``since_ms``."""
        stmt = (
            select(
                stock_log.c.gid,
                stock_log.c.branch_id,
                stock_log.c.kind,
                stock_log.c.quantity,
                stock_log.c.version,
            )
            .where(
                stock_log.c.sku == sku,
                stock_log.c.version > above_version,
                stock_log.c.created_at >= since_ms,
            )
            .limit(limit)
        )
        return [
            LoggedChange(str(r.gid), str(r.branch_id), str(r.kind), int(r.quantity), int(r.version))
            for r in (await session.execute(stmt)).all()
        ]

    # ------------------------------------------------------------------ writes

    async def mark_restock_done(self, session: AsyncSession, request_id: str) -> None:
        """Record that the Redis half of a restock is applied."""
        await session.execute(
            update(stock_restock)
            .where(stock_restock.c.request_id == request_id, stock_restock.c.redis_done == false())
            .values(redis_done=True, done_at=now_ms(self._clock))
        )


# ---------------------------------------------------------------------- units of work (on a Conn)

_RESTOCK_NAMES = ("request_id", "sku", "merchant_id", "price_cents", "quantity", "version", "redis_done")
_SELL = (
    "UPDATE stock_sku SET available = available - ?, sold = sold + ?, version = version + 1, updated_at = ? "
    "WHERE sku = ?"
)
_GIVE_BACK = (
    "UPDATE stock_sku SET available = available + ?, sold = sold - ?, version = version + 1, updated_at = ? "
    "WHERE sku = ? AND sold >= ?"
)
_RESTOCK = (
    "UPDATE stock_sku SET price_cents = ?, initial = initial + ?, available = available + ?, "
    "version = version + 1, updated_at = ? WHERE sku = ? AND merchant_id = ?"
)
_LOG_INSERT = (
    "INSERT INTO stock_log (gid, branch_id, sku, kind, quantity, version, order_ids, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SKU_COLUMN_NAMES = ("sku", "merchant_id", "price_cents", "initial", "available", "sold", "version")
_SKU_COLUMNS = ", ".join(_SKU_COLUMN_NAMES)
_SKU_INSERT_NAMES = (*_SKU_COLUMN_NAMES, "created_at", "updated_at")


class RestockRaced(Exception):
    """A concurrent PutSku committed the same request or created the same SKU first: run it again."""


def skus_of(conn: Conn, skus: Iterable[str]) -> dict[str, SkuRow]:
    """The rows of the known SKUs among ``skus``."""
    wanted = sorted(set(skus))
    if not wanted:
        return {}
    marks = ", ".join("?" for _ in wanted)
    rows = conn.fetchall(f"SELECT {_SKU_COLUMNS} FROM stock_sku WHERE sku IN ({marks})", wanted)
    return {str(r[0]): _sku_row(r) for r in rows}


def snapshots_of(conn: Conn, skus: Iterable[str]) -> dict[str, Snapshot]:
    """``(available, version)`` of the known SKUs among ``skus``: what a Redis copy is loaded from."""
    return {s: Snapshot(r.available, r.version) for s, r in skus_of(conn, skus).items()}


def logged_versions_of(conn: Conn, gid: str, branch_id: str, kind: str) -> dict[str, int]:
    """SKU -> version of the log rows one branch op wrote."""
    sql = "SELECT sku, version FROM stock_log WHERE gid = ? AND branch_id = ? AND kind = ?"
    return {str(r[0]): int(r[1]) for r in conn.fetchall(sql, (gid, branch_id, kind))}


def restock_record_of(conn: Conn, request_id: str) -> Restock | None:
    """The restock recorded under ``request_id`` (None when that request never committed)."""
    sql = f"SELECT {', '.join(_RESTOCK_NAMES)} FROM stock_restock WHERE request_id = ?"
    row = conn.fetchone(sql, (request_id,))
    if row is None:
        return None
    return Restock(str(row[0]), str(row[1]), str(row[2]), int(row[3]), int(row[4]), int(row[5]), bool(row[6]))


def sell_items(conn: Conn, items: Sequence[Item], now: int) -> dict[str, int]:
    """Sell: available -= q, sold += q for each item; SKU -> new version (unknown SKUs are left out)."""
    versions: dict[str, int] = {}
    for item in sorted(items, key=lambda i: i.sku):
        if conn.execute(_SELL, (item.quantity, item.quantity, now, item.sku)) == 1:
            versions[item.sku] = _version(conn, item.sku)
    return versions


def give_back_items(conn: Conn, items: Sequence[Item], now: int) -> dict[str, int]:
    """Give back: sold -= q, available += q where ``sold >= q``; SKU -> new version of those."""
    versions: dict[str, int] = {}
    for item in sorted(items, key=lambda i: i.sku):
        q = item.quantity
        if conn.execute(_GIVE_BACK, (q, q, now, item.sku, q)) == 1:
            versions[item.sku] = _version(conn, item.sku)
    return versions


def insert_log(conn: Conn, entry: LogEntry, now: int) -> None:
    """One ``stock_log`` row per item of a branch op."""
    refs = ORDER_IDS_SEPARATOR.join(entry.order_ids)
    rows = [
        (entry.gid, entry.branch_id, i.sku, entry.kind, i.quantity, entry.versions[i.sku], refs, now)
        for i in entry.items
    ]
    conn.executemany(_LOG_INSERT, rows)


def put_sku_row(conn: Conn, put: PutSkuInput, now: int) -> int:
    """Restock ``put.sku`` (price taken, quantity added) or create it; its new version.

    FailedPrecondition when the SKU belongs to another merchant; RestockRaced when a concurrent
    PutSku created it between the two statements (the caller runs the unit again).
    """
    q = put.quantity
    if conn.execute(_RESTOCK, (put.price_cents, q, q, now, put.sku, put.merchant_id)) == 1:
        return _version(conn, put.sku)
    owner = conn.fetchone("SELECT merchant_id FROM stock_sku WHERE sku = ?", (put.sku,))
    if owner is not None:
        raise FailedPrecondition(f"sku {put.sku} belongs to merchant {owner[0]}, not {put.merchant_id}")
    row = (put.sku, put.merchant_id, put.price_cents, q, q, 0, 1, now, now)
    if conn.execute(conn.dialect.insert_ignore("stock_sku", _SKU_INSERT_NAMES), row) != 1:
        raise RestockRaced(put.sku)
    return 1


def insert_restock(conn: Conn, put: PutSkuInput, version: int, now: int) -> Restock:
    """Record ``put`` as applied at ``version``; its Redis half is owed unless there is nothing to add.

    RestockRaced when a concurrent attempt of the same request recorded it first (this one rolls back).
    """
    done = put.quantity == 0
    record = Restock(put.request_id, put.sku, put.merchant_id, put.price_cents, put.quantity, version, done)
    columns = (*_RESTOCK_NAMES, "created_at", "done_at")
    values = (*_restock_values(record), now, now if done else None)
    if conn.execute(conn.dialect.insert_ignore("stock_restock", columns), values) != 1:
        raise RestockRaced(put.request_id)
    return record


def record_restock_done(conn: Conn, request_id: str, now: int) -> None:
    """Record that the Redis half of a restock is applied."""
    sql = "UPDATE stock_restock SET redis_done = ?, done_at = ? WHERE request_id = ? AND redis_done = ?"
    conn.execute(sql, (True, now, request_id, False))


def _restock_values(r: Restock) -> tuple[object, ...]:
    return (r.request_id, r.sku, r.merchant_id, r.price_cents, r.quantity, r.version, r.redis_done)


def _version(conn: Conn, sku: str) -> int:
    row = conn.fetchone("SELECT version FROM stock_sku WHERE sku = ?", (sku,))
    assert row is not None, sku  # read right after this transaction changed the row
    return int(row[0])


def _sku_row(r: tuple[Any, ...]) -> SkuRow:
    return SkuRow(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]))
