"""Queries on pay_svc's tables.

:class:`PayRepo` methods take the caller's SQLAlchemy session (inside its transaction); the refund's hot
path is the *units of work* at the end: plain functions of a :class:`meshkit.store.Conn`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.schema import Table

from meshkit.infra.db import is_mysql, rowcount
from meshkit.store import Conn
from meshkit.store import Row as StoreRow
from pay_svc.payments.tables import callback_nonces, payments, refunds
from pay_svc.payments.values import AuditRow, Channel, Payment, PaymentStatus, Refund


def _payment(row: Row[Any], refund_id: int | None = None) -> Payment:
    return Payment(
        payment_id=int(row.payment_id),
        order_id=row.order_id,
        user_id=row.user_id,
        amount_cents=int(row.amount_cents),
        channel=Channel(row.channel),
        status=PaymentStatus(row.status),
        token=row.token,
        trade_no=row.trade_no,
        created_at_ms=int(row.created_at),
        paid_at_ms=None if row.paid_at is None else int(row.paid_at),
        order_notified=bool(row.order_notified),
        closed_by=row.closed_by,
        refund_id=refund_id,
    )


def _refund(row: Row[Any]) -> Refund:
    return Refund(
        refund_id=int(row.refund_id),
        out_refund_no=row.out_refund_no,
        payment_id=int(row.payment_id),
        order_id=row.order_id,
        amount_cents=int(row.amount_cents),
        reason=row.reason,
        gid=row.gid,
        created_at_ms=int(row.created_at),
    )


class PayRepo:
    """Payments, refunds and callback nonces on SQLite or MySQL/MariaDB."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._mysql = is_mysql(engine)

    def _insert_ignore(self, table: Table, values: dict[str, Any]) -> Insert:
        """INSERT that does nothing when a unique key already exists (rowcount 0)."""
        if self._mysql:
            return mysql_insert(table).values(values).prefix_with("IGNORE")
        return sqlite_insert(table).values(values).on_conflict_do_nothing()

    # ------------------------------------------------------------------ payments

    async def insert_payment(self, session: AsyncSession, payment: Payment, now_ms: int) -> bool:
        """Insert ``payment`` unless its order already has one; True when inserted."""
        values = {
            "payment_id": payment.payment_id,
            "order_id": payment.order_id,
            "user_id": payment.user_id,
            "amount_cents": payment.amount_cents,
            "channel": payment.channel.value,
            "status": payment.status.value,
            "token": payment.token,
            "trade_no": payment.trade_no,
            "created_at": payment.created_at_ms,
            "paid_at": payment.paid_at_ms,
            "updated_at": now_ms,
            "order_notified": payment.order_notified,
            "next_notify_at": None,
            "notify_attempts": 0,
            "closed_by": payment.closed_by,
        }
        return rowcount(await session.execute(self._insert_ignore(payments, values))) == 1

    async def payment(
        self,
        session: AsyncSession,
        *,
        payment_id: int | None = None,
        order_id: str | None = None,
        for_update: bool = False,
    ) -> Payment | None:
        """The payment with ``payment_id`` (else the one of ``order_id``), with its refund id if any."""
        stmt = select(payments)
        if payment_id is not None:
            stmt = stmt.where(payments.c.payment_id == payment_id)
        elif order_id is not None:
            stmt = stmt.where(payments.c.order_id == order_id)
        else:
            raise ValueError("payment_id or order_id is required")
        if for_update:
            stmt = stmt.with_for_update()
        row = (await session.execute(stmt)).first()
        if row is None:
            return None
        refund = await self.refund_of_payment(session, int(row.payment_id))
        return _payment(row, refund.refund_id if refund is not None else None)

    async def set_status(
        self,
        session: AsyncSession,
        payment_id: int,
        expected: PaymentStatus,
        new: PaymentStatus,
        now_ms: int,
        **values: Any,
    ) -> bool:
        """Compare-and-set the status (plus other columns); True when the payment was in ``expected``."""
        stmt = (
            update(payments)
            .where(payments.c.payment_id == payment_id, payments.c.status == expected.value)
            .values(status=new.value, updated_at=now_ms, **values)
        )
        return rowcount(await session.execute(stmt)) == 1

    async def due_notifications(self, session: AsyncSession, now_ms: int, limit: int) -> list[int]:
        """Ids of SUCCEEDED payments whose order was not told yet and whose next attempt is due."""
        stmt = (
            select(payments.c.payment_id)
            .where(
                payments.c.next_notify_at <= now_ms,
                payments.c.status == PaymentStatus.SUCCEEDED.value,
                payments.c.order_notified.is_(False),
            )
            .order_by(payments.c.next_notify_at)
            .limit(limit)
        )
        return [int(pid) for pid in (await session.execute(stmt)).scalars()]

    async def mark_notified(self, session: AsyncSession, payment_id: int, now_ms: int) -> bool:
        """Record that order_svc knows of the payment (nothing left for the notifier)."""
        stmt = (
            update(payments)
            .where(payments.c.payment_id == payment_id, payments.c.order_notified.is_(False))
            .values(order_notified=True, next_notify_at=None, updated_at=now_ms)
        )
        return rowcount(await session.execute(stmt)) == 1

    async def notify_failed(self, session: AsyncSession, payment_id: int, retry_at_ms: int) -> None:
        """Count a failed notification and schedule the next one."""
        stmt = (
            update(payments)
            .where(payments.c.payment_id == payment_id, payments.c.order_notified.is_(False))
            .values(next_notify_at=retry_at_ms, notify_attempts=payments.c.notify_attempts + 1)
        )
        await session.execute(stmt)

    # ------------------------------------------------------------------ refunds

    async def insert_refund(self, session: AsyncSession, refund: Refund) -> bool:
        """Insert ``refund`` unless its out_refund_no or its payment has one; True when inserted."""
        values = {
            "refund_id": refund.refund_id,
            "out_refund_no": refund.out_refund_no,
            "payment_id": refund.payment_id,
            "order_id": refund.order_id,
            "amount_cents": refund.amount_cents,
            "reason": refund.reason,
            "gid": refund.gid,
            "created_at": refund.created_at_ms,
        }
        return rowcount(await session.execute(self._insert_ignore(refunds, values))) == 1

    async def refund_of_payment(self, session: AsyncSession, payment_id: int) -> Refund | None:
        """The refund of a payment (there is at most one)."""
        row = (await session.execute(select(refunds).where(refunds.c.payment_id == payment_id))).first()
        return None if row is None else _refund(row)

    # ------------------------------------------------------------------ nonces

    async def use_nonce(
        self, session: AsyncSession, nonce: str, payment_id: int, now_ms: int, expires_at_ms: int
    ) -> bool:
        """Record a callback nonce; False when it was used before (a replay)."""
        values = {"nonce": nonce, "payment_id": payment_id, "created_at": now_ms, "expires_at": expires_at_ms}
        return rowcount(await session.execute(self._insert_ignore(callback_nonces, values))) == 1

    async def delete_expired_nonces(self, session: AsyncSession, now_ms: int, batch: int) -> int:
        """Delete up to ``batch`` nonces that expired before ``now_ms``; the count deleted."""
        expired = (
            select(callback_nonces.c.nonce)
            .where(callback_nonces.c.expires_at < now_ms)
            .order_by(callback_nonces.c.expires_at)
            .limit(batch)
        )
        nonces: Sequence[str] = (await session.execute(expired)).scalars().all()
        if not nonces:
            return 0
        result = await session.execute(delete(callback_nonces).where(callback_nonces.c.nonce.in_(nonces)))
        return rowcount(result)

    # ------------------------------------------------------------------ audit

    async def audit_rows(self, session: AsyncSession) -> list[AuditRow]:
        """Every payment with its refund count and refunded amount, oldest first."""
        totals = (
            select(
                refunds.c.payment_id,
                func.count().label("refund_count"),
                func.sum(refunds.c.amount_cents).label("refunded_cents"),
            )
            .group_by(refunds.c.payment_id)
            .subquery()
        )
        stmt = (
            select(payments, totals.c.refund_count, totals.c.refunded_cents)
            .outerjoin(totals, totals.c.payment_id == payments.c.payment_id)
            .order_by(payments.c.payment_id)
        )
        return [
            AuditRow(
                payment_id=int(row.payment_id),
                order_id=row.order_id,
                channel=Channel(row.channel),
                status=PaymentStatus(row.status),
                amount_cents=int(row.amount_cents),
                succeeded=row.paid_at is not None,
                refund_count=int(row.refund_count or 0),
                refunded_cents=int(row.refunded_cents or 0),
            )
            for row in await session.execute(stmt)
        ]


# ====================================================================== units of work (store runner)
# The hot path (the RefundBranch and Refund): plain functions of a meshkit.store Conn (qmark SQL), run
# by the process's StoreRunner, inside the barrier's unit for the branch.

_PAYMENT_COLUMNS = (
    "payment_id, order_id, user_id, amount_cents, channel, status, token, trade_no, created_at, paid_at, "
    "order_notified, closed_by"
)
_REFUND_COLUMNS = "refund_id, out_refund_no, payment_id, order_id, amount_cents, reason, gid, created_at"
_SELECT_REFUND_BY_NO = f"SELECT {_REFUND_COLUMNS} FROM refunds WHERE out_refund_no = ?"
_SELECT_REFUND_OF_PAYMENT = f"SELECT {_REFUND_COLUMNS} FROM refunds WHERE payment_id = ?"
# Columns a status compare-and-set may also set (callers pass them by name, never from a request).
STATUS_EXTRAS = frozenset({"trade_no", "paid_at", "next_notify_at", "order_notified", "closed_by"})


def _payment_of(row: StoreRow, refund_id: int | None) -> Payment:
    return Payment(
        payment_id=int(row[0]),
        order_id=row[1],
        user_id=row[2],
        amount_cents=int(row[3]),
        channel=Channel(row[4]),
        status=PaymentStatus(row[5]),
        token=row[6],
        trade_no=row[7],
        created_at_ms=int(row[8]),
        paid_at_ms=None if row[9] is None else int(row[9]),
        order_notified=bool(row[10]),
        closed_by=row[11],
        refund_id=refund_id,
    )


def _refund_of(row: StoreRow) -> Refund:
    return Refund(
        refund_id=int(row[0]),
        out_refund_no=row[1],
        payment_id=int(row[2]),
        order_id=row[3],
        amount_cents=int(row[4]),
        reason=row[5],
        gid=row[6],
        created_at_ms=int(row[7]),
    )


def read_payment_locked(
    conn: Conn, *, payment_id: int | None = None, order_id: str | None = None
) -> Payment | None:
    """Unit: the payment with ``payment_id`` (else the one of ``order_id``) and its refund id, row-locked.

    The lock (``FOR UPDATE`` on MySQL/MariaDB; the single writer on SQLite) is held until the unit commits.
    """
    key: int | str
    if payment_id is not None:
        where, key = "payment_id = ?", payment_id
    elif order_id is not None:
        where, key = "order_id = ?", order_id
    else:
        raise ValueError("payment_id or order_id is required")
    lock = " FOR UPDATE" if conn.dialect.is_mysql else ""
    row = conn.fetchone(f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE {where}{lock}", (key,))
    if row is None:
        return None
    refund = read_refund_of_payment(conn, int(row[0]))
    return _payment_of(row, refund.refund_id if refund is not None else None)


def read_refund_by_no(conn: Conn, out_refund_no: str) -> Refund | None:
    """Unit: the refund with this idempotency key."""
    row = conn.fetchone(_SELECT_REFUND_BY_NO, (out_refund_no,))
    return None if row is None else _refund_of(row)


def read_refund_of_payment(conn: Conn, payment_id: int) -> Refund | None:
    """Unit: the refund of a payment (there is at most one)."""
    row = conn.fetchone(_SELECT_REFUND_OF_PAYMENT, (payment_id,))
    return None if row is None else _refund_of(row)


def insert_refund_row(conn: Conn, refund: Refund) -> bool:
    """Unit: insert ``refund`` unless its out_refund_no or its payment has one; True when inserted."""
    insert = conn.dialect.insert_ignore("refunds", tuple(_REFUND_COLUMNS.split(", ")))
    row = (
        refund.refund_id,
        refund.out_refund_no,
        refund.payment_id,
        refund.order_id,
        refund.amount_cents,
        refund.reason,
        refund.gid,
        refund.created_at_ms,
    )
    return conn.execute(insert, row) == 1


def cas_payment_status(
    conn: Conn, payment_id: int, expected: PaymentStatus, new: PaymentStatus, now_ms: int, **values: Any
) -> bool:
    """Unit: CAS the status (plus columns of :data:`STATUS_EXTRAS`); True when it was ``expected``."""
    unknown = set(values) - STATUS_EXTRAS
    if unknown:
        raise ValueError(f"not a payment column a status change sets: {sorted(unknown)}")
    sets = {"status": new.value, "updated_at": now_ms, **values}
    assignments = ", ".join(f"{column} = ?" for column in sets)
    sql = f"UPDATE payments SET {assignments} WHERE payment_id = ? AND status = ?"
    return conn.execute(sql, (*sets.values(), payment_id, expected.value)) == 1
