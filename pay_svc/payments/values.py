"""The values pay_svc's domain works with: payments, refunds, callbacks, commands and answers.

Plain dataclasses and enums, independent of protobuf and gRPC; :mod:`pay_svc.api.conversions` translates.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PaymentStatus(StrEnum):
    """Where a payment stands (the stored value; the wire name is ``PAYMENT_STATUS_<value>``)."""

    PENDING = "PENDING"  # created, waiting for the gateway
    SUCCEEDED = "SUCCEEDED"  # the gateway took the money
    FAILED = "FAILED"  # the gateway failed it, or it was closed unpaid by a refund request
    REFUNDED = "REFUNDED"  # the money went back (exactly one refund row)

    @property
    def wire_name(self) -> str:
        """The protobuf enum name, which is also what a callback signature covers."""
        return f"PAYMENT_STATUS_{self.value}"


class Channel(StrEnum):
    """How a payment is made (points payments are a TCC inside order_svc and never reach pay_svc)."""

    EXTERNAL = "EXTERNAL"
    POINTS = "POINTS"


@dataclass(frozen=True, slots=True)
class Refund:
    """One refund: the money of one payment given back (full amount, at most one per payment)."""

    refund_id: int
    out_refund_no: str
    payment_id: int
    order_id: str
    amount_cents: int
    reason: str
    gid: str
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class Payment:
    """One payment of one order."""

    payment_id: int
    order_id: str
    user_id: str
    amount_cents: int
    channel: Channel
    status: PaymentStatus
    token: str
    trade_no: str
    created_at_ms: int
    paid_at_ms: int | None  # when the gateway confirmed it (set on REFUNDED payments that were paid too)
    order_notified: bool  # order_svc answered Order.PaymentSucceeded (or no longer needs telling)
    closed_by: str  # out_refund_no of the refund request that closed it while still unpaid
    refund_id: int | None = None

    @property
    def succeeded(self) -> bool:
        """True when the gateway confirmed the payment at some point."""
        return self.paid_at_ms is not None


@dataclass(frozen=True, slots=True)
class CreatePaymentCommand:
    """CreatePayment as received (validated by the domain)."""

    order_id: str
    user_id: str
    amount_cents: int
    channel: Channel | None  # None: unspecified on the wire (means EXTERNAL)


@dataclass(frozen=True, slots=True)
class PaymentLookup:
    """GetPayment: by payment id, by order id, or both (then they must agree)."""

    payment_id: str
    order_id: str


@dataclass(frozen=True, slots=True)
class CallbackNotice:
    """A gateway callback exactly as received; the signature covers the other fields as sent."""

    payment_id: str
    order_id: str
    amount_cents: int
    trade_no: str
    status: PaymentStatus | None  # None: unspecified or unknown on the wire
    timestamp_ms: int
    nonce: str
    signature: str


@dataclass(frozen=True, slots=True)
class CallbackAnswer:
    """What Callback answers: the callback was verified and acknowledged, and the payment after it."""

    accepted: bool
    payment: Payment


@dataclass(frozen=True, slots=True)
class RefundCommand:
    """Refund / RefundBranch as received (validated by the domain)."""

    payment_id: str
    order_id: str
    amount_cents: int
    reason: str
    out_refund_no: str


@dataclass(frozen=True, slots=True)
class RefundAnswer:
    """The refund of a payment, or ``refund=None`` when nothing was paid (the payment was closed)."""

    payment: Payment
    refund: Refund | None
    note: str


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One payment as ``meshctl audit`` sees it."""

    payment_id: int
    order_id: str
    channel: Channel
    status: PaymentStatus
    amount_cents: int
    succeeded: bool
    refund_count: int
    refunded_cents: int
