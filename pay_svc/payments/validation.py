"""Input validation of every public RPC: :class:`InvalidArgument` naming the field, before any change."""

from __future__ import annotations

import re
from dataclasses import dataclass

from meshkit.errors import InvalidArgument
from pay_svc.gateway.signing import SIGNATURE_HEX_LEN
from pay_svc.payments.values import (
    CallbackNotice,
    Channel,
    CreatePaymentCommand,
    PaymentLookup,
    PaymentStatus,
    RefundCommand,
)

MAX_ID_LEN = 64
MAX_REASON_LEN = 256
MAX_AMOUNT_CENTS = 100_000_000_000  # one billion in whole units: anything larger is a bug upstream
MAX_PAYMENT_ID = (1 << 63) - 1
CALLBACK_STATUSES = (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED)
_SIGNATURE_RE = re.compile(rf"[0-9a-f]{{{SIGNATURE_HEX_LEN}}}")
_DIGITS_RE = re.compile(r"[0-9]{1,19}")


def check_id(field: str, value: str, *, max_len: int = MAX_ID_LEN) -> str:
    """A required identifier: 1..max_len printable characters, no whitespace, no ``|``."""
    if not value:
        raise InvalidArgument(field, "missing")
    if len(value) > max_len or not value.isprintable() or any(c.isspace() or c == "|" for c in value):
        raise InvalidArgument(field, f"must be 1..{max_len} printable characters without spaces or '|'")
    return value


def check_payment_id(field: str, value: str) -> int:
    """A required payment id: the decimal form of a positive 64-bit id."""
    if not value:
        raise InvalidArgument(field, "missing")
    if not _DIGITS_RE.fullmatch(value) or not 0 < int(value) <= MAX_PAYMENT_ID:
        raise InvalidArgument(field, "must be a payment id (a positive decimal 64-bit number)")
    return int(value)


def check_amount(field: str, value: int) -> int:
    """A required amount in cents: 1..MAX_AMOUNT_CENTS."""
    if not 0 < value <= MAX_AMOUNT_CENTS:
        raise InvalidArgument(field, f"must be 1..{MAX_AMOUNT_CENTS} cents, got {value}")
    return value


def check_text(field: str, value: str, max_len: int) -> str:
    """Optional free text: at most ``max_len`` printable characters."""
    if len(value) > max_len or not value.isprintable():
        raise InvalidArgument(field, f"must be at most {max_len} printable characters")
    return value


@dataclass(frozen=True, slots=True)
class NewPayment:
    """A valid CreatePayment."""

    order_id: str
    user_id: str
    amount_cents: int
    channel: Channel


def new_payment(cmd: CreatePaymentCommand) -> NewPayment:
    """Validate CreatePayment; an unspecified channel means EXTERNAL, POINTS is refused."""
    order_id = check_id("order_id", cmd.order_id)
    user_id = check_id("user_id", cmd.user_id)
    amount = check_amount("amount_cents", cmd.amount_cents)
    channel = cmd.channel or Channel.EXTERNAL
    if channel is not Channel.EXTERNAL:
        raise InvalidArgument("channel", "pay_svc takes EXTERNAL payments only (points payments are a TCC)")
    return NewPayment(order_id, user_id, amount, channel)


@dataclass(frozen=True, slots=True)
class Lookup:
    """A valid payment lookup: at least one of the two."""

    payment_id: int | None
    order_id: str | None


def lookup(query: PaymentLookup) -> Lookup:
    """Validate a lookup by payment id and/or order id."""
    if not query.payment_id and not query.order_id:
        raise InvalidArgument("payment_id", "payment_id or order_id is required")
    payment_id = check_payment_id("payment_id", query.payment_id) if query.payment_id else None
    order_id = check_id("order_id", query.order_id) if query.order_id else None
    return Lookup(payment_id, order_id)


@dataclass(frozen=True, slots=True)
class ValidNotice:
    """A well-formed callback (not yet authenticated)."""

    notice: CallbackNotice
    payment_id: int
    status: PaymentStatus


def callback(notice: CallbackNotice) -> ValidNotice:
    """Validate the shape of a callback's fields (the signature is checked separately)."""
    payment_id = check_payment_id("payment_id", notice.payment_id)
    check_id("order_id", notice.order_id)
    check_amount("amount_cents", notice.amount_cents)
    check_id("trade_no", notice.trade_no)
    if notice.status not in CALLBACK_STATUSES:
        raise InvalidArgument("status", "must be PAYMENT_STATUS_SUCCEEDED or PAYMENT_STATUS_FAILED")
    if notice.timestamp_ms <= 0:
        raise InvalidArgument("timestamp_ms", "missing")
    check_id("nonce", notice.nonce)
    if not _SIGNATURE_RE.fullmatch(notice.signature):
        raise InvalidArgument("signature", f"must be {SIGNATURE_HEX_LEN} lowercase hex digits")
    return ValidNotice(notice, payment_id, notice.status)


def outcome(status: PaymentStatus | None) -> PaymentStatus:
    """SimulateGatewayPay's outcome: unspecified means SUCCEEDED; only SUCCEEDED or FAILED."""
    chosen = status or PaymentStatus.SUCCEEDED
    if chosen not in CALLBACK_STATUSES:
        raise InvalidArgument("outcome", "must be PAYMENT_STATUS_SUCCEEDED or PAYMENT_STATUS_FAILED")
    return chosen


@dataclass(frozen=True, slots=True)
class ValidRefund:
    """A valid Refund / RefundBranch."""

    lookup: Lookup
    amount_cents: int
    reason: str
    out_refund_no: str


def refund(cmd: RefundCommand) -> ValidRefund:
    """Validate a refund request (the amount is compared with the payment later)."""
    found = lookup(PaymentLookup(cmd.payment_id, cmd.order_id))
    amount = check_amount("amount_cents", cmd.amount_cents)
    reason = check_text("reason", cmd.reason, MAX_REASON_LEN)
    out_refund_no = check_id("out_refund_no", cmd.out_refund_no)
    return ValidRefund(found, amount, reason, out_refund_no)
