"""Protobuf <-> domain conversions."""

from __future__ import annotations

import pytest

from meshkit.errors import InvalidArgument
from meshpb.order.v1 import order_pb2
from meshpb.pay.v1 import pay_pb2
from pay_svc import convert
from pay_svc.records import Channel, Payment, PaymentStatus, RefundAnswer

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
        assert convert.status_from_pb(convert.status_to_pb(status)) is status
    assert convert.status_from_pb(pay_pb2.PAYMENT_STATUS_UNSPECIFIED) is None
    with pytest.raises(InvalidArgument) as info:
        convert.status_from_pb(99, "outcome")
    assert info.value.field == "outcome"


def test_channel_conversion() -> None:
    assert convert.channel_from_pb(order_pb2.PAY_CHANNEL_EXTERNAL) is Channel.EXTERNAL
    assert convert.channel_from_pb(order_pb2.PAY_CHANNEL_UNSPECIFIED) is None
    assert convert.channel_to_pb(Channel.POINTS) == order_pb2.PAY_CHANNEL_POINTS


def test_unknown_callback_status_is_left_to_the_domain() -> None:
    notice = convert.callback_notice(pay_pb2.CallbackRequest(payment_id="1", status=42))  # type: ignore[arg-type]
    assert notice.status is None


def test_payment_wire_form() -> None:
    wire = convert.payment_pb(PAYMENT)
    assert (wire.payment_id, wire.status, wire.refund_id) == ("7", pay_pb2.PAYMENT_STATUS_PENDING, "")
    assert wire.created_at.ToMilliseconds() == 1_800_000_000_123
    assert not wire.HasField("paid_at")


def test_refund_record_when_nothing_was_paid() -> None:
    record = convert.refund_record(RefundAnswer(PAYMENT, None, "closed unpaid"))
    assert (record.refund_id, record.payment_id, record.amount_cents) == ("", "7", 0)
