"""Bad input on every public RPC: INVALID_ARGUMENT naming the field, and nothing changes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from meshpb.common.v1 import common_pb2
from meshpb.order.v1 import order_pb2
from meshpb.pay.v1 import pay_pb2
from tests.integration.pay.harness import RunningPay, rpc_error, signed_callback

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

LONG = "x" * 65
EXTERNAL = order_pb2.PAY_CHANNEL_EXTERNAL


def create(**fields: Any) -> pay_pb2.CreatePaymentRequest:
    values = {"order_id": "o-valid", "user_id": "u1", "amount_cents": 100, "channel": EXTERNAL, **fields}
    return pay_pb2.CreatePaymentRequest(**values)


CREATE_CASES = [
    (create(order_id=""), "order_id"),
    (create(order_id="has space"), "order_id"),
    (create(order_id="a|b"), "order_id"),
    (create(order_id=LONG), "order_id"),
    (create(user_id=""), "user_id"),
    (create(user_id="tab\there"), "user_id"),
    (create(amount_cents=0), "amount_cents"),
    (create(amount_cents=-5), "amount_cents"),
    (create(amount_cents=10**12), "amount_cents"),
    (create(channel=order_pb2.PAY_CHANNEL_POINTS), "channel"),
    (create(channel=99), "channel"),
]


@pytest.mark.parametrize(("request_", "field"), CREATE_CASES)
async def test_create_payment_invalid_input_names_the_field(
    pay: RunningPay, request_: pay_pb2.CreatePaymentRequest, field: str
) -> None:
    error = await rpc_error(pay.stub.CreatePayment(request_))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith(f"{field}:")
    assert not (await pay.stub.Audit(common_pb2.AuditRequest())).payments


async def test_every_other_rpc_refuses_invalid_input_without_side_effects(pay: RunningPay) -> None:
    created = await pay.create(amount_cents=500)
    good = signed_callback(created)

    def callback(**fields: Any) -> pay_pb2.CallbackRequest:
        request = pay_pb2.CallbackRequest()
        request.CopyFrom(good)
        for key, value in fields.items():
            setattr(request, key, value)
        return request

    def refund(**fields: Any) -> pay_pb2.RefundRequest:
        values = {"payment_id": created.payment_id, "amount_cents": 500, "out_refund_no": "r-1", **fields}
        return pay_pb2.RefundRequest(**values)

    metadata = (
        ("x-mesh-gid", "g-valid"),
        ("x-mesh-branch", "03"),
        ("x-mesh-op", "action"),
        ("x-mesh-mode", "msg"),
    )
    cases: list[tuple[Callable[[], Awaitable[Any]], str]] = [
        (lambda: pay.stub.GetPayment(pay_pb2.GetPaymentRequest()), "payment_id"),
        (lambda: pay.stub.GetPayment(pay_pb2.GetPaymentRequest(payment_id="abc")), "payment_id"),
        (lambda: pay.stub.GetPayment(pay_pb2.GetPaymentRequest(payment_id="-1")), "payment_id"),
        (lambda: pay.stub.GetPayment(pay_pb2.GetPaymentRequest(order_id=LONG)), "order_id"),
        (lambda: pay.stub.Callback(callback(payment_id="")), "payment_id"),
        (lambda: pay.stub.Callback(callback(payment_id="p-1")), "payment_id"),
        (lambda: pay.stub.Callback(callback(order_id="")), "order_id"),
        (lambda: pay.stub.Callback(callback(amount_cents=0)), "amount_cents"),
        (lambda: pay.stub.Callback(callback(trade_no="")), "trade_no"),
        (lambda: pay.stub.Callback(callback(status=pay_pb2.PAYMENT_STATUS_UNSPECIFIED)), "status"),
        (lambda: pay.stub.Callback(callback(status=pay_pb2.PAYMENT_STATUS_REFUNDED)), "status"),
        (lambda: pay.stub.Callback(callback(status=42)), "status"),
        (lambda: pay.stub.Callback(callback(timestamp_ms=0)), "timestamp_ms"),
        (lambda: pay.stub.Callback(callback(nonce="")), "nonce"),
        (lambda: pay.stub.Callback(callback(signature="")), "signature"),
        (lambda: pay.stub.Callback(callback(signature=good.signature.upper())), "signature"),
        (lambda: pay.stub.Refund(refund(payment_id="")), "payment_id"),
        (lambda: pay.stub.Refund(refund(amount_cents=0)), "amount_cents"),
        (lambda: pay.stub.Refund(refund(out_refund_no="")), "out_refund_no"),
        (lambda: pay.stub.Refund(refund(out_refund_no=LONG)), "out_refund_no"),
        (lambda: pay.stub.Refund(refund(reason="r" * 257)), "reason"),
        (lambda: pay.stub.Refund(refund(reason="line\nbreak")), "reason"),
        (lambda: pay.stub.RefundBranch(refund(out_refund_no=""), metadata=metadata), "out_refund_no"),
        (lambda: pay.stub.RefundBranch(refund(), metadata=metadata[:1]), "x-mesh-branch"),
        (lambda: pay.stub.SimulateGatewayPay(pay_pb2.SimulateGatewayPayRequest()), "payment_id"),
        (
            lambda: pay.stub.SimulateGatewayPay(
                pay_pb2.SimulateGatewayPayRequest(
                    payment_id=created.payment_id, outcome=pay_pb2.PAYMENT_STATUS_PENDING
                )
            ),
            "outcome",
        ),
        (
            lambda: pay.stub.SimulateGatewayPay(
                pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id, outcome=17)  # type: ignore[arg-type]
            ),
            "outcome",
        ),
    ]
    for call, field in cases:
        error = await rpc_error(call())
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, error.details())
        assert (error.details() or "").startswith(f"{field}:"), (field, error.details())

    after = await pay.stub.GetPayment(pay_pb2.GetPaymentRequest(payment_id=created.payment_id))
    assert after == created
    # None of the refused callbacks used up the nonce of the genuine one.
    assert (await pay.stub.Callback(good)).accepted
