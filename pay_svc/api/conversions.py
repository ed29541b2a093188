"""Protobuf <-> domain values (no rules here; an enum value this build does not know is bad input)."""

from __future__ import annotations

from collections.abc import Callable

from meshkit.errors import InvalidArgument
from meshkit.rpc.pbtime import timestamp
from meshpb.common.v1 import common_pb2
from meshpb.order.v1 import order_pb2
from meshpb.pay.v1 import pay_pb2
from pay_svc.payments.values import (
    AuditRow,
    CallbackAnswer,
    CallbackNotice,
    Channel,
    CreatePaymentCommand,
    Payment,
    PaymentLookup,
    PaymentStatus,
    RefundAnswer,
    RefundCommand,
)

STATUS_PREFIX = "PAYMENT_STATUS_"
CHANNEL_PREFIX = "PAY_CHANNEL_"


def _enum_name(values: list[int], name_of: Callable[[int], str], value: int, field: str) -> str | None:
    """The enum name of a wire value; None for 0 (unspecified); unknown values are bad input."""
    if value == 0:
        return None
    if value not in values:
        raise InvalidArgument(field, f"unknown enum value {value}")
    return name_of(value)


def status_from_pb(value: int, field: str = "status") -> PaymentStatus | None:
    """The domain status of a wire value; None for UNSPECIFIED; unknown values are bad input."""
    name = _enum_name(pay_pb2.PaymentStatus.values(), pay_pb2.PaymentStatus.Name, value, field)  # type: ignore[arg-type]
    return None if name is None else PaymentStatus(name.removeprefix(STATUS_PREFIX))


def status_to_pb(status: PaymentStatus) -> pay_pb2.PaymentStatus.ValueType:
    """The wire value of a domain status."""
    return pay_pb2.PaymentStatus.Value(status.wire_name)


def channel_from_pb(value: int, field: str = "channel") -> Channel | None:
    """The domain channel of a wire value; None for UNSPECIFIED; unknown values are bad input."""
    name = _enum_name(order_pb2.PayChannel.values(), order_pb2.PayChannel.Name, value, field)  # type: ignore[arg-type]
    return None if name is None else Channel(name.removeprefix(CHANNEL_PREFIX))


def channel_to_pb(channel: Channel) -> order_pb2.PayChannel.ValueType:
    """The wire value of a domain channel."""
    return order_pb2.PayChannel.Value(f"{CHANNEL_PREFIX}{channel.value}")


def payment_pb(payment: Payment) -> pay_pb2.Payment:
    """The wire form of a payment."""
    return pay_pb2.Payment(
        payment_id=str(payment.payment_id),
        order_id=payment.order_id,
        user_id=payment.user_id,
        amount_cents=payment.amount_cents,
        channel=channel_to_pb(payment.channel),
        status=status_to_pb(payment.status),
        token=payment.token,
        trade_no=payment.trade_no,
        created_at=timestamp(payment.created_at_ms),
        paid_at=timestamp(payment.paid_at_ms),
        refund_id=str(payment.refund_id) if payment.refund_id is not None else "",
    )


def create_command(request: pay_pb2.CreatePaymentRequest) -> CreatePaymentCommand:
    """CreatePayment as the domain takes it."""
    return CreatePaymentCommand(
        order_id=request.order_id,
        user_id=request.user_id,
        amount_cents=request.amount_cents,
        channel=channel_from_pb(request.channel),
    )


def lookup(request: pay_pb2.GetPaymentRequest) -> PaymentLookup:
    """GetPayment as the domain takes it."""
    return PaymentLookup(payment_id=request.payment_id, order_id=request.order_id)


def callback_notice(request: pay_pb2.CallbackRequest) -> CallbackNotice:
    """A callback as the domain takes it (an unknown status is left for the domain to refuse and log)."""
    try:
        status = status_from_pb(request.status)
    except InvalidArgument:
        status = None
    return CallbackNotice(
        payment_id=request.payment_id,
        order_id=request.order_id,
        amount_cents=request.amount_cents,
        trade_no=request.trade_no,
        status=status,
        timestamp_ms=request.timestamp_ms,
        nonce=request.nonce,
        signature=request.signature,
    )


def callback_request(notice: CallbackNotice) -> pay_pb2.CallbackRequest:
    """The wire form of a callback (what the simulated gateway sends)."""
    return pay_pb2.CallbackRequest(
        payment_id=notice.payment_id,
        order_id=notice.order_id,
        amount_cents=notice.amount_cents,
        trade_no=notice.trade_no,
        status=status_to_pb(notice.status)
        if notice.status is not None
        else pay_pb2.PAYMENT_STATUS_UNSPECIFIED,
        signature=notice.signature,
        timestamp_ms=notice.timestamp_ms,
        nonce=notice.nonce,
    )


def callback_response(answer: CallbackAnswer) -> pay_pb2.CallbackResponse:
    """The wire form of Callback's answer."""
    return pay_pb2.CallbackResponse(accepted=answer.accepted, payment=payment_pb(answer.payment))


def refund_command(request: pay_pb2.RefundRequest) -> RefundCommand:
    """Refund / RefundBranch as the domain takes it."""
    return RefundCommand(
        payment_id=request.payment_id,
        order_id=request.order_id,
        amount_cents=request.amount_cents,
        reason=request.reason,
        out_refund_no=request.out_refund_no,
    )


def refund_record(answer: RefundAnswer) -> pay_pb2.RefundRecord:
    """The refund; with nothing paid (payment closed), an empty refund_id and amount 0."""
    refund = answer.refund
    if refund is None:
        return pay_pb2.RefundRecord(payment_id=str(answer.payment.payment_id), amount_cents=0)
    return pay_pb2.RefundRecord(
        refund_id=str(refund.refund_id),
        payment_id=str(refund.payment_id),
        amount_cents=refund.amount_cents,
        created_at=timestamp(refund.created_at_ms),
    )


def branch_reply(note: str) -> common_pb2.BranchReply:
    """A branch's OK answer."""
    return common_pb2.BranchReply(note=note)


def audit(rows: list[AuditRow]) -> pay_pb2.PayAudit:
    """The wire form of the audit."""
    return pay_pb2.PayAudit(
        payments=[
            pay_pb2.PaymentAuditRow(
                payment_id=str(row.payment_id),
                order_id=row.order_id,
                channel=channel_to_pb(row.channel),
                status=status_to_pb(row.status),
                amount_cents=row.amount_cents,
                succeeded=row.succeeded,
                refund_count=row.refund_count,
                refunded_cents=row.refunded_cents,
            )
            for row in rows
        ]
    )
