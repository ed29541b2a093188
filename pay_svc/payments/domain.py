"""pay_svc's rules: payments, verified gateway callbacks, telling order_svc, refunds, audit.

No gRPC here: order_svc is reached through :class:`pay_svc.adapters.ports.OrderPort`. The state machine itself
is the table in :mod:`pay_svc.payments.state_machine`; this module applies it transactionally.

Decisions (documented for callers):

* CreatePayment is idempotent per order: the same order with the same user and amount answers the
  existing payment (whatever its status); a different amount or user is ``FAILED_PRECONDITION``.
  FAILED is final (one payment per order).
* Callback refusals (each logged with its reason, never the secret): malformed field ->
  ``INVALID_ARGUMENT``; no secret configured, bad signature, timestamp outside the window, nonce
  used before -> ``UNAUTHENTICATED``; unknown payment -> ``NOT_FOUND``; order or amount not those of
  the payment -> ``INVALID_ARGUMENT``. A refused callback changes nothing (its nonce is not kept).
* A verified callback answers ``accepted = true`` even when it changes nothing (a duplicate).
* A refund of an order's payment goes through the order: the public (admin) Refund is
  ``FAILED_PRECONDITION`` unless the payment's order is CANCELLED, REFUNDING or REFUNDED (the
  cancel chain's RefundBranch is the way a paid order's money goes back). Every refund row carries
  the ``order_id`` of its payment.
* Refunds are full refunds only (``amount_cents`` must equal the payment's amount). A payment is
  refunded at most once: a second request with another ``out_refund_no`` answers the existing refund.
  Refunding a PENDING payment closes it (-> FAILED, nothing paid, no refund row); should the gateway
  confirm it later anyway, that money is refunded at once (REFUNDED). Refunding a FAILED payment
  answers "nothing paid" and changes nothing. An ``out_refund_no`` already used for another payment
  is ``ALREADY_EXISTS``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from meshkit.barrier import Outcome, RunnerBarrier
from meshkit.errors import (
    AlreadyExists,
    BranchFailure,
    FailedPrecondition,
    InvalidArgument,
    MeshError,
    NotFound,
    TransientError,
    Unauthenticated,
)
from meshkit.infra.db import session_factory
from meshkit.infra.db import transaction as db_transaction
from meshkit.runtime.clock import Clock, now_ms
from meshkit.runtime.ids import Snowflake
from meshkit.store import StoreRunner
from meshkit.tx.context import Op, TxContext
from pay_svc.adapters.ports import OrderPort
from pay_svc.config import PaySection
from pay_svc.gateway.signing import SignedFields, signature_matches
from pay_svc.payments import state_machine, validation
from pay_svc.payments.queries import PayRepo
from pay_svc.payments.refunding import RefundUnit, describe
from pay_svc.payments.state_machine import CallbackEffect
from pay_svc.payments.values import (
    AuditRow,
    CallbackAnswer,
    CallbackNotice,
    CreatePaymentCommand,
    Payment,
    PaymentLookup,
    PaymentStatus,
    Refund,
    RefundAnswer,
    RefundCommand,
)

log = logging.getLogger(__name__)

TOKEN_BYTES = 24
NOTIFY_CONCURRENCY = 8  # order_svc calls in flight at once per notifier round
S = PaymentStatus
REASON_ORDER_REFUSED = "order no longer payable: automatic refund"
REASON_PAID_AFTER_CLOSE = "paid after the payment was closed: automatic refund"
# Order states in which the order's own refund flow has begun: an operator's Refund may then help it.
REFUNDABLE_ORDER_STATES = frozenset({"CANCELLED", "REFUNDING", "REFUNDED"})


def signed_fields(notice: CallbackNotice, status: PaymentStatus) -> SignedFields:
    """The fields of ``notice`` its signature covers."""
    return SignedFields(
        payment_id=notice.payment_id,
        order_id=notice.order_id,
        amount_cents=notice.amount_cents,
        trade_no=notice.trade_no,
        status_name=status.wire_name,
        timestamp_ms=notice.timestamp_ms,
        nonce=notice.nonce,
    )


class PayDomain:
    """The payments of pay_svc's own database."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        settings: PaySection,
        clock: Clock,
        ids: Snowflake,
        order: OrderPort,
        store: StoreRunner,
        barrier: RunnerBarrier,
    ) -> None:
        self._sessions = session_factory(engine)
        self._store = store
        self._repo = PayRepo(engine)
        self._settings = settings
        self._clock = clock
        self._ids = ids
        self._order = order
        self._barrier = barrier

    @property
    def _window_ms(self) -> int:
        return int(self._settings.callback_window_seconds * 1000)

    @property
    def _notify_interval_ms(self) -> int:
        return max(1, int(self._settings.notify_interval_seconds * 1000))

    def _now(self) -> int:
        return now_ms(self._clock)

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction that commits on success; lock/connection errors are transient."""
        async with db_transaction(self._sessions, "pay") as session:
            yield session

    # ------------------------------------------------------------------ payments

    async def create_payment(self, cmd: CreatePaymentCommand) -> Payment:
        """A new PENDING payment for the order, or the order's existing one (idempotent per order)."""
        new = validation.new_payment(cmd)
        now = self._now()
        candidate = Payment(
            payment_id=self._ids.next_id(),
            order_id=new.order_id,
            user_id=new.user_id,
            amount_cents=new.amount_cents,
            channel=new.channel,
            status=S.PENDING,
            token=secrets.token_urlsafe(TOKEN_BYTES),
            trade_no="",
            created_at_ms=now,
            paid_at_ms=None,
            order_notified=False,
            closed_by="",
        )
        async with self._tx() as session:
            if await self._repo.insert_payment(session, candidate, now):
                log.info(
                    "payment %s created for order %s",
                    candidate.payment_id,
                    new.order_id,
                    extra={"order_id": new.order_id, "payment_id": str(candidate.payment_id)},
                )
                return candidate
            existing = await self._repo.payment(session, order_id=new.order_id)
        if existing is None:  # the insert was ignored, so the row exists (payments are never deleted)
            raise TransientError(f"payment of order {new.order_id} not readable yet")
        if existing.amount_cents != new.amount_cents or existing.user_id != new.user_id:
            raise FailedPrecondition(
                f"order {new.order_id} already has payment {existing.payment_id} of user "
                f"{existing.user_id} for {existing.amount_cents} cents; this request (user {new.user_id}, "
                f"{new.amount_cents} cents) differs"
            )
        return existing

    async def get_payment(self, query: PaymentLookup) -> Payment:
        """The payment by id and/or order id (NOT_FOUND when there is none, or when they disagree)."""
        found = validation.lookup(query)
        async with self._tx() as session:
            payment = await self._repo.payment(session, payment_id=found.payment_id, order_id=found.order_id)
        if payment is None:
            raise NotFound(f"no payment {describe(found.payment_id, found.order_id)}")
        if found.order_id is not None and payment.order_id != found.order_id:
            raise NotFound(f"no payment {describe(found.payment_id, found.order_id)}")
        return payment

    async def payment(self, payment_id: int) -> Payment:
        """The payment with ``payment_id`` (NOT_FOUND when there is none)."""
        async with self._tx() as session:
            payment = await self._repo.payment(session, payment_id=payment_id)
        if payment is None:
            raise NotFound(f"no payment {payment_id}")
        return payment

    # ------------------------------------------------------------------ callbacks

    async def handle_callback(self, notice: CallbackNotice) -> CallbackAnswer:
        """Verify and apply a gateway callback; a SUCCEEDED payment is then reported to order_svc."""
        try:
            valid = validation.callback(notice)
            self._authenticate(valid)
            payment, effect = await self._record_callback(valid)
        except (InvalidArgument, Unauthenticated, NotFound) as exc:
            log.warning(
                "callback refused: %s",
                exc,
                extra={
                    "payment_id": notice.payment_id[:64],
                    "order_id": notice.order_id[:64],
                    "nonce": notice.nonce[:64],
                    "refusal": type(exc).__name__,
                },
            )
            raise
        if effect is CallbackEffect.SUCCEED:
            payment = await self.notify_order(payment.payment_id)
        return CallbackAnswer(accepted=True, payment=payment)

    def _authenticate(self, valid: validation.ValidNotice) -> None:
        """Secret configured, signature right, timestamp recent; raises :class:`Unauthenticated`."""
        secret = self._settings.callback_secret.get_secret_value()
        if not secret:
            raise Unauthenticated("callbacks are refused: pay.callback_secret is not configured")
        if not signature_matches(secret, signed_fields(valid.notice, valid.status), valid.notice.signature):
            raise Unauthenticated("signature: does not match the callback")
        if not state_machine.within_window(self._now(), valid.notice.timestamp_ms, self._window_ms):
            raise Unauthenticated(
                f"timestamp_ms: more than {self._settings.callback_window_seconds:g}s away from now "
                "(stale or replayed callback)"
            )

    async def _record_callback(self, valid: validation.ValidNotice) -> tuple[Payment, CallbackEffect]:
        """Use the nonce, check the callback against its payment and apply it, in one transaction."""
        notice = valid.notice
        now = self._now()
        expires = state_machine.nonce_expiry_ms(notice.timestamp_ms, self._window_ms)
        async with self._tx() as session:
            if not await self._repo.use_nonce(session, notice.nonce, valid.payment_id, now, expires):
                raise Unauthenticated("nonce: already used (replayed callback)")
            payment = await self._repo.payment(session, payment_id=valid.payment_id, for_update=True)
            if payment is None:
                raise NotFound(f"payment_id {valid.payment_id}: no such payment")
            if payment.order_id != notice.order_id:
                raise InvalidArgument("order_id", f"does not match payment {payment.payment_id}")
            if payment.amount_cents != notice.amount_cents:
                raise InvalidArgument(
                    "amount_cents",
                    f"{notice.amount_cents} does not match payment {payment.payment_id} "
                    f"({payment.amount_cents})",
                )
            effect = state_machine.callback_effect(payment.status, valid.status)
            await self._apply_callback(session, payment, valid, effect, now)
            after = await self._reload(session, payment.payment_id)
        return after, effect

    async def _apply_callback(
        self,
        session: AsyncSession,
        payment: Payment,
        valid: validation.ValidNotice,
        effect: CallbackEffect,
        now: int,
    ) -> None:
        trade_no = valid.notice.trade_no
        pid = payment.payment_id
        extra = {"payment_id": str(pid), "order_id": payment.order_id, "trade_no": trade_no}
        if effect is CallbackEffect.SUCCEED:
            await self._repo.set_status(
                session,
                pid,
                S.PENDING,
                S.SUCCEEDED,
                now,
                trade_no=trade_no,
                paid_at=now,
                next_notify_at=now + self._notify_interval_ms,
            )
            log.info("payment %s SUCCEEDED (gateway %s)", pid, trade_no, extra=extra)
        elif effect is CallbackEffect.FAIL:
            await self._repo.set_status(session, pid, S.PENDING, S.FAILED, now, trade_no=trade_no)
            log.info("payment %s FAILED at the gateway (%s)", pid, trade_no, extra=extra)
        elif effect is CallbackEffect.REFUND_LATE:
            await self._repo.set_status(
                session, pid, S.FAILED, S.REFUNDED, now, trade_no=trade_no, paid_at=now
            )
            await self._insert_refund(
                session, payment, str(pid), reason=REASON_PAID_AFTER_CLOSE, gid="", now=now
            )
            log.warning("payment %s was paid after it was closed: refunded", pid, extra=extra)
        else:
            if payment.trade_no and payment.trade_no != trade_no:
                log.warning(
                    "callback for payment %s names trade_no %s, payment has %s; ignored",
                    pid,
                    trade_no,
                    payment.trade_no,
                    extra=extra,
                )
            log.info(
                "callback %s for payment %s in %s changes nothing",
                valid.status.value,
                pid,
                payment.status.value,
                extra=extra,
            )

    # ------------------------------------------------------------------ telling order_svc

    async def notify_order(self, payment_id: int) -> Payment:
        """Tell order_svc of a SUCCEEDED payment it does not know yet; refund when it refuses.

        When order_svc cannot answer, the next attempt is scheduled for the background notifier.
        Returns the payment afterwards.
        """
        payment = await self.payment(payment_id)
        if payment.status is not S.SUCCEEDED or payment.order_notified:
            return payment
        extra = {"payment_id": str(payment_id), "order_id": payment.order_id}
        try:
            accepted = await self._order.payment_succeeded(
                payment.order_id, str(payment_id), payment.amount_cents
            )
        except MeshError as exc:
            retry_at = self._now() + self._notify_interval_ms
            async with self._tx() as session:
                await self._repo.notify_failed(session, payment_id, retry_at)
            log.warning(
                "order_svc not told of payment %s (%s); retrying in %.1fs",
                payment_id,
                exc,
                self._settings.notify_interval_seconds,
                extra=extra,
            )
            return payment
        if accepted:
            async with self._tx() as session:
                await self._repo.mark_notified(session, payment_id, self._now())
            log.info("order %s took payment %s", payment.order_id, payment_id, extra=extra)
            return await self.payment(payment_id)
        return await self._refund_refused(payment_id)

    async def _refund_refused(self, payment_id: int) -> Payment:
        """order_svc refused a SUCCEEDED payment (order cancelled): refund it, exactly once."""
        now = self._now()
        async with self._tx() as session:
            payment = await self._reload(session, payment_id, for_update=True)
            if payment.status is S.SUCCEEDED:
                await self._insert_refund(
                    session, payment, str(payment_id), reason=REASON_ORDER_REFUSED, gid="", now=now
                )
                await self._repo.set_status(
                    session,
                    payment_id,
                    S.SUCCEEDED,
                    S.REFUNDED,
                    now,
                    order_notified=True,
                    next_notify_at=None,
                )
                log.warning(
                    "order %s refused payment %s: refunded",
                    payment.order_id,
                    payment_id,
                    extra={"payment_id": str(payment_id), "order_id": payment.order_id},
                )
            else:
                await self._repo.mark_notified(session, payment_id, now)
        return await self.payment(payment_id)

    async def notify_due(self) -> int:
        """One round of the background notifier: retry every due payment; returns how many were tried."""
        async with self._tx() as session:
            due = await self._repo.due_notifications(session, self._now(), self._settings.notify_batch)
        limit = asyncio.Semaphore(NOTIFY_CONCURRENCY)

        async def notify(payment_id: int) -> None:
            async with limit:
                await self.notify_order(payment_id)

        results = await asyncio.gather(*(notify(pid) for pid in due), return_exceptions=True)
        for payment_id, result in zip(due, results, strict=True):
            if isinstance(result, Exception):
                log.error("notifying order of payment %s failed", payment_id, exc_info=result)
        return len(due)

    async def clean_nonces(self) -> int:
        """Delete every expired callback nonce, batch by batch; returns the count deleted."""
        total = 0
        batch = self._settings.nonce_cleanup_batch
        while True:
            async with self._tx() as session:
                deleted = await self._repo.delete_expired_nonces(session, self._now(), batch)
            total += deleted
            if deleted < batch:
                return total

    # ------------------------------------------------------------------ refunds

    async def refund(self, cmd: RefundCommand) -> RefundAnswer:
        """The public (admin) Refund, only once the payment's order is being cancelled.

        Idempotent per out_refund_no, at most one refund per payment (see :meth:`_order_lets_refund`).
        """
        valid = validation.refund(cmd)
        await self._order_lets_refund(valid.lookup)
        return await self._store.run(self._refund_unit(valid, gid=""))

    def _refund_unit(self, valid: validation.ValidRefund, gid: str) -> RefundUnit:
        """The refund of ``valid`` as a unit of work (see :mod:`pay_svc.payments.refunding`)."""
        return RefundUnit(valid, gid, self._now(), self._ids.next_id())

    async def _order_lets_refund(self, found: validation.Lookup) -> None:
        """A refund of an order's payment goes through the order (Order.Cancel), never around it.

        Every payment belongs to an order, so Refund is refused (FAILED_PRECONDITION) unless that
        order is already CANCELLED, REFUNDING or REFUNDED; a cancelled order never leaves those states,
        so the check cannot go stale before the refund is written.
        """
        async with self._tx() as session:
            payment = await self._repo.payment(session, payment_id=found.payment_id, order_id=found.order_id)
        if payment is None:
            raise NotFound(f"no payment {describe(found.payment_id, found.order_id)}")
        if found.order_id is not None and payment.order_id != found.order_id:
            raise InvalidArgument("order_id", f"does not match payment {payment.payment_id}")
        status = await self._order.order_status(payment.order_id)
        if status not in REFUNDABLE_ORDER_STATES:
            raise FailedPrecondition(
                f"payment {payment.payment_id} belongs to order {payment.order_id}, which is "
                f"{status or 'not known to order_svc'}: cancel the order (Order.Cancel) to refund it"
            )

    async def refund_branch(self, ctx: TxContext, cmd: RefundCommand) -> str:
        """Refund as a MSG branch (op ``action``): barrier and refund in one unit; returns the branch note.

        A refusal of the request by the payment's state (unknown payment, wrong amount, key reused)
        is a business failure (ABORTED): the coordinator keeps the transaction visible as stuck.
        """
        valid = validation.refund(cmd)
        if ctx.op is not Op.ACTION:
            raise InvalidArgument(
                "x-mesh-op", f"RefundBranch is a forward branch (action), not {ctx.op.value}"
            )
        try:
            result = await self._barrier.run(ctx, self._refund_unit(valid, gid=ctx.gid))
        except (NotFound, InvalidArgument, AlreadyExists) as exc:
            raise BranchFailure(f"refund refused: {exc}") from exc
        if result.outcome is not Outcome.APPLIED or result.value is None:
            return result.outcome.value
        return result.value.note

    async def _insert_refund(
        self, session: AsyncSession, payment: Payment, out_refund_no: str, *, reason: str, gid: str, now: int
    ) -> Refund:
        refund = Refund(
            refund_id=self._ids.next_id(),
            out_refund_no=out_refund_no,
            payment_id=payment.payment_id,
            order_id=payment.order_id,
            amount_cents=payment.amount_cents,
            reason=reason,
            gid=gid,
            created_at_ms=now,
        )
        if not await self._repo.insert_refund(session, refund):
            # The payment row is locked, so only another payment can hold this key (a concurrent request).
            raise AlreadyExists(f"out_refund_no {out_refund_no}: already used for another payment")
        return refund

    async def _reload(self, session: AsyncSession, payment_id: int, *, for_update: bool = False) -> Payment:
        """A payment known to exist (payments are never deleted)."""
        payment = await self._repo.payment(session, payment_id=payment_id, for_update=for_update)
        if payment is None:
            raise RuntimeError(f"payment {payment_id} vanished")
        return payment

    # ------------------------------------------------------------------ audit

    async def audit(self) -> list[AuditRow]:
        """Every payment with its refunds, for ``meshctl audit``."""
        async with self._tx() as session:
            return await self._repo.audit_rows(session)
