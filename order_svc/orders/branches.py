"""The order's branch operations: each is ONE unit of work (barrier + order SQL + commit) on the runner.

Through :class:`meshkit.barrier.RunnerBarrier`: exactly once, empty rollback safe, late tries refused.

=====================  =========================================================================
TryCreate              insert the orders PENDING (hidden: not listed, GetOrder says NOT_FOUND)
ConfirmCreate          PENDING -> CREATED with the pay deadline; then schedule the deadline message
CancelCreate           PENDING -> VOIDED (never visible)
TryMarkPaid            take the pay lock (``paying_gid``) of a CREATED order
ConfirmMarkPaid        CREATED -> PAID (payment id, channel), lock cleared
CancelMarkPaid         clear the lock (if this transaction holds it)
FinishRefund           REFUNDING -> REFUNDED (the cancel chain's last branch; idempotent)
QueryPrepared          the cancel MSG's check-back
=====================  =========================================================================

Confirm and cancel never fail for business reasons. A confirm that comes before its try answers
``FAILED_PRECONDITION`` (not yet; retried); one whose try cannot have succeeded (the orders belong to
another gid or were voided, another payment holds the order) answers ``ABORTED``; both are logged at
WARNING with the gid. Any other state they do not expect is a bug, reported as a transient error so the
coordinator keeps retrying and lists the transaction as stuck. A try whose order id another gid already
used is refused (``ABORTED``, naming the order id).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from meshkit.barrier import Outcome, RunnerBarrier
from meshkit.errors import BranchFailure, BranchOngoing, TransientError
from meshkit.runtime.clock import Clock, now_ms
from meshkit.store import Conn
from meshkit.tx.context import TxContext
from order_svc.adapters.ports import DeadlineTimer
from order_svc.config import OrderSection
from order_svc.orders.lifecycle import Actor, transition_in
from order_svc.orders.queries import (
    PAY_LOCK_FREE,
    OrderIdTaken,
    cas_order,
    insert_pending_orders,
    pay_lock_held_by,
    read_order,
)
from order_svc.orders.states import OrderState, is_visible, pending_external, refusal
from order_svc.orders.values import Channel, NewOrder, Order

log = logging.getLogger(__name__)

COORDINATOR = "coordinator"
MS = 1000


@dataclass(frozen=True, slots=True)
class MarkPaid:
    """The payload of the MarkPaid branch: which order, which payment, how much, which channel."""

    order_id: str
    payment_id: str
    amount_cents: int
    channel: Channel


def _not_yet(ctx: TxContext, message: str) -> BranchOngoing:
    """A confirm that came before its try: ``FAILED_PRECONDITION``, the coordinator asks again later."""
    log.warning("gid %s branch %s %s not yet: %s", ctx.gid, ctx.branch_id, ctx.op.value, message)
    return BranchOngoing(f"{ctx.op.value} of gid {ctx.gid} not yet possible: {message}")


def _never(ctx: TxContext, message: str) -> BranchFailure:
    """A confirm whose try can never have succeeded (another gid's, rolled back): ``ABORTED``."""
    log.warning("gid %s branch %s %s refused: %s", ctx.gid, ctx.branch_id, ctx.op.value, message)
    return BranchFailure(f"{ctx.op.value} of gid {ctx.gid} can never succeed: {message}")


def _used(ctx: TxContext, order_id: str) -> BranchFailure:
    """A try whose order id another gid already used: ``ABORTED``, naming it."""
    log.warning("gid %s branch %s try refused: order_id %s is already used", ctx.gid, ctx.branch_id, order_id)
    return BranchFailure(f"order_id {order_id} is already used by another transaction")


class OrderBranches:
    """The branch RPCs' domain side: each op one unit of work (barrier + order SQL) on the store runner."""

    def __init__(
        self,
        barrier: RunnerBarrier,
        timer: DeadlineTimer,
        clock: Clock,
        settings: OrderSection,
    ) -> None:
        self._barrier = barrier
        self._timer = timer
        self._clock = clock
        self._settings = settings

    # ------------------------------------------------------------------ placing (TCC branch "order")

    async def try_create(self, ctx: TxContext, request_id: str, new_orders: Sequence[NewOrder]) -> Outcome:
        """Insert the orders hidden (PENDING)."""
        now = now_ms(self._clock)

        def business(conn: Conn) -> None:
            if _taken(conn, ctx, new_orders):
                return  # this gid inserted them before (its barrier row was cleaned up early)
            try:
                insert_pending_orders(
                    conn, new_orders, request_id=request_id, gid=ctx.gid, now_ms=now, actor=COORDINATOR
                )
            except OrderIdTaken as exc:
                # A concurrent try of another gid inserted the id after _taken looked: the same refusal.
                raise _used(ctx, exc.order_id) from exc

        return (await self._barrier.run(ctx, business)).outcome

    async def confirm_create(self, ctx: TxContext, new_orders: Sequence[NewOrder]) -> Outcome:
        """Make the orders visible as CREATED with their pay deadline, then schedule the deadline message."""
        now = now_ms(self._clock)
        deadline = now + round(self._settings.pay_timeout_seconds * MS)

        def business(conn: Conn) -> None:
            for new in new_orders:
                order = read_order(conn, new.order_id)
                if order is None:
                    raise _not_yet(ctx, f"order {new.order_id} has not been tried")
                if order.gid != ctx.gid or order.status is OrderState.VOIDED:
                    raise _never(ctx, f"order {new.order_id} is {order.status} under another try")
                if order.status is OrderState.PENDING:
                    transition_in(
                        conn,
                        order,
                        OrderState.CREATED,
                        reason="placed",
                        actor=Actor(COORDINATOR, ctx.gid),
                        now_ms=now,
                        values={"pay_deadline": deadline},
                    )

        result = await self._barrier.run(ctx, business)
        if result.applied:
            await asyncio.gather(*(self._timer.schedule(new.order_id, deadline) for new in new_orders))
        return result.outcome

    async def cancel_create(self, ctx: TxContext, new_orders: Sequence[NewOrder]) -> Outcome:
        """Void the orders (PENDING -> VOIDED); an empty rollback does nothing."""
        now = now_ms(self._clock)

        def business(conn: Conn) -> None:
            for new in new_orders:
                order = read_order(conn, new.order_id)
                if order is not None and order.status is OrderState.PENDING:
                    transition_in(
                        conn,
                        order,
                        OrderState.VOIDED,
                        reason="placing rolled back",
                        actor=Actor(COORDINATOR, ctx.gid),
                        now_ms=now,
                    )

        return (await self._barrier.run(ctx, business)).outcome

    # ------------------------------------------------------------------ points payment (TCC branch "order")

    async def try_mark_paid(self, ctx: TxContext, paid: MarkPaid) -> Outcome:
        """Take the pay lock of a CREATED, not overdue order whose amount due is ``paid.amount_cents``."""
        now = now_ms(self._clock)

        def business(conn: Conn) -> None:
            order = _payable(ctx, paid, read_order(conn, paid.order_id), now)
            if not cas_order(conn, order, {"paying_gid": ctx.gid}, now_ms=now, where=[PAY_LOCK_FREE]):
                raise BranchFailure(f"order {paid.order_id} changed concurrently; not paid")

        return (await self._barrier.run(ctx, business)).outcome

    async def confirm_mark_paid(self, ctx: TxContext, paid: MarkPaid) -> Outcome:
        """CREATED -> PAID under this transaction's pay lock, recording the payment; the lock is cleared."""
        now = now_ms(self._clock)

        def business(conn: Conn) -> None:
            order = read_order(conn, paid.order_id)
            if order is None or order.status is OrderState.PENDING:
                raise _not_yet(ctx, f"order {paid.order_id} not found")
            if order.status is not OrderState.CREATED or order.paying_gid != ctx.gid:
                if order.payment_id == paid.payment_id and order.status is not OrderState.CREATED:
                    return  # already confirmed (the barrier row was cleaned up early)
                if order.status is OrderState.CREATED and order.paying_gid is None:
                    raise _not_yet(ctx, f"order {order.order_id} is not locked by this payment's try")
                raise _never(ctx, f"order {order.order_id} is {order.status} locked by {order.paying_gid}")
            transition_in(
                conn,
                order,
                OrderState.PAID,
                reason=f"paid with {paid.channel.name.lower()} ({paid.payment_id})",
                actor=Actor(COORDINATOR, ctx.gid),
                now_ms=now,
                values={
                    "payment_id": paid.payment_id,
                    "channel": int(paid.channel),
                    "paid_at": now,
                    "paying_gid": None,
                },
                where=[pay_lock_held_by(ctx.gid)],
            )

        return (await self._barrier.run(ctx, business)).outcome

    async def cancel_mark_paid(self, ctx: TxContext, paid: MarkPaid) -> Outcome:
        """Release the pay lock if this transaction holds it."""
        now = now_ms(self._clock)

        def business(conn: Conn) -> None:
            order = read_order(conn, paid.order_id)
            if order is None or order.paying_gid != ctx.gid:
                return
            if not cas_order(
                conn, order, {"paying_gid": None}, now_ms=now, where=[pay_lock_held_by(ctx.gid)]
            ):
                raise TransientError(f"order {paid.order_id} changed while releasing its pay lock; retry")

        return (await self._barrier.run(ctx, business)).outcome

    # ------------------------------------------------------------------ cancel chain (MSG)

    async def finish_refund(self, ctx: TxContext, order_id: str) -> Outcome:
        """REFUNDING -> REFUNDED; already REFUNDED is success; any other state answers "not yet"."""
        now = now_ms(self._clock)

        def business(conn: Conn) -> None:
            order = read_order(conn, order_id)
            if order is None:
                raise BranchOngoing(f"order {order_id} not found (yet)")
            if order.status is OrderState.REFUNDED:
                return
            if order.status is not OrderState.REFUNDING:
                raise BranchOngoing(f"order {order_id} is {order.status}, not REFUNDING")
            transition_in(
                conn,
                order,
                OrderState.REFUNDED,
                reason="refund finished",
                actor=Actor(COORDINATOR, ctx.gid),
                now_ms=now,
            )

        return (await self._barrier.run(ctx, business)).outcome

    async def query_prepared(self, ctx: TxContext) -> None:
        """The cancel MSG's check-back: return if its local transaction committed, else BranchFailure."""
        await self._barrier.query_prepared(ctx.gid)


def _taken(conn: Conn, ctx: TxContext, new_orders: Sequence[NewOrder]) -> bool:
    """True when this gid already inserted the orders; an order id another gid used is refused."""
    mine = 0
    for new in new_orders:
        order = read_order(conn, new.order_id)
        if order is not None and order.gid != ctx.gid:
            raise _used(ctx, new.order_id)
        mine += order is not None
    return mine == len(new_orders)


def _payable(ctx: TxContext, paid: MarkPaid, order: Order | None, now: int) -> Order:
    """The order ``paid`` may lock, or BranchFailure saying why not."""
    if order is None or not is_visible(order.status):
        raise BranchFailure(f"order {paid.order_id} not found")
    if order.status is not OrderState.CREATED:
        raise BranchFailure(str(refusal(order.order_id, order.status, OrderState.PAID)))
    if order.paying_gid is not None and order.paying_gid != ctx.gid:
        raise BranchFailure(
            str(refusal(order.order_id, order.status, OrderState.PAID, "a payment is in progress"))
        )
    if order.external_attempt is not None:
        # Checked on the row version the lock is CAS-ed on: a concurrent external Pay wins or loses whole.
        raise BranchFailure(str(pending_external(order.order_id, order.external_attempt)))
    if order.overdue(now):
        raise BranchFailure(
            str(refusal(order.order_id, order.status, OrderState.PAID, "the pay deadline has passed"))
        )
    if order.amount_due_cents != paid.amount_cents:
        raise BranchFailure(
            f"order {order.order_id}: amount due is {order.amount_due_cents} cents, not {paid.amount_cents}"
        )
    return order
