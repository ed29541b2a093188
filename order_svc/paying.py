"""Pay (points channel: a TCC; external channel: a pay_svc payment) and PaymentSucceeded.

Answers:

* Pay of an order that is not CREATED, is being paid, or is past its deadline -> FAILED_PRECONDITION
  naming its state (an overdue order is cancelled first: passive close).
* One live payment attempt per order: while the order's EXTERNAL payment is pending, Pay POINTS is
  FAILED_PRECONDITION naming that payment id; Pay EXTERNAL again answers the same payment id and
  token (pay_svc's CreatePayment is idempotent per order). An external payment the gateway FAILED is
  void: the order forgets it and the points channel may pay. Atomic on the order row: the external
  payment id is recorded with a compare-and-set that needs no pay lock, and TryMarkPaid takes the pay
  lock with a compare-and-set on the same row version, refusing an order with a recorded external
  payment; so of two concurrent Pay calls with different channels exactly one proceeds.
* Points payment refused by a participant (points short) -> ABORTED (:class:`PaymentRejected`); refused
  because the order changed meanwhile (cancelled, paid) -> FAILED_PRECONDITION naming the state.
* PaymentSucceeded: CREATED -> PAID (accepted); the same payment again -> accepted; CANCELLED or paid
  otherwise -> not accepted (pay_svc then refunds); a points payment in flight -> FAILED_PRECONDITION
  ("not yet": pay_svc asks again later).
"""

from __future__ import annotations

import logging
import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from meshkit.errors import BranchFailure, FailedPrecondition, TransientError
from meshkit.runtime.clock import Clock, now_ms
from order_svc.adapters.ports import Mesh, Payments, PointsPayment, RolledBack
from order_svc.cancelling import Canceller
from order_svc.orders.lifecycle import Actor, not_found, transition
from order_svc.orders.queries import OrderRepo
from order_svc.orders.states import OrderState, is_visible, pending_external, refusal
from order_svc.orders.tables import orders
from order_svc.orders.values import Channel, Order, PaymentVerdict, PayOutcome

log = logging.getLogger(__name__)

PAY_SVC = "pay_svc"
PAID_STATES = frozenset(
    {OrderState.PAID, OrderState.SHIPPED, OrderState.COMPLETED, OrderState.REFUNDING, OrderState.REFUNDED}
)


class PaymentRejected(BranchFailure):
    """A participant refused the payment (e.g. not enough points): ``ABORTED``."""


def pay_gid(order_id: str) -> str:
    """A fresh gid for one points-payment attempt of ``order_id``."""
    return f"pay-{order_id}-{secrets.token_hex(6)}"


def points_payment_id(order_id: str) -> str:
    """The payment id of a points payment (the contract's ``"points:" + order_id``)."""
    return f"points:{order_id}"


class Payer:
    """Pay and PaymentSucceeded."""

    def __init__(
        self, repo: OrderRepo, mesh: Mesh, payments: Payments, canceller: Canceller, clock: Clock
    ) -> None:
        self._repo = repo
        self._mesh = mesh
        self._payments = payments
        self._canceller = canceller
        self._clock = clock

    async def _visible(self, order_id: str) -> Order:
        order = await self._repo.load(order_id, with_items=False)
        if order is None or not is_visible(order.status):
            raise not_found(order_id)
        return order

    async def pay(self, order_id: str, channel: Channel) -> PayOutcome:
        """Pay ``order_id`` through ``channel`` (POINTS or EXTERNAL)."""
        order = await self._visible(order_id)
        if order.overdue(now_ms(self._clock)):
            order = await self._canceller.close_if_overdue(order)
            raise refusal(order_id, order.status, OrderState.PAID, "the pay deadline has passed")
        if order.status is not OrderState.CREATED:
            raise refusal(order_id, order.status, OrderState.PAID)
        if order.paying_gid is not None:
            raise refusal(
                order_id,
                order.status,
                OrderState.PAID,
                f"a points payment is in progress ({order.paying_gid})",
            )
        if channel is Channel.POINTS:
            return await self._pay_with_points(await self._void_dead_external(order))
        if order.amount_due_cents == 0:
            raise FailedPrecondition(f"order {order_id}: nothing is due; pay it with the points channel")
        return await self._pay_external(order)

    async def _void_dead_external(self, order: Order) -> Order:
        """``order`` once no external payment of it is live; FAILED_PRECONDITION naming a live one."""
        attempt = order.external_attempt
        if attempt is None:
            return order
        if await self._payments.payment_live(attempt):
            raise pending_external(order.order_id, attempt)
        # The gateway failed it (or it was refunded): it can never pay; a late success is refunded by
        # pay_svc (FAILED -> REFUNDED), so the order forgets it and another channel may pay.
        async with self._repo.transaction() as session:
            won = await self._repo.update_fields(
                session,
                order,
                {"payment_id": None, "channel": int(Channel.NONE)},
                now_ms=now_ms(self._clock),
                where=[orders.c.paying_gid.is_(None), orders.c.payment_id == attempt],
            )
        if not won:
            raise refusal(order.order_id, order.status, OrderState.PAID, "changed concurrently")
        log.info(
            "order %s: external payment %s can no longer pay; voided for another channel",
            order.order_id,
            attempt,
            extra={"order_id": order.order_id, "payment_id": attempt},
        )
        return await self._visible(order.order_id)

    async def _pay_with_points(self, order: Order) -> PayOutcome:
        gid = pay_gid(order.order_id)
        payment = PointsPayment(
            gid=gid,
            order_id=order.order_id,
            user_id=order.user_id,
            amount_cents=order.amount_due_cents,
            payment_id=points_payment_id(order.order_id),
        )
        try:
            await self._mesh.pay_with_points(payment)
        except RolledBack as exc:
            current = await self._visible(order.order_id)
            if current.status is not OrderState.CREATED:
                raise refusal(order.order_id, current.status, OrderState.PAID) from exc
            if current.paying_gid not in (None, gid):
                raise refusal(
                    order.order_id, current.status, OrderState.PAID, "a payment is in progress"
                ) from exc
            if current.external_attempt is not None:  # an external Pay won the order row meanwhile
                raise pending_external(order.order_id, current.external_attempt) from exc
            if exc.business:
                raise PaymentRejected(f"order {order.order_id} not paid: {exc.reason}") from exc
            raise TransientError(
                f"order {order.order_id} not paid (rolled back: {exc.reason}); retry"
            ) from exc
        current = await self._visible(order.order_id)
        return PayOutcome(payment_id=payment.payment_id, token="", status=current.status)

    async def _pay_external(self, order: Order) -> PayOutcome:
        ticket = await self._payments.create_payment(order.order_id, order.user_id, order.amount_due_cents)
        if not ticket.live:  # one payment per order: pay_svc answers the dead one again; its token is void
            raise FailedPrecondition(
                f"order {order.order_id}: external payment {ticket.payment_id} failed; "
                "pay with points or cancel the order"
            )
        async with self._repo.transaction() as session:
            current = await self._repo.get(session, order.order_id, with_items=False)
            if current is None:
                raise not_found(order.order_id)
            if current.paying_gid is not None:
                raise refusal(
                    order.order_id,
                    current.status,
                    OrderState.PAID,
                    f"a points payment is in progress ({current.paying_gid})",
                )
            if current.status is not OrderState.CREATED:
                raise refusal(order.order_id, current.status, OrderState.PAID, "changed concurrently")
            won = current.external_attempt == ticket.payment_id or await self._repo.update_fields(
                session,
                current,
                {"payment_id": ticket.payment_id, "channel": int(Channel.EXTERNAL)},
                now_ms=now_ms(self._clock),
            )
        if not won:
            await self._recorded_by_another_call(order.order_id, ticket.payment_id)
        return PayOutcome(payment_id=ticket.payment_id, token=ticket.token, status=OrderState.CREATED)

    async def _recorded_by_another_call(self, order_id: str, payment_id: str) -> None:
        """A lost compare-and-set is fine when a concurrent Pay EXTERNAL recorded the same payment."""
        again = await self._visible(order_id)
        if again.external_attempt != payment_id:
            raise refusal(order_id, again.status, OrderState.PAID, "changed concurrently")

    async def payment_succeeded(self, order_id: str, payment_id: str, amount_cents: int) -> PaymentVerdict:
        """An external payment of ``order_id`` succeeded: take it (PAID) or refuse it (pay_svc refunds)."""
        order = await self._visible(order_id)
        await self._canceller.close_if_overdue(order)
        async with self._repo.transaction() as session:
            current = await self._repo.get(session, order_id, with_items=False)
            if current is None:
                raise not_found(order_id)
            if current.status is OrderState.CREATED:
                return await self._take_payment(session, current, payment_id, amount_cents)
            same = current.payment_id == payment_id and current.channel is Channel.EXTERNAL
            accepted = same and current.status in PAID_STATES
            if not accepted:
                log.info(
                    "order %s is %s: payment %s not accepted (refund)",
                    order_id,
                    current.status,
                    payment_id,
                    extra={"order_id": order_id},
                )
            return PaymentVerdict(accepted=accepted, status=current.status)

    async def _take_payment(
        self, session: AsyncSession, order: Order, payment_id: str, amount_cents: int
    ) -> PaymentVerdict:
        if order.paying_gid is not None:
            raise refusal(order.order_id, order.status, OrderState.PAID, "a points payment is in progress")
        if order.payment_id != payment_id or order.channel is not Channel.EXTERNAL:
            # Only the payment pay_svc created for this order's Pay (recorded then) can pay it.
            log.warning(
                "order %s: payment %s is not the order's external payment (%s); not accepted",
                order.order_id,
                payment_id,
                order.payment_id or "none",
                extra={"order_id": order.order_id},
            )
            return PaymentVerdict(accepted=False, status=order.status)
        if amount_cents != order.amount_due_cents:
            log.warning(
                "order %s: payment %s of %d cents does not match the amount due %d; not accepted",
                order.order_id,
                payment_id,
                amount_cents,
                order.amount_due_cents,
            )
            return PaymentVerdict(accepted=False, status=order.status)
        now = now_ms(self._clock)
        await transition(
            self._repo,
            session,
            order,
            OrderState.PAID,
            reason=f"paid externally ({payment_id})",
            actor=Actor(PAY_SVC),
            now_ms=now,
            values={"payment_id": payment_id, "channel": int(Channel.EXTERNAL), "paid_at": now},
            where=[orders.c.paying_gid.is_(None)],
            why_refused="a points payment is in progress",
        )
        return PaymentVerdict(accepted=True, status=OrderState.PAID)
