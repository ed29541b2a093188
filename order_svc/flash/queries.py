"""Queries of the flash sale tables (``flash_sales``, ``flash_tickets``; see :mod:`order_svc.flash.tables`).

A ticket's state changes are compare-and-set on its state (``pending`` -> ``succeeded`` | ``failed``), so
two workers handling the same job (a redelivery racing a slow first delivery) record one outcome.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from meshkit.infra.db import rowcount, session_factory
from meshkit.infra.db import transaction as db_transaction
from order_svc.flash.rules import FlashSale, FlashState, FlashTicket
from order_svc.flash.tables import flash_sales, flash_tickets
from order_svc.orders.queries import clip


def _sale(row: Row[Any]) -> FlashSale:
    m = row._mapping
    return FlashSale(
        sale_id=m["sale_id"],
        sku=m["sku"],
        merchant_id=m["merchant_id"],
        price_cents=int(m["price_cents"]),
        quantity=int(m["quantity"]),
        per_user_limit=int(m["per_user_limit"]),
        starts_at_ms=int(m["starts_at"]),
        ends_at_ms=int(m["ends_at"]),
        created_at_ms=int(m["created_at"]),
    )


def _ticket(row: Row[Any]) -> FlashTicket:
    m = row._mapping
    return FlashTicket(
        ticket=m["ticket"],
        request_id=m["request_id"],
        sale_id=m["sale_id"],
        user_id=m["user_id"],
        sku=m["sku"],
        merchant_id=m["merchant_id"],
        quantity=int(m["quantity"]),
        unit_price_cents=int(m["unit_price_cents"]),
        state=FlashState(m["state"]),
        order_id=m["order_id"],
        reason=m["reason"],
        attempts=int(m["attempts"]),
        queued=bool(m["queued"]),
        returned=bool(m["returned"]),
        created_at_ms=int(m["created_at"]),
        updated_at_ms=int(m["updated_at"]),
    )


class FlashRepo:
    """The flash sale tables on order_svc's database (SQLite or MySQL/MariaDB)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction that commits on success; lock/connection errors become transient."""
        async with db_transaction(self._sessions, "order") as session:
            yield session

    # ------------------------------------------------------------------ sales

    async def get_sale(self, sale_id: str) -> FlashSale | None:
        """The sale ``sale_id``, or None."""
        async with self.transaction() as session:
            row = (await session.execute(select(flash_sales).where(flash_sales.c.sale_id == sale_id))).first()
        return None if row is None else _sale(row)

    async def insert_sale(self, sale: FlashSale) -> bool:
        """Insert a new sale; False when ``sale_id`` exists already."""
        try:
            async with self.transaction() as session:
                await session.execute(
                    insert(flash_sales).values(
                        sale_id=sale.sale_id,
                        sku=sale.sku,
                        merchant_id=sale.merchant_id,
                        price_cents=sale.price_cents,
                        quantity=sale.quantity,
                        per_user_limit=sale.per_user_limit,
                        starts_at=sale.starts_at_ms,
                        ends_at=sale.ends_at_ms,
                        created_at=sale.created_at_ms,
                    )
                )
        except IntegrityError:
            return False
        return True

    # ------------------------------------------------------------------ tickets: reads

    async def get_ticket(self, ticket: str) -> FlashTicket | None:
        """The ticket, or None."""
        async with self.transaction() as session:
            stmt = select(flash_tickets).where(flash_tickets.c.ticket == ticket)
            row = (await session.execute(stmt)).first()
        return None if row is None else _ticket(row)

    async def sale_tickets(self, sale_id: str) -> list[FlashTicket]:
        """Every ticket of ``sale_id`` (what a Redis copy of the sale is loaded from)."""
        async with self.transaction() as session:
            stmt = select(flash_tickets).where(flash_tickets.c.sale_id == sale_id)
            return [_ticket(row) for row in (await session.execute(stmt)).all()]

    async def counts(self, sale_id: str) -> dict[FlashState, int]:
        """How many tickets of ``sale_id`` are in each state."""
        stmt = (
            select(flash_tickets.c.state, func.count())
            .where(flash_tickets.c.sale_id == sale_id)
            .group_by(flash_tickets.c.state)
        )
        async with self.transaction() as session:
            rows = (await session.execute(stmt)).all()
        found = {FlashState(state): int(count) for state, count in rows}
        return {state: found.get(state, 0) for state in FlashState}

    async def unqueued(self, created_before_ms: int, limit: int) -> list[FlashTicket]:
        """Pending tickets created before ``created_before_ms`` whose job was never confirmed queued."""
        stmt = (
            select(flash_tickets)
            .where(
                flash_tickets.c.state == FlashState.PENDING.value,
                flash_tickets.c.queued == 0,
                flash_tickets.c.created_at < created_before_ms,
            )
            .order_by(flash_tickets.c.created_at)
            .limit(limit)
        )
        async with self.transaction() as session:
            return [_ticket(row) for row in (await session.execute(stmt)).all()]

    async def owed(self, limit: int) -> list[FlashTicket]:
        """Failed tickets whose units are not yet back in Redis."""
        stmt = (
            select(flash_tickets)
            .where(flash_tickets.c.state == FlashState.FAILED.value, flash_tickets.c.returned == 0)
            .limit(limit)
        )
        async with self.transaction() as session:
            return [_ticket(row) for row in (await session.execute(stmt)).all()]

    # ------------------------------------------------------------------ tickets: writes

    async def insert_ticket(self, ticket: FlashTicket) -> bool:
        """Insert a new ticket; False when it exists already."""
        values = {
            "ticket": ticket.ticket,
            "request_id": ticket.request_id,
            "sale_id": ticket.sale_id,
            "user_id": ticket.user_id,
            "sku": ticket.sku,
            "merchant_id": ticket.merchant_id,
            "quantity": ticket.quantity,
            "unit_price_cents": ticket.unit_price_cents,
            "state": ticket.state.value,
            "order_id": ticket.order_id,
            "reason": clip(ticket.reason),
            "attempts": ticket.attempts,
            "queued": int(ticket.queued),
            "returned": int(ticket.returned),
            "created_at": ticket.created_at_ms,
            "updated_at": ticket.updated_at_ms,
        }
        try:
            async with self.transaction() as session:
                await session.execute(insert(flash_tickets).values(values))
        except IntegrityError:
            return False
        return True

    async def _update(self, ticket: str, seen: FlashState | None, now_ms: int, **values: Any) -> bool:
        """Set ``values`` on the ticket if it is in state ``seen`` (any state: None); True if it was."""
        conditions = [flash_tickets.c.ticket == ticket]
        if seen is not None:
            conditions.append(flash_tickets.c.state == seen.value)
        stmt = update(flash_tickets).where(*conditions).values(updated_at=now_ms, **values)
        async with self.transaction() as session:
            return rowcount(await session.execute(stmt)) == 1

    async def mark_queued(self, ticket: str, now_ms: int) -> None:
        """Note that the ticket's job is in the work queue."""
        await self._update(ticket, None, now_ms, queued=1)

    async def count_attempt(self, ticket: str, now_ms: int) -> None:
        """Note that a worker started (again) on the pending ticket's job."""
        await self._update(ticket, FlashState.PENDING, now_ms, attempts=flash_tickets.c.attempts + 1)

    async def succeed(self, ticket: str, order_id: str, now_ms: int) -> bool:
        """Move a pending ticket to succeeded with the order; False when it was no longer pending."""
        return await self._update(
            ticket, FlashState.PENDING, now_ms, state=FlashState.SUCCEEDED.value, order_id=order_id, queued=1
        )

    async def fail(self, ticket: str, reason: str, now_ms: int) -> bool:
        """Move a pending ticket to failed, its give-back owed; False when it was no longer pending."""
        return await self._update(
            ticket,
            FlashState.PENDING,
            now_ms,
            state=FlashState.FAILED.value,
            reason=clip(reason),
            returned=0,
            queued=1,
        )

    async def mark_returned(self, ticket: str, now_ms: int) -> None:
        """Note that the failed ticket's units are back in Redis."""
        await self._update(ticket, FlashState.FAILED, now_ms, returned=1)
