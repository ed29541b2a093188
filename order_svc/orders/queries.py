"""Queries of order_svc: orders, items, history and PlaceOrder requests.

Every state change of an order is a compare-and-set: ``UPDATE ... WHERE status = :seen AND version =
:seen_version`` answering whether it won. :class:`OrderRepo` methods taking a session run inside the
caller's SQLAlchemy transaction; the others open their own. The hot path (branch operations, PlaceOrder's
request record) is the *units of work* at the end: plain functions of a :class:`meshkit.store.Conn`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from sqlalchemy import Row, and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from meshkit.errors import AlreadyExists
from meshkit.infra.db import rowcount, session_factory
from meshkit.infra.db import transaction as db_transaction
from meshkit.store import Conn, StoreRunner
from meshkit.store import Row as StoreRow
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
    """The order tables on one database (SQLite or MySQL/MariaDB).

    The request record (PlaceOrder's hot path) and :meth:`read` (the cancel path's reads) go through the
    process's ``runner``; the rest through the SQLAlchemy ``engine``.
    """

    def __init__(self, engine: AsyncEngine, runner: StoreRunner) -> None:
        self._sessions = session_factory(engine)
        self._runner = runner

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

    async def read(self, order_id: str, *, with_items: bool = True) -> Order | None:
        """:meth:`load` through the store runner's reader (never waits for a write lock)."""
        unit = read_order_with_items if with_items else read_order
        return await self._runner.read(lambda conn: unit(conn, order_id))

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
        return await self._runner.read(lambda conn: read_request(conn, request_id))

    async def insert_request(self, record: RequestRecord) -> bool:
        """Insert a new request record; False when ``request_id`` already has one."""
        return await self._runner.run(lambda conn: insert_request_record(conn, record))

    async def finish_request(self, request_id: str, state: RequestState, reason: str, now_ms: int) -> bool:
        """Move a pending request to its outcome; False when it was no longer pending."""
        return await self._runner.run(
            lambda conn: finish_request_record(conn, request_id, state, reason, now_ms)
        )

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


# ====================================================================== units of work (store runner)
# The hot path: plain functions of a meshkit.store Conn (qmark SQL), run by the process's StoreRunner
# inside the barrier's unit (branch ops) or on their own (PlaceOrder's request record).

_ORDER_COLUMNS = (
    "order_id, request_id, gid, user_id, merchant_id, status, version, total_cents, points_used, "
    "amount_due_cents, channel, payment_id, paying_gid, created_at, updated_at, pay_deadline, paid_at, reason"
)
_SELECT_ORDER = f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = ?"
_SELECT_ITEMS = (
    "SELECT sku, merchant_id, quantity, unit_price_cents FROM order_items WHERE order_id = ? ORDER BY line_no"
)
_INSERT_ORDER_COLUMNS = tuple(_ORDER_COLUMNS.split(", "))
_INSERT_ITEM = (
    "INSERT INTO order_items (order_id, line_no, sku, merchant_id, quantity, unit_price_cents) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_HISTORY = (
    "INSERT INTO order_history (order_id, from_status, to_status, reason, actor, gid, at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_REQUEST_COLUMNS = (
    "request_id, user_id, fingerprint, gid, order_ids, state, reason, lease_until, created_at, updated_at"
)
_SELECT_REQUEST = f"SELECT {_REQUEST_COLUMNS} FROM order_requests WHERE request_id = ?"
_FINISH_REQUEST = (
    "UPDATE order_requests SET state = ?, reason = ?, updated_at = ?, lease_until = 0 "
    "WHERE request_id = ? AND state = ?"
)

Condition = tuple[str, tuple[Any, ...]]
"""An extra ``WHERE`` condition of a compare-and-set: a qmark SQL fragment and its parameters."""

PAY_LOCK_FREE: Condition = ("paying_gid IS NULL", ())


def pay_lock_held_by(gid: str) -> Condition:
    """The condition "the pay lock is held by ``gid``"."""
    return ("paying_gid = ?", (gid,))


def _order_of(row: StoreRow) -> Order:
    return Order(
        order_id=row[0],
        request_id=row[1],
        gid=row[2],
        user_id=row[3],
        merchant_id=row[4],
        status=OrderState(row[5]),
        version=int(row[6]),
        total_cents=int(row[7]),
        points_used=int(row[8]),
        amount_due_cents=int(row[9]),
        channel=Channel(int(row[10])),
        payment_id=row[11],
        paying_gid=row[12],
        created_at_ms=int(row[13]),
        updated_at_ms=int(row[14]),
        pay_deadline_ms=None if row[15] is None else int(row[15]),
        paid_at_ms=None if row[16] is None else int(row[16]),
        reason=row[17],
    )


def read_order(conn: Conn, order_id: str) -> Order | None:
    """Unit: the order row ``order_id`` without its items (hidden ones included), or None."""
    row = conn.fetchone(_SELECT_ORDER, (order_id,))
    return None if row is None else _order_of(row)


def read_order_with_items(conn: Conn, order_id: str) -> Order | None:
    """Unit: the order ``order_id`` with its items (hidden ones included), or None."""
    order = read_order(conn, order_id)
    if order is None:
        return None
    items = tuple(
        Item(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in conn.fetchall(_SELECT_ITEMS, (order_id,))
    )
    return replace(order, items=items)


def insert_pending_orders(
    conn: Conn, new_orders: Iterable[NewOrder], *, request_id: str, gid: str, now_ms: int, actor: str
) -> None:
    """Unit: insert orders PENDING (hidden) with their items and a history row each.

    An order id already stored raises :class:`OrderIdTaken` naming it (the unit then rolls back whole).
    """
    insert = conn.dialect.insert_ignore("orders", _INSERT_ORDER_COLUMNS)
    for order in new_orders:
        row = (
            order.order_id,
            request_id,
            gid,
            order.user_id,
            order.merchant_id,
            OrderState.PENDING.value,
            0,
            order.total_cents,
            order.points_used,
            order.amount_due_cents,
            int(Channel.NONE),
            None,
            None,
            now_ms,
            now_ms,
            None,
            None,
            "",
        )
        if conn.execute(insert, row) != 1:
            raise OrderIdTaken(order.order_id)
        conn.executemany(
            _INSERT_ITEM,
            [
                (order.order_id, line_no, i.sku, i.merchant_id, i.quantity, i.unit_price_cents)
                for line_no, i in enumerate(order.items, start=1)
            ],
        )
        append_history(
            conn, HistoryEntry(order.order_id, None, OrderState.PENDING, "placing", actor, gid, now_ms)
        )


def append_history(conn: Conn, entry: HistoryEntry) -> None:
    """Unit: append one history row."""
    conn.execute(
        _INSERT_HISTORY,
        (
            entry.order_id,
            None if entry.from_status is None else entry.from_status.value,
            entry.to_status.value,
            clip(entry.reason),
            clip(entry.actor, 128),
            entry.gid,
            entry.at_ms,
        ),
    )


def cas_order(
    conn: Conn,
    order: Order,
    values: Mapping[str, Any],
    *,
    now_ms: int,
    where: Sequence[Condition] = (),
) -> bool:
    """Unit: compare-and-set ``order`` on its (status, version), setting ``values``; True if won.

    The version is bumped and ``updated_at`` set; ``where`` adds conditions (e.g. the pay lock).
    Column names come from this module's callers, never from a request.
    """
    sets = {**values, "version": order.version + 1, "updated_at": now_ms}
    assignments = ", ".join(f"{column} = ?" for column in sets)
    conditions = ["order_id = ?", "status = ?", "version = ?", *(sql for sql, _ in where)]
    params = [*sets.values(), order.order_id, order.status.value, order.version]
    for _, extra in where:
        params.extend(extra)
    sql = f"UPDATE orders SET {assignments} WHERE {' AND '.join(conditions)}"
    return conn.execute(sql, params) == 1


def cas_transition(
    conn: Conn,
    order: Order,
    target: OrderState,
    *,
    reason: str,
    actor: str,
    gid: str,
    now_ms: int,
    values: Mapping[str, Any] | None = None,
    where: Sequence[Condition] = (),
) -> bool:
    """Unit: CAS ``order`` to ``target`` and write the history row; True if won (see OrderRepo.transition)."""
    changes = {"status": target.value, "reason": clip(reason), **dict(values or {})}
    if not cas_order(conn, order, changes, now_ms=now_ms, where=where):
        return False
    append_history(conn, HistoryEntry(order.order_id, order.status, target, reason, actor, gid, now_ms))
    return True


def _request_of(row: StoreRow) -> RequestRecord:
    return RequestRecord(
        request_id=row[0],
        user_id=row[1],
        fingerprint=row[2],
        gid=row[3],
        order_ids=tuple(json.loads(row[4])),
        state=RequestState(row[5]),
        reason=row[6],
        lease_until_ms=int(row[7]),
        created_at_ms=int(row[8]),
    )


def read_request(conn: Conn, request_id: str) -> RequestRecord | None:
    """Unit: the PlaceOrder record of ``request_id``, or None."""
    row = conn.fetchone(_SELECT_REQUEST, (request_id,))
    return None if row is None else _request_of(row)


def insert_request_record(conn: Conn, record: RequestRecord) -> bool:
    """Unit: insert a new request record; False when ``request_id`` already has one."""
    insert = conn.dialect.insert_ignore("order_requests", tuple(_REQUEST_COLUMNS.split(", ")))
    row = (
        record.request_id,
        record.user_id,
        record.fingerprint,
        record.gid,
        json.dumps(list(record.order_ids)),
        record.state.value,
        clip(record.reason),
        record.lease_until_ms,
        record.created_at_ms,
        record.created_at_ms,
    )
    return conn.execute(insert, row) == 1


def finish_request_record(conn: Conn, request_id: str, state: RequestState, reason: str, now_ms: int) -> bool:
    """Unit: move a pending request to its outcome; False when it was no longer pending."""
    params = (state.value, clip(reason), now_ms, request_id, RequestState.PENDING.value)
    return conn.execute(_FINISH_REQUEST, params) == 1
