"""Queries of order_svc: orders, items, history and PlaceOrder requests.

Every state change of an order is a compare-and-set: ``UPDATE ... WHERE status = :seen AND version =
:seen_version`` answering whether it won. Functions taking a session run inside the caller's transaction
(usually the barrier's); the others open their own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Row, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from meshkit.errors import AlreadyExists
from meshkit.infra.db import rowcount, session_factory
from meshkit.infra.db import transaction as db_transaction
from order_svc.orders.states import HIDDEN, OrderState
from order_svc.orders.tables import REASON_LEN, order_history, order_items, order_requests, orders
from order_svc.orders.values import (
    Channel,
    HistoryEntry,
    Item,
    NewOrder,
    Order,
    RequestRecord,
    RequestState,
)

_HIDDEN_VALUES = tuple(state.value for state in HIDDEN)


def clip(text: str, limit: int = REASON_LEN) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis), as the reason columns store it."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _order(row: Row[Any], items: tuple[Item, ...] = ()) -> Order:
    m = row._mapping
    return Order(
        order_id=m["order_id"],
        request_id=m["request_id"],
        gid=m["gid"],
        user_id=m["user_id"],
        merchant_id=m["merchant_id"],
        status=OrderState(m["status"]),
        version=int(m["version"]),
        total_cents=int(m["total_cents"]),
        points_used=int(m["points_used"]),
        amount_due_cents=int(m["amount_due_cents"]),
        channel=Channel(int(m["channel"])),
        payment_id=m["payment_id"],
        paying_gid=m["paying_gid"],
        created_at_ms=int(m["created_at"]),
        updated_at_ms=int(m["updated_at"]),
        pay_deadline_ms=None if m["pay_deadline"] is None else int(m["pay_deadline"]),
        paid_at_ms=None if m["paid_at"] is None else int(m["paid_at"]),
        reason=m["reason"],
        items=items,
    )


def _request(row: Row[Any]) -> RequestRecord:
    m = row._mapping
    return RequestRecord(
        request_id=m["request_id"],
        user_id=m["user_id"],
        fingerprint=m["fingerprint"],
        gid=m["gid"],
        order_ids=tuple(json.loads(m["order_ids"])),
        state=RequestState(m["state"]),
        reason=m["reason"],
        lease_until_ms=int(m["lease_until"]),
        created_at_ms=int(m["created_at"]),
    )


class OrderIdTaken(AlreadyExists):
    """An order row with this id is already stored (the unique key refused a second insert)."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order_id {order_id} already exists")
        self.order_id = order_id


class OrderRepo:
    """The order tables on one database (SQLite or MySQL/MariaDB)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction that commits on success; lock/connection errors become transient."""
        async with db_transaction(self._sessions, "order") as session:
            yield session

    # ------------------------------------------------------------------ orders: reads

    async def get(self, session: AsyncSession, order_id: str, *, with_items: bool = True) -> Order | None:
        """The order ``order_id`` (hidden ones included), or None."""
        row = (await session.execute(select(orders).where(orders.c.order_id == order_id))).first()
        if row is None:
            return None
        items = (await self._items(session, [order_id])).get(order_id, ()) if with_items else ()
        return _order(row, items)

    async def load(self, order_id: str, *, with_items: bool = True) -> Order | None:
        """:meth:`get` in its own transaction."""
        async with self.transaction() as session:
            return await self.get(session, order_id, with_items=with_items)

    async def _items(self, session: AsyncSession, order_ids: Sequence[str]) -> dict[str, tuple[Item, ...]]:
        if not order_ids:
            return {}
        stmt = (
            select(order_items)
            .where(order_items.c.order_id.in_(order_ids))
            .order_by(order_items.c.order_id, order_items.c.line_no)
        )
        lines: dict[str, list[Item]] = {}
        for row in (await session.execute(stmt)).all():
            m = row._mapping
            lines.setdefault(m["order_id"], []).append(
                Item(m["sku"], m["merchant_id"], int(m["quantity"]), int(m["unit_price_cents"]))
            )
        return {order_id: tuple(items) for order_id, items in lines.items()}

    async def list_for_user(self, user_id: str, limit: int, after: tuple[int, str] | None) -> list[Order]:
        """Up to ``limit`` visible orders of ``user_id``, newest first, strictly after cursor ``after``."""
        conditions: list[ColumnElement[bool]] = [
            orders.c.user_id == user_id,
            orders.c.status.not_in(_HIDDEN_VALUES),
        ]
        if after is not None:
            created, order_id = after
            conditions.append(
                or_(
                    orders.c.created_at < created,
                    and_(orders.c.created_at == created, orders.c.order_id < order_id),
                )
            )
        stmt = (
            select(orders)
            .where(*conditions)
            .order_by(orders.c.created_at.desc(), orders.c.order_id.desc())
            .limit(limit)
        )
        async with self.transaction() as session:
            rows = (await session.execute(stmt)).all()
            items = await self._items(session, [row._mapping["order_id"] for row in rows])
        return [_order(row, items.get(row._mapping["order_id"], ())) for row in rows]

    async def overdue(self, now_ms: int, limit: int) -> list[str]:
        """Ids of CREATED orders without a pay lock whose pay deadline is at or before ``now_ms``."""
        stmt = (
            select(orders.c.order_id)
            .where(
                orders.c.status == OrderState.CREATED.value,
                orders.c.pay_deadline <= now_ms,
                orders.c.paying_gid.is_(None),
            )
            .order_by(orders.c.pay_deadline)
            .limit(limit)
        )
        async with self.transaction() as session:
            return [str(r[0]) for r in (await session.execute(stmt)).all()]

    async def visible(self) -> list[Order]:
        """Every visible order with its items, oldest first: the audit's view (one consistent read)."""
        shown = orders.c.status.not_in(_HIDDEN_VALUES)
        stmt = select(orders).where(shown).order_by(orders.c.created_at, orders.c.order_id)
        lines_stmt = (
            select(order_items)
            .where(order_items.c.order_id.in_(select(orders.c.order_id).where(shown)))
            .order_by(order_items.c.order_id, order_items.c.line_no)
        )
        async with self.transaction() as session:
            rows = (await session.execute(stmt)).all()
            lines: dict[str, list[Item]] = {}
            for row in (await session.execute(lines_stmt)).all():
                m = row._mapping
                lines.setdefault(m["order_id"], []).append(
                    Item(m["sku"], m["merchant_id"], int(m["quantity"]), int(m["unit_price_cents"]))
                )
        return [_order(row, tuple(lines.get(row._mapping["order_id"], ()))) for row in rows]

    async def history(self, order_id: str) -> list[HistoryEntry]:
        """Every transition of ``order_id``, oldest first."""
        stmt = select(order_history).where(order_history.c.order_id == order_id).order_by(order_history.c.id)
        async with self.transaction() as session:
            rows = (await session.execute(stmt)).all()
        return [
            HistoryEntry(
                order_id=m["order_id"],
                from_status=None if m["from_status"] is None else OrderState(m["from_status"]),
                to_status=OrderState(m["to_status"]),
                reason=m["reason"],
                actor=m["actor"],
                gid=m["gid"],
                at_ms=int(m["at"]),
            )
            for m in (row._mapping for row in rows)
        ]

    # ------------------------------------------------------------------ orders: writes

    async def insert_orders(
        self,
        session: AsyncSession,
        new_orders: Iterable[NewOrder],
        *,
        request_id: str,
        gid: str,
        now_ms: int,
        actor: str,
    ) -> None:
        """Insert orders PENDING (hidden) with their items and a history row each.

        An order id already stored (a concurrent insert committed it first) raises :class:`OrderIdTaken`
        naming it; the caller's transaction must then roll back.
        """
        for order in new_orders:
            await self._insert_order(session, order, request_id=request_id, gid=gid, now_ms=now_ms)
            await session.execute(
                insert(order_items),
                [
                    {
                        "order_id": order.order_id,
                        "line_no": line_no,
                        "sku": item.sku,
                        "merchant_id": item.merchant_id,
                        "quantity": item.quantity,
                        "unit_price_cents": item.unit_price_cents,
                    }
                    for line_no, item in enumerate(order.items, start=1)
                ],
            )
            await self.add_history(
                session,
                HistoryEntry(order.order_id, None, OrderState.PENDING, "placing", actor, gid, now_ms),
            )

    @staticmethod
    async def _insert_order(
        session: AsyncSession, order: NewOrder, *, request_id: str, gid: str, now_ms: int
    ) -> None:
        """Insert one order row PENDING; OrderIdTaken when its id is taken (the unique key refused it)."""
        try:
            await session.execute(
                insert(orders).values(
                    order_id=order.order_id,
                    request_id=request_id,
                    gid=gid,
                    user_id=order.user_id,
                    merchant_id=order.merchant_id,
                    status=OrderState.PENDING.value,
                    version=0,
                    total_cents=order.total_cents,
                    points_used=order.points_used,
                    amount_due_cents=order.amount_due_cents,
                    channel=int(Channel.NONE),
                    payment_id=None,
                    paying_gid=None,
                    created_at=now_ms,
                    updated_at=now_ms,
                    pay_deadline=None,
                    paid_at=None,
                    reason="",
                )
            )
        except IntegrityError as exc:
            raise OrderIdTaken(order.order_id) from exc

    async def transition(
        self,
        session: AsyncSession,
        order: Order,
        target: OrderState,
        *,
        reason: str,
        actor: str,
        gid: str,
        now_ms: int,
        values: Mapping[str, Any] | None = None,
        where: Sequence[ColumnElement[bool]] = (),
    ) -> bool:
        """CAS ``order`` from its (status, version) to ``target`` and write the history row; True if won.

        ``values`` sets more columns in the same update; ``where`` adds conditions (e.g. the pay lock).
        The caller checks the transition table first.
        """
        stmt = (
            update(orders)
            .where(
                orders.c.order_id == order.order_id,
                orders.c.status == order.status.value,
                orders.c.version == order.version,
                *where,
            )
            .values(
                status=target.value,
                version=order.version + 1,
                updated_at=now_ms,
                reason=clip(reason),
                **dict(values or {}),
            )
        )
        if rowcount(await session.execute(stmt)) != 1:
            return False
        await self.add_history(
            session, HistoryEntry(order.order_id, order.status, target, reason, actor, gid, now_ms)
        )
        return True

    async def add_history(self, session: AsyncSession, entry: HistoryEntry) -> None:
        """Append one history row."""
        await session.execute(
            insert(order_history).values(
                order_id=entry.order_id,
                from_status=None if entry.from_status is None else entry.from_status.value,
                to_status=entry.to_status.value,
                reason=clip(entry.reason),
                actor=clip(entry.actor, 128),
                gid=entry.gid,
                at=entry.at_ms,
            )
        )

    async def update_fields(
        self,
        session: AsyncSession,
        order: Order,
        values: Mapping[str, Any],
        *,
        now_ms: int,
        where: Sequence[ColumnElement[bool]] = (),
    ) -> bool:
        """CAS a change that is not a transition (pay lock, payment id) on (status, version); True if won."""
        stmt = (
            update(orders)
            .where(
                orders.c.order_id == order.order_id,
                orders.c.status == order.status.value,
                orders.c.version == order.version,
                *where,
            )
            .values(version=order.version + 1, updated_at=now_ms, **dict(values))
        )
        return rowcount(await session.execute(stmt)) == 1

    # ------------------------------------------------------------------ requests

    async def get_request(self, request_id: str) -> RequestRecord | None:
        """The record of ``request_id``, or None."""
        async with self.transaction() as session:
            stmt = select(order_requests).where(order_requests.c.request_id == request_id)
            row = (await session.execute(stmt)).first()
        return None if row is None else _request(row)

    async def insert_request(self, record: RequestRecord) -> bool:
        """Insert a new request record; False when ``request_id`` already has one."""
        values = {
            "request_id": record.request_id,
            "user_id": record.user_id,
            "fingerprint": record.fingerprint,
            "gid": record.gid,
            "order_ids": json.dumps(list(record.order_ids)),
            "state": record.state.value,
            "reason": clip(record.reason),
            "lease_until": record.lease_until_ms,
            "created_at": record.created_at_ms,
            "updated_at": record.created_at_ms,
        }
        try:
            async with self.transaction() as session:
                await session.execute(insert(order_requests).values(values))
        except IntegrityError:
            return False
        return True

    async def finish_request(self, request_id: str, state: RequestState, reason: str, now_ms: int) -> bool:
        """Move a pending request to its outcome; False when it was no longer pending."""
        stmt = (
            update(order_requests)
            .where(
                order_requests.c.request_id == request_id,
                order_requests.c.state == RequestState.PENDING.value,
            )
            .values(state=state.value, reason=clip(reason), updated_at=now_ms, lease_until=0)
        )
        async with self.transaction() as session:
            return rowcount(await session.execute(stmt)) == 1

    async def set_lease(self, request_id: str, seen_lease_ms: int, lease_until_ms: int, now_ms: int) -> bool:
        """CAS a pending request's lease from ``seen_lease_ms`` (claim, renew or release); True if won."""
        stmt = (
            update(order_requests)
            .where(
                order_requests.c.request_id == request_id,
                order_requests.c.state == RequestState.PENDING.value,
                order_requests.c.lease_until == seen_lease_ms,
            )
            .values(lease_until=lease_until_ms, updated_at=now_ms)
        )
        async with self.transaction() as session:
            return rowcount(await session.execute(stmt)) == 1

    async def stale_requests(self, now_ms: int, limit: int) -> list[RequestRecord]:
        """Pending requests whose lease has expired (their initiator was lost)."""
        stmt = (
            select(order_requests)
            .where(
                order_requests.c.state == RequestState.PENDING.value,
                order_requests.c.lease_until < now_ms,
            )
            .order_by(order_requests.c.lease_until)
            .limit(limit)
        )
        async with self.transaction() as session:
            return [_request(row) for row in (await session.execute(stmt)).all()]

    async def count_orders(self) -> int:
        """How many order rows exist (hidden ones included)."""
        async with self.transaction() as session:
            return int((await session.execute(select(func.count()).select_from(orders))).scalar_one())
