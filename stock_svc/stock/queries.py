"""Queries on the stock tables. Functions take the caller's session so they join its transaction.

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

from meshkit.infra.db import rowcount, session_factory
from meshkit.infra.db import transaction as db_transaction
from meshkit.runtime.clock import Clock, now_ms
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
    """Sessions on the service database, and the stock queries."""

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self._sessions = session_factory(engine)
        self._clock = clock

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction that commits on success; lock/connection errors become transient."""
        async with db_transaction(self._sessions, "stock") as session:
            yield session

    # ------------------------------------------------------------------ reads

    async def skus(self, session: AsyncSession, skus: Iterable[str]) -> dict[str, SkuRow]:
        """The rows of the known SKUs among ``skus``."""
        wanted = sorted(set(skus))
        if not wanted:
            return {}
        rows = (await session.execute(select(*_COLUMNS).where(stock_sku.c.sku.in_(wanted)))).all()
        return {str(r.sku): _row(r) for r in rows}

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

    async def snapshots(self, session: AsyncSession, skus: Iterable[str]) -> dict[str, Snapshot]:
        """``(available, version)`` of the known SKUs among ``skus``: what a Redis copy is loaded from."""
        return {s: Snapshot(r.available, r.version) for s, r in (await self.skus(session, skus)).items()}

    async def sku_for_update(self, session: AsyncSession, sku: str) -> SkuRow | None:
        """One row, locked until the transaction ends (None when unknown)."""
        stmt = select(*_COLUMNS).where(stock_sku.c.sku == sku).with_for_update()
        row = (await session.execute(stmt)).first()
        return _row(row) if row is not None else None

    async def logged_versions(
        self, session: AsyncSession, gid: str, branch_id: str, kind: str
    ) -> dict[str, int]:
        """SKU -> version of the log rows one branch op wrote."""
        stmt = select(stock_log.c.sku, stock_log.c.version).where(
            stock_log.c.gid == gid, stock_log.c.branch_id == branch_id, stock_log.c.kind == kind
        )
        return {str(r.sku): int(r.version) for r in (await session.execute(stmt)).all()}

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

    async def add_restock(self, session: AsyncSession, put: PutSkuInput, version: int) -> Restock:
        """Record ``put`` as applied at ``version``; its Redis half is owed unless there is nothing to add."""
        record = Restock(
            request_id=put.request_id,
            sku=put.sku,
            merchant_id=put.merchant_id,
            price_cents=put.price_cents,
            quantity=put.quantity,
            version=version,
            redis_done=put.quantity == 0,
        )
        now = now_ms(self._clock)
        await session.execute(
            stock_restock.insert().values(
                request_id=record.request_id,
                sku=record.sku,
                merchant_id=record.merchant_id,
                price_cents=record.price_cents,
                quantity=record.quantity,
                version=record.version,
                redis_done=record.redis_done,
                created_at=now,
                done_at=now if record.redis_done else None,
            )
        )
        return record

    async def mark_restock_done(self, session: AsyncSession, request_id: str) -> None:
        """Record that the Redis half of a restock is applied."""
        await session.execute(
            update(stock_restock)
            .where(stock_restock.c.request_id == request_id, stock_restock.c.redis_done == false())
            .values(redis_done=True, done_at=now_ms(self._clock))
        )

    async def insert_sku(self, session: AsyncSession, put: PutSkuInput) -> int:
        """Create a SKU with ``put.quantity`` units; its version (1)."""
        now = now_ms(self._clock)
        await session.execute(
            stock_sku.insert().values(
                sku=put.sku,
                merchant_id=put.merchant_id,
                price_cents=put.price_cents,
                initial=put.quantity,
                available=put.quantity,
                sold=0,
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
        return 1

    async def restock(self, session: AsyncSession, row: SkuRow, price_cents: int, quantity: int) -> int:
        """Add ``quantity`` units and set the price of a locked row; its new version."""
        version = row.version + 1
        await session.execute(
            update(stock_sku)
            .where(stock_sku.c.sku == row.sku)
            .values(
                price_cents=price_cents,
                initial=stock_sku.c.initial + quantity,
                available=stock_sku.c.available + quantity,
                version=version,
                updated_at=now_ms(self._clock),
            )
        )
        return version

    async def sell(self, session: AsyncSession, items: Sequence[Item]) -> dict[str, int]:
        """Sell: available -= q, sold += q for each item; SKU -> new version (unknown SKUs are left out)."""
        versions: dict[str, int] = {}
        for item in sorted(items, key=lambda i: i.sku):
            changed = await session.execute(
                update(stock_sku)
                .where(stock_sku.c.sku == item.sku)
                .values(
                    available=stock_sku.c.available - item.quantity,
                    sold=stock_sku.c.sold + item.quantity,
                    version=stock_sku.c.version + 1,
                    updated_at=now_ms(self._clock),
                )
            )
            if rowcount(changed) == 1:
                versions[item.sku] = await self._version(session, item.sku)
        return versions

    async def give_back(self, session: AsyncSession, items: Sequence[Item]) -> dict[str, int]:
        """Give back: sold -= q, available += q where ``sold >= q``; SKU -> new version of those."""
        versions: dict[str, int] = {}
        for item in sorted(items, key=lambda i: i.sku):
            changed = await session.execute(
                update(stock_sku)
                .where(stock_sku.c.sku == item.sku, stock_sku.c.sold >= item.quantity)
                .values(
                    available=stock_sku.c.available + item.quantity,
                    sold=stock_sku.c.sold - item.quantity,
                    version=stock_sku.c.version + 1,
                    updated_at=now_ms(self._clock),
                )
            )
            if rowcount(changed) == 1:
                versions[item.sku] = await self._version(session, item.sku)
        return versions

    async def add_log(self, session: AsyncSession, entry: LogEntry) -> None:
        """One ``stock_log`` row per item of a branch op."""
        now = now_ms(self._clock)
        refs = ORDER_IDS_SEPARATOR.join(entry.order_ids)
        await session.execute(
            stock_log.insert(),
            [
                {
                    "gid": entry.gid,
                    "branch_id": entry.branch_id,
                    "sku": item.sku,
                    "kind": entry.kind,
                    "quantity": item.quantity,
                    "version": entry.versions[item.sku],
                    "order_ids": refs,
                    "created_at": now,
                }
                for item in entry.items
            ],
        )

    async def _version(self, session: AsyncSession, sku: str) -> int:
        stmt = select(stock_sku.c.version).where(stock_sku.c.sku == sku)
        return int((await session.execute(stmt)).scalar_one())
