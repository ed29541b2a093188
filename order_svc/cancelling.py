"""Cancel: one MSG transaction per cancel (DESIGN.md section 6, the cancel chain).

The local transaction (through order_svc's barrier) moves the order first - CREATED -> CANCELLED, or
PAID -> REFUNDING - then the message gives everything back: the stock, the points used as a discount, the
payment (points or external), and for a paid order finally FinishRefund (REFUNDING -> REFUNDED).

The branches are chosen from the order as read before the message is prepared; the local transaction
re-reads it and refuses (FAILED_PRECONDITION naming the state) when it is no longer that state, so the
message never carries the wrong branches. This is also where Pay and Cancel meet: the compare-and-set
decides, and a pay lock held by a points payment in flight refuses the cancel.

The pay deadline uses the same chain (:meth:`Canceller.expire`), fired by the deadline message, the
sweeper, or a read of an overdue order (passive close); its local transaction also re-checks that the
order is still overdue, in the commit that cancels it, so a payment that landed after the check wins.

Store: the reads go to the store runner's readers, and the local transaction (the order's transition and
the barrier row of branch ``00``) is one unit on its writer - one write-lock hold per cancel.
"""

from __future__ import annotations

import logging
import secrets

from meshkit.errors import BranchFailure, FailedPrecondition, MeshError
from meshkit.runtime.clock import Clock, now_ms
from meshkit.store import Conn
from order_svc.adapters.ports import Mesh, Release
from order_svc.orders.lifecycle import Actor, not_found, transition_in
from order_svc.orders.queries import PAY_LOCK_FREE, OrderRepo, read_order
from order_svc.orders.states import OrderState, is_visible, refusal
from order_svc.orders.values import Channel, Order

log = logging.getLogger(__name__)

DEADLINE_ACTOR = "deadline"
DEADLINE_REASON = "pay deadline passed"
DEFAULT_REASON = "cancelled"


def cancel_gid(order_id: str) -> str:
    """A fresh gid for one cancel attempt of ``order_id``."""
    return f"cancel-{order_id}-{secrets.token_hex(6)}"


def plan_release(order: Order, gid: str, reason: str) -> tuple[OrderState, Release]:
    """The target state of cancelling ``order`` and what the message gives back.

    Raises FailedPrecondition naming both states when the order cannot be cancelled.
    """
    if order.status is OrderState.CREATED:
        if order.paying_gid is not None:
            raise refusal(order.order_id, order.status, OrderState.CANCELLED, "a payment is in progress")
        target, refund, finish = OrderState.CANCELLED, Channel.NONE, False
    elif order.status is OrderState.PAID:
        target, finish = OrderState.REFUNDING, True
        refund = order.channel if order.amount_due_cents > 0 else Channel.NONE
    else:
        raise refusal(order.order_id, order.status, OrderState.CANCELLED)
    release = Release(
        gid=gid,
        order_id=order.order_id,
        user_id=order.user_id,
        items=order.items,
        points_used=order.points_used,
        payment_refund=refund,
        payment_id=order.payment_id,
        amount_due_cents=order.amount_due_cents,
        reason=reason,
        finish=finish,
        placing_gid=order.gid,
    )
    return target, release


class NoLongerOverdue(BranchFailure):
    """The pay deadline's cancel found the order no longer overdue (paid, locked or cancelled meanwhile).

    Raised inside the local transaction, so nothing of it commits and the message is dropped.
    """


class Canceller:
    """Runs the cancel chain for user cancels and the pay deadline.

    Reads go through the store runner's readers and the local transaction (the order's transition plus
    the barrier row of branch ``00``) is ONE unit on its writer: one write per cancel.
    """

    def __init__(self, repo: OrderRepo, mesh: Mesh, clock: Clock) -> None:
        self._repo = repo
        self._mesh = mesh
        self._clock = clock

    async def cancel(self, order_id: str, reason: str, actor: str) -> Order:
        """Cancel ``order_id`` (CREATED -> CANCELLED, PAID -> REFUNDING); answers the order afterwards."""
        order = await self._repo.read(order_id)
        if order is None or not is_visible(order.status):
            raise not_found(order_id)
        await self._run(order, reason or DEFAULT_REASON, actor, deadline=False)
        cancelled = await self._repo.read(order_id)
        if cancelled is None:
            raise not_found(order_id)
        return cancelled

    async def expire(self, order_id: str) -> bool:
        """Cancel ``order_id`` if it is overdue (CREATED, not being paid, deadline passed); True if it did.

        The local transaction checks "still overdue" again in the commit that cancels, so a payment
        landing after the first read wins. Losing such a race is not an error: the order simply is not
        overdue.
        """
        order = await self._repo.read(order_id)
        if order is None or not order.overdue(now_ms(self._clock)):
            return False
        try:
            await self._run(order, DEADLINE_REASON, DEADLINE_ACTOR, deadline=True)
        except FailedPrecondition as exc:
            log.info("pay deadline of order %s: not cancelled (%s)", order_id, exc)
            return False
        except NoLongerOverdue as exc:
            log.info("pay deadline of order %s: not cancelled (%s)", order_id, exc)
            return False
        log.info("order %s cancelled: pay deadline passed", order_id, extra={"order_id": order_id})
        return True

    async def _run(self, order: Order, reason: str, actor: str, *, deadline: bool) -> None:
        """The cancel MSG of ``order`` as read; ``deadline``: only while it is still overdue."""
        gid = cancel_gid(order.order_id)
        target, release = plan_release(order, gid, reason)
        clock = self._clock

        def local(conn: Conn) -> None:
            current = read_order(conn, order.order_id)
            if current is None:
                raise not_found(order.order_id)
            if deadline and not current.overdue(now_ms(clock)):
                raise NoLongerOverdue(f"order {order.order_id} is {current.status}, no longer overdue")
            if current.status is not order.status or current.payment_id != order.payment_id:
                raise refusal(order.order_id, current.status, target, "changed concurrently")
            transition_in(
                conn,
                current,
                target,
                reason=reason,
                actor=Actor(actor, gid),
                now_ms=now_ms(clock),
                where=[PAY_LOCK_FREE],
                why_refused="a payment is in progress",
            )

        await self._mesh.cancel(release, local)

    async def close_if_overdue(self, order: Order) -> Order:
        """Passive close: cancel ``order`` first when it is overdue; answers the order as it is now.

        A failure to cancel (e.g. the coordinator unreachable) is logged and the order answered as read.
        """
        if not order.overdue(now_ms(self._clock)):
            return order
        try:
            await self.expire(order.order_id)
        except MeshError as exc:
            log.warning("passive close of order %s failed: %s", order.order_id, exc)
            return order
        return await self._repo.read(order.order_id) or order
