"""The payment state machine as pure decisions (no I/O), so every rule is testable on its own.

=============  ==================  ===================================================================
payment        callback reports    effect
=============  ==================  ===================================================================
PENDING        SUCCEEDED           SUCCEED: -> SUCCEEDED, then tell order_svc (Order.PaymentSucceeded)
PENDING        FAILED              FAIL: -> FAILED
FAILED         SUCCEEDED           REFUND_LATE: the money came after the payment was closed or failed:
                                   record it as paid and refund it at once (-> REFUNDED)
anything else                      NONE: a duplicate or a contradiction; nothing changes
=============  ==================  ===================================================================

Refund requests (full amount only):

=============  ===================================================================================
payment        effect
=============  ===================================================================================
SUCCEEDED      REFUND: one refund row, -> REFUNDED
REFUNDED       EXISTING: answer the refund that exists (whatever its out_refund_no)
PENDING        CLOSE: nothing was paid; -> FAILED (closed), so a later SUCCEEDED callback is refunded
FAILED         NOTHING_PAID: nothing was paid and nothing changes
=============  ===================================================================================
"""

from __future__ import annotations

from enum import Enum

from pay_svc.payments.values import PaymentStatus

S = PaymentStatus


class CallbackEffect(Enum):
    """What a verified callback does to its payment."""

    SUCCEED = "succeed"
    FAIL = "fail"
    REFUND_LATE = "refund_late"
    NONE = "none"


class RefundEffect(Enum):
    """What a refund request does to its payment."""

    REFUND = "refund"
    EXISTING = "existing"
    CLOSE = "close"
    NOTHING_PAID = "nothing_paid"


_CALLBACK: dict[tuple[PaymentStatus, PaymentStatus], CallbackEffect] = {
    (S.PENDING, S.SUCCEEDED): CallbackEffect.SUCCEED,
    (S.PENDING, S.FAILED): CallbackEffect.FAIL,
    (S.FAILED, S.SUCCEEDED): CallbackEffect.REFUND_LATE,
}

_REFUND: dict[PaymentStatus, RefundEffect] = {
    S.SUCCEEDED: RefundEffect.REFUND,
    S.REFUNDED: RefundEffect.EXISTING,
    S.PENDING: RefundEffect.CLOSE,
    S.FAILED: RefundEffect.NOTHING_PAID,
}


def callback_effect(current: PaymentStatus, reported: PaymentStatus) -> CallbackEffect:
    """The effect of a verified callback reporting ``reported`` on a payment in ``current``."""
    return _CALLBACK.get((current, reported), CallbackEffect.NONE)


def refund_effect(current: PaymentStatus) -> RefundEffect:
    """The effect of a (valid, full-amount) refund request on a payment in ``current``."""
    return _REFUND[current]


def within_window(now_ms: int, timestamp_ms: int, window_ms: int) -> bool:
    """True when a callback's timestamp is at most ``window_ms`` away from now (either direction)."""
    return abs(now_ms - timestamp_ms) <= window_ms


def nonce_expiry_ms(timestamp_ms: int, window_ms: int) -> int:
    """When a used nonce may be forgotten: its callback is refused as too old by then anyway.

    Twice the window, so a clock that steps back a little cannot make an old nonce acceptable again.
    """
    return timestamp_ms + 2 * window_ms
