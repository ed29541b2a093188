"""Gateway callbacks through the real gRPC path: verification, replays, refusals, order_svc told once."""

from __future__ import annotations

import logging

import grpc
import pytest

from meshpb.order.v1 import order_pb2
from meshpb.pay.v1 import pay_pb2
from tests.integration.pay.harness import (
    SECRET,
    FakeOrder,
    RunningPay,
    pay_settings,
    rpc_error,
    signed_callback,
    wait_for,
)

SUCCEEDED = pay_pb2.PAYMENT_STATUS_SUCCEEDED


async def test_simulated_gateway_pays_and_order_is_told_once(pay: RunningPay, fake_order: FakeOrder) -> None:
    created = await pay.create(amount_cents=4200)

    paid = await pay.stub.SimulateGatewayPay(pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id))

    assert paid.status == SUCCEEDED
    assert paid.trade_no
    assert paid.HasField("paid_at")
    calls = fake_order.calls_for(created.order_id)
    assert [(c.payment_id, c.amount_cents, c.answered) for c in calls] == [
        (created.payment_id, 4200, "accepted")
    ]
    assert calls[0].metadata.get("traceparent", "").startswith("00-")
    assert fake_order.order_status(created.order_id) == order_pb2.ORDER_STATUS_PAID
    stored = await pay.stored(created.payment_id)
    assert stored.order_notified
    row = await pay.audit_of(created.payment_id)
    assert (row.succeeded, row.refund_count, row.refunded_cents) == (True, 0, 0)


async def test_forged_signature_is_refused_and_nothing_changes(
    pay: RunningPay, fake_order: FakeOrder
) -> None:
    created = await pay.create()
    forged = signed_callback(created, secret="not-the-secret", nonce="n-forged-1")

    error = await rpc_error(pay.stub.Callback(forged))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "signature" in (error.details() or "")
    after = await pay.stub.GetPayment(pay_pb2.GetPaymentRequest(payment_id=created.payment_id))
    assert after == created
    assert fake_order.calls == []
    # The forged callback did not burn its nonce: the genuine one with that nonce goes through.
    genuine = await pay.stub.Callback(signed_callback(created, nonce="n-forged-1"))
    assert genuine.accepted and genuine.payment.status == SUCCEEDED


async def test_tampered_field_breaks_the_signature(pay: RunningPay) -> None:
    created = await pay.create(amount_cents=500)
    callback = signed_callback(created)
    callback.trade_no = "gw-other"

    error = await rpc_error(pay.stub.Callback(callback))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await pay.stored(created.payment_id)).status.value == "PENDING"


async def test_replayed_nonce_is_refused(pay: RunningPay, fake_order: FakeOrder) -> None:
    created = await pay.create()
    callback = signed_callback(created)
    assert (await pay.stub.Callback(callback)).accepted

    error = await rpc_error(pay.stub.Callback(callback))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "nonce" in (error.details() or "")
    assert len(fake_order.calls_for(created.order_id)) == 1


async def test_stale_or_future_timestamp_is_refused(pay: RunningPay, fake_order: FakeOrder) -> None:
    created = await pay.create()
    now_ms = int(pay.runtime.clock.now() * 1000)

    for skew_ms in (-301_000, 301_000):
        error = await rpc_error(pay.stub.Callback(signed_callback(created, timestamp_ms=now_ms + skew_ms)))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "timestamp_ms" in (error.details() or "")

    assert (await pay.stored(created.payment_id)).status.value == "PENDING"
    assert fake_order.calls == []
    # Inside the window is fine.
    assert (await pay.stub.Callback(signed_callback(created, timestamp_ms=now_ms - 250_000))).accepted


async def test_wrong_amount_or_order_is_refused(pay: RunningPay, fake_order: FakeOrder) -> None:
    created = await pay.create(amount_cents=1000)
    other = await pay.create(amount_cents=1000)

    wrong_amount = await rpc_error(pay.stub.Callback(signed_callback(created, amount_cents=999)))
    wrong_order = await rpc_error(pay.stub.Callback(signed_callback(created, order_id=other.order_id)))
    unknown = await rpc_error(pay.stub.Callback(signed_callback(created, payment_id="4242")))

    assert wrong_amount.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (wrong_amount.details() or "").startswith("amount_cents:")
    assert wrong_order.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (wrong_order.details() or "").startswith("order_id:")
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
    for payment in (created, other):
        assert (await pay.stored(payment.payment_id)).status.value == "PENDING"
    assert fake_order.calls == []


async def test_duplicate_callback_changes_nothing(pay: RunningPay, fake_order: FakeOrder) -> None:
    created = await pay.create()
    first = await pay.stub.Callback(signed_callback(created, trade_no="gw-1"))

    again = await pay.stub.Callback(signed_callback(created, trade_no="gw-1"))
    resent = await pay.stub.SimulateGatewayPay(
        pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id)
    )
    failed_later = await pay.stub.Callback(
        signed_callback(created, trade_no="gw-1", status=pay_pb2.PAYMENT_STATUS_FAILED)
    )

    assert first.accepted and again.accepted and failed_later.accepted
    assert again.payment == first.payment
    assert resent == first.payment
    assert failed_later.payment == first.payment
    assert len(fake_order.calls_for(created.order_id)) == 1
    row = await pay.audit_of(created.payment_id)
    assert (row.status, row.refund_count) == (SUCCEEDED, 0)


async def test_callback_for_cancelled_order_refunds_exactly_once(
    pay: RunningPay, fake_order: FakeOrder
) -> None:
    created = await pay.create(amount_cents=777)
    fake_order.cancel(created.order_id)

    paid = await pay.stub.SimulateGatewayPay(pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id))
    again = await pay.stub.Callback(signed_callback(created, trade_no=paid.trade_no))

    assert paid.status == pay_pb2.PAYMENT_STATUS_REFUNDED
    assert paid.refund_id
    assert again.accepted and again.payment.status == pay_pb2.PAYMENT_STATUS_REFUNDED
    assert again.payment.refund_id == paid.refund_id
    assert [c.answered for c in fake_order.calls_for(created.order_id)] == ["refused"]
    row = await pay.audit_of(created.payment_id)
    assert (row.succeeded, row.refund_count, row.refunded_cents) == (True, 1, 777)
    stored = await pay.stored(created.payment_id)
    assert stored.order_notified


async def test_gateway_failure_marks_payment_failed_and_late_money_is_refunded(
    pay: RunningPay, fake_order: FakeOrder
) -> None:
    created = await pay.create(amount_cents=300)

    failed = await pay.stub.SimulateGatewayPay(
        pay_pb2.SimulateGatewayPayRequest(
            payment_id=created.payment_id, outcome=pay_pb2.PAYMENT_STATUS_FAILED
        )
    )
    assert failed.status == pay_pb2.PAYMENT_STATUS_FAILED
    assert not failed.HasField("paid_at")

    late = await pay.stub.SimulateGatewayPay(pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id))

    assert late.status == pay_pb2.PAYMENT_STATUS_REFUNDED
    assert fake_order.calls == []  # a closed payment never makes the order PAID
    row = await pay.audit_of(created.payment_id)
    assert (row.succeeded, row.refund_count, row.refunded_cents) == (True, 1, 300)


async def test_without_secret_every_callback_is_refused(sqlite_url: str, fake_order: FakeOrder) -> None:
    running = await RunningPay.start(pay_settings(sqlite_url, fake_order.address, secret=""))
    try:
        created = await running.create()
        signed_with_empty = signed_callback(created, secret="")

        direct = await rpc_error(running.stub.Callback(signed_with_empty))
        simulated = await rpc_error(
            running.stub.SimulateGatewayPay(pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id))
        )

        assert direct.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "callback_secret" in (direct.details() or "")
        assert simulated.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (await running.stored(created.payment_id)).status.value == "PENDING"
        assert fake_order.calls == []
    finally:
        await running.stop()


async def test_refused_callback_is_logged_with_reason_and_without_secret(
    sqlite_url: str, fake_order: FakeOrder, caplog: pytest.LogCaptureFixture
) -> None:
    running = await RunningPay.start(pay_settings(sqlite_url, fake_order.address))
    try:
        created = await running.create()
        with caplog.at_level(logging.INFO):
            await rpc_error(running.stub.Callback(signed_callback(created, secret="forger")))
    finally:
        await running.stop()

    refusals = [r for r in caplog.records if r.getMessage().startswith("callback refused")]
    assert len(refusals) == 1
    assert "signature" in refusals[0].getMessage()
    assert getattr(refusals[0], "payment_id", None) == created.payment_id
    assert SECRET not in caplog.text


async def test_gateway_delay_calls_back_later(sqlite_url: str, fake_order: FakeOrder) -> None:
    running = await RunningPay.start(pay_settings(sqlite_url, fake_order.address, gateway_delay_seconds=0.3))
    try:
        created = await running.create()

        answered = await running.stub.SimulateGatewayPay(
            pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id)
        )
        assert answered.status == pay_pb2.PAYMENT_STATUS_PENDING

        async def succeeded() -> bool:
            got = await running.stub.GetPayment(pay_pb2.GetPaymentRequest(payment_id=created.payment_id))
            return bool(got.status == SUCCEEDED)

        await wait_for(succeeded, within=10, what="the delayed callback")
        # The payment turns SUCCEEDED first and the order is told right after: wait for that too.
        await wait_for(
            lambda: fake_order.calls_for(created.order_id, "accepted"), within=10, what="the order to be told"
        )
        assert len(fake_order.calls_for(created.order_id, "accepted")) == 1
    finally:
        await running.stop()
