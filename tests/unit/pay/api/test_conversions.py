"""Protobuf <-> domain conversions."""

from __future__ import annotations

import pytest

from meshkit.errors import InvalidArgument
from meshpb.order.v1 import order_pb2
from meshpb.pay.v1 import pay_pb2
from pay_svc.api import conversions
from pay_svc.payments.values import Channel, Payment, PaymentStatus, RefundAnswer

PAYMENT = Payment(
    payment_id=7,
    order_id="o-7",
    user_id="u",
    amount_cents=70,
    channel=Channel.EXTERNAL,
    status=PaymentStatus.PENDING,
    token="t",
    trade_no="",
    created_at_ms=1_800_000_000_123,
    paid_at_ms=None,
    order_notified=False,
    closed_by="",
)


def test_status_round_trip_and_unknown_values() -> None:
    for status in PaymentStatus:
        assert conversions.status_from_pb(conversions.status_to_pb(status)) is status
    assert conversions.status_from_pb(pay_pb2.PAYMENT_STATUS_UNSPECIFIED) is None
    with pytest.raises(InvalidArgument) as info:
        conversions.status_from_pb(99, "outcome")
    assert info.value.field == "outcome"


def test_channel_conversion() -> None:
    assert conversions.channel_from_pb(order_pb2.PAY_CHANNEL_EXTERNAL) is Channel.EXTERNAL
    assert conversions.channel_from_pb(order_pb2.PAY_CHANNEL_UNSPECIFIED) is None
    assert conversions.channel_to_pb(Channel.POINTS) == order_pb2.PAY_CHANNEL_POINTS


def test_unknown_callback_status_is_left_to_the_domain() -> None:
    notice = conversions.callback_notice(pay_pb2.CallbackRequest(payment_id="1", status=42))  # type: ignore[arg-type]
    assert notice.status is None


def test_payment_wire_form() -> None:
    wire = conversions.payment_pb(PAYMENT)
    assert (wire.payment_id, wire.status, wire.refund_id) == ("7", pay_pb2.PAYMENT_STATUS_PENDING, "")
    assert wire.created_at.ToMilliseconds() == 1_800_000_000_123
    assert not wire.HasField("paid_at")


def test_refund_record_when_nothing_was_paid() -> None:
    record = conversions.refund_record(RefundAnswer(PAYMENT, None, "closed unpaid"))
    assert (record.refund_id, record.payment_id, record.amount_cents) == ("", "7", 0)
