"""Input validation names the offending field."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshkit.errors import InvalidArgument
from pay_svc.payments import validation
from pay_svc.payments.values import (
    CallbackNotice,
    Channel,
    CreatePaymentCommand,
    PaymentLookup,
    PaymentStatus,
    RefundCommand,
)

NOTICE = CallbackNotice(
    payment_id="42",
    order_id="o-1",
    amount_cents=10,
    trade_no="gw-1",
    status=PaymentStatus.SUCCEEDED,
    timestamp_ms=1,
    nonce="n",
    signature="a" * 64,
)


def field_of(call: object) -> str:
    assert callable(call)
    with pytest.raises(InvalidArgument) as info:
        call()
    return info.value.field


def test_create_defaults_to_external_and_refuses_points() -> None:
    ok = validation.new_payment(CreatePaymentCommand("o", "u", 1, None))
    assert ok.channel is Channel.EXTERNAL
    assert (
        field_of(lambda: validation.new_payment(CreatePaymentCommand("o", "u", 1, Channel.POINTS)))
        == "channel"
    )


@pytest.mark.parametrize(
    ("cmd", "field"),
    [
        (CreatePaymentCommand("", "u", 1, None), "order_id"),
        (CreatePaymentCommand("o|1", "u", 1, None), "order_id"),
        (CreatePaymentCommand("o", "", 1, None), "user_id"),
        (CreatePaymentCommand("o", "u", 0, None), "amount_cents"),
        (CreatePaymentCommand("o", "u", validation.MAX_AMOUNT_CENTS + 1, None), "amount_cents"),
    ],
)
def test_create_fields(cmd: CreatePaymentCommand, field: str) -> None:
    assert field_of(lambda: validation.new_payment(cmd)) == field


def test_payment_ids_are_positive_decimal_64_bit() -> None:
    assert validation.check_payment_id("payment_id", "9223372036854775807") == 2**63 - 1
    for bad in ("0", "9223372036854775808", "12a", "+1", " 1", "1" * 20):
        assert field_of(lambda bad=bad: validation.check_payment_id("payment_id", bad)) == "payment_id"


def test_lookup_needs_one_of_two() -> None:
    assert validation.lookup(PaymentLookup("", "o")).order_id == "o"
    assert field_of(lambda: validation.lookup(PaymentLookup("", ""))) == "payment_id"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"payment_id": "x"}, "payment_id"),
        ({"order_id": "a b"}, "order_id"),
        ({"amount_cents": -1}, "amount_cents"),
        ({"trade_no": ""}, "trade_no"),
        ({"status": None}, "status"),
        ({"status": PaymentStatus.PENDING}, "status"),
        ({"timestamp_ms": 0}, "timestamp_ms"),
        ({"nonce": "n" * 65}, "nonce"),
        ({"signature": "A" * 64}, "signature"),
        ({"signature": "a" * 63}, "signature"),
    ],
)
def test_callback_fields(changes: dict[str, object], field: str) -> None:
    notice = replace(NOTICE, **changes)  # type: ignore[arg-type]
    assert field_of(lambda: validation.callback(notice)) == field


def test_outcome_defaults_to_succeeded() -> None:
    assert validation.outcome(None) is PaymentStatus.SUCCEEDED
    assert validation.outcome(PaymentStatus.FAILED) is PaymentStatus.FAILED
    assert field_of(lambda: validation.outcome(PaymentStatus.REFUNDED)) == "outcome"


@pytest.mark.parametrize(
    ("cmd", "field"),
    [
        (RefundCommand("", "", 1, "", "r"), "payment_id"),
        (RefundCommand("1", "", 0, "", "r"), "amount_cents"),
        (RefundCommand("1", "", 1, "x" * 257, "r"), "reason"),
        (RefundCommand("1", "", 1, "", ""), "out_refund_no"),
    ],
)
def test_refund_fields(cmd: RefundCommand, field: str) -> None:
    assert field_of(lambda: validation.refund(cmd)) == field
