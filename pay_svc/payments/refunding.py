"""A refund as one unit of work on the store runner: the rules of a (full) refund applied to one payment.

Used by the public Refund and by the cancel chain's RefundBranch (inside the barrier's unit, so the
barrier rows, the refund row and the payment's status commit together). The rules are those of
:mod:`pay_svc.payments.domain`'s docstring: idempotent per ``out_refund_no``, at most one refund per
payment, a PENDING payment is closed, a FAILED one answers "nothing paid".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from meshkit.errors import AlreadyExists, InvalidArgument, NotFound
from meshkit.store import Conn
from pay_svc.payments import state_machine
from pay_svc.payments.queries import (
    cas_payment_status,
    insert_refund_row,
    read_payment_locked,
    read_refund_by_no,
    read_refund_of_payment,
)
from pay_svc.payments.state_machine import RefundEffect
from pay_svc.payments.validation import Lookup, ValidRefund
from pay_svc.payments.values import Payment, PaymentStatus, Refund, RefundAnswer

log = logging.getLogger(__name__)

S = PaymentStatus


def describe(payment_id: int | None, order_id: str | None) -> str:
    """``payment_id X with order_id Y`` (the parts given), for NOT_FOUND messages."""
    parts = [
        f"payment_id {payment_id}" if payment_id is not None else "",
        f"order_id {order_id}" if order_id else "",
    ]
    return " with ".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class RefundUnit:
    """The unit of work refunding ``valid`` for transaction ``gid`` ('' = none) at ``now_ms``.

    ``refund_id`` is taken by the caller (ids are drawn on the event loop, not in the runner's thread);
    it is used only when a refund row is written.
    """

    valid: ValidRefund
    gid: str
    now_ms: int
    refund_id: int

    def __call__(self, conn: Conn) -> RefundAnswer:
        """Apply the refund request inside the unit's transaction."""
        found = self.valid.lookup
        payment = _payment(conn, found)
        keyed = read_refund_by_no(conn, self.valid.out_refund_no)
        if keyed is not None:
            if keyed.payment_id != payment.payment_id:
                raise AlreadyExists(
                    f"out_refund_no {self.valid.out_refund_no}: already used for payment {keyed.payment_id}"
                )
            return RefundAnswer(payment, keyed, "duplicate")
        if self.valid.amount_cents != payment.amount_cents:
            raise InvalidArgument(
                "amount_cents",
                f"must equal the payment amount {payment.amount_cents} (only full refunds)",
            )
        return self._apply(conn, payment)

    def _apply(self, conn: Conn, payment: Payment) -> RefundAnswer:
        pid = payment.payment_id
        no = self.valid.out_refund_no
        extra = {"payment_id": str(pid), "order_id": payment.order_id, "out_refund_no": no}
        effect = state_machine.refund_effect(payment.status)
        if effect is RefundEffect.REFUND:
            refund = self._insert(conn, payment)
            cas_payment_status(conn, pid, S.SUCCEEDED, S.REFUNDED, self.now_ms, next_notify_at=None)
            log.info("payment %s refunded (%s)", pid, no, extra=extra)
            return RefundAnswer(_reload(conn, pid), refund, "refunded")
        if effect is RefundEffect.EXISTING:
            return RefundAnswer(payment, read_refund_of_payment(conn, pid), "already refunded")
        if effect is RefundEffect.CLOSE:
            cas_payment_status(conn, pid, S.PENDING, S.FAILED, self.now_ms, closed_by=no)
            log.info("unpaid payment %s closed by refund %s", pid, no, extra=extra)
            return RefundAnswer(_reload(conn, pid), None, "closed unpaid")
        return RefundAnswer(payment, None, "closed unpaid" if payment.closed_by else "nothing paid")

    def _insert(self, conn: Conn, payment: Payment) -> Refund:
        refund = Refund(
            refund_id=self.refund_id,
            out_refund_no=self.valid.out_refund_no,
            payment_id=payment.payment_id,
            order_id=payment.order_id,
            amount_cents=payment.amount_cents,
            reason=self.valid.reason,
            gid=self.gid,
            created_at_ms=self.now_ms,
        )
        if not insert_refund_row(conn, refund):
            # The payment row is locked, so only another payment can hold this key (a concurrent request).
            raise AlreadyExists(f"out_refund_no {refund.out_refund_no}: already used for another payment")
        return refund


def _payment(conn: Conn, found: Lookup) -> Payment:
    payment = read_payment_locked(conn, payment_id=found.payment_id, order_id=found.order_id)
    if payment is None:
        raise NotFound(f"no payment {describe(found.payment_id, found.order_id)}")
    if found.order_id is not None and payment.order_id != found.order_id:
        raise InvalidArgument("order_id", f"does not match payment {payment.payment_id}")
    return payment


def _reload(conn: Conn, payment_id: int) -> Payment:
    """A payment known to exist (payments are never deleted)."""
    payment = read_payment_locked(conn, payment_id=payment_id)
    if payment is None:
        raise RuntimeError(f"payment {payment_id} vanished")
    return payment
