"""CreatePayment, GetPayment and Audit against the real store (SQLite and MariaDB)."""

from __future__ import annotations

import asyncio

import grpc

from meshpb.common.v1 import common_pb2
from meshpb.order.v1 import order_pb2
from meshpb.pay.v1 import pay_pb2
from tests.integration.pay.harness import FakeOrder, RunningPay, rpc_error


async def test_create_payment_is_idempotent_per_order(pay: RunningPay) -> None:
    first = await pay.create(amount_cents=1999, order_id="o-idem-1")
    again = await pay.create(amount_cents=1999, order_id="o-idem-1")
    racing = await asyncio.gather(*(pay.create(amount_cents=1999, order_id="o-idem-2") for _ in range(6)))

    assert again == first
    assert first.status == pay_pb2.PAYMENT_STATUS_PENDING
    assert first.channel == order_pb2.PAY_CHANNEL_EXTERNAL
    assert len(first.token) >= 32
    assert len({p.payment_id for p in racing}) == 1
    assert racing[0].token != first.token
    audit = await pay.stub.Audit(common_pb2.AuditRequest())
    assert sorted(row.order_id for row in audit.payments) == ["o-idem-1", "o-idem-2"]


async def test_create_payment_with_other_amount_for_same_order_is_refused(pay: RunningPay) -> None:
    first = await pay.create(amount_cents=1000, order_id="o-amt")

    other_amount = await rpc_error(pay.create(amount_cents=1001, order_id="o-amt"))
    other_user = await rpc_error(pay.create(amount_cents=1000, order_id="o-amt", user_id="u2"))

    for error in (other_amount, other_user):
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert first.payment_id in (error.details() or "")
    assert await pay.stub.GetPayment(pay_pb2.GetPaymentRequest(order_id="o-amt")) == first


async def test_get_payment_by_id_or_order(pay: RunningPay) -> None:
    created = await pay.create(order_id="o-get")
    other = await pay.create(order_id="o-get-other")

    by_id = await pay.stub.GetPayment(pay_pb2.GetPaymentRequest(payment_id=created.payment_id))
    by_order = await pay.stub.GetPayment(pay_pb2.GetPaymentRequest(order_id="o-get"))
    by_both = await pay.stub.GetPayment(
        pay_pb2.GetPaymentRequest(payment_id=created.payment_id, order_id="o-get")
    )
    mismatch = await rpc_error(
        pay.stub.GetPayment(pay_pb2.GetPaymentRequest(payment_id=other.payment_id, order_id="o-get"))
    )
    missing = await rpc_error(pay.stub.GetPayment(pay_pb2.GetPaymentRequest(order_id="o-none")))

    assert by_id == by_order == by_both == created
    assert mismatch.code() == grpc.StatusCode.NOT_FOUND
    assert missing.code() == grpc.StatusCode.NOT_FOUND


async def test_audit_shows_every_payment_with_its_refunds(pay: RunningPay, fake_order: FakeOrder) -> None:
    pending = await pay.create(amount_cents=100)
    paid = await pay.create(amount_cents=200)
    refunded = await pay.create(amount_cents=300)
    for payment in (paid, refunded):
        await pay.stub.SimulateGatewayPay(pay_pb2.SimulateGatewayPayRequest(payment_id=payment.payment_id))
    fake_order.refunding(refunded.order_id)  # a refund goes through the order's cancel (issue 15 item 1)
    await pay.stub.Refund(
        pay_pb2.RefundRequest(payment_id=refunded.payment_id, amount_cents=300, out_refund_no="r-audit")
    )

    rows = {row.payment_id: row for row in (await pay.stub.Audit(common_pb2.AuditRequest())).payments}

    def summary(payment: pay_pb2.Payment) -> tuple[int, bool, int, int, int]:
        row = rows[payment.payment_id]
        return (row.status, row.succeeded, row.refund_count, row.refunded_cents, row.amount_cents)

    assert summary(pending) == (pay_pb2.PAYMENT_STATUS_PENDING, False, 0, 0, 100)
    assert summary(paid) == (pay_pb2.PAYMENT_STATUS_SUCCEEDED, True, 0, 0, 200)
    assert summary(refunded) == (pay_pb2.PAYMENT_STATUS_REFUNDED, True, 1, 300, 300)
    assert all(row.channel == order_pb2.PAY_CHANNEL_EXTERNAL for row in rows.values())
