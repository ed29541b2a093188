"""Telling order_svc of a payment is never lost: the background notifier retries until it is told."""

from __future__ import annotations

import grpc

from meshkit.runtime.clock import ManualClock
from meshpb.order.v1 import order_pb2
from meshpb.pay.v1 import pay_pb2
from tests.integration.pay.harness import (
    FakeOrder,
    RunningPay,
    pay_settings,
    rpc_error,
    signed_callback,
    wait_for,
)

SUCCEEDED = pay_pb2.PAYMENT_STATUS_SUCCEEDED


async def test_order_down_at_callback_then_notifier_delivers(db_url: str, fake_order: FakeOrder) -> None:
    running = await RunningPay.start(pay_settings(db_url, fake_order.address, notify_interval_seconds=0.2))
    try:
        created = await running.create()
        fake_order.down = True

        paid = await running.stub.SimulateGatewayPay(
            pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id)
        )

        assert paid.status == SUCCEEDED  # the payment is recorded even though order_svc did not answer
        assert not (await running.stored(created.payment_id)).order_notified
        assert fake_order.calls_for(created.order_id, "unavailable")
        fake_order.down = False

        async def told() -> bool:
            return (await running.stored(created.payment_id)).order_notified

        await wait_for(told, within=10, what="the notifier to tell order_svc")
        assert len(fake_order.calls_for(created.order_id, "accepted")) == 1
        assert fake_order.order_status(created.order_id) == order_pb2.ORDER_STATUS_PAID
        assert (await running.stored(created.payment_id)).status.value == "SUCCEEDED"
    finally:
        await running.stop()


async def test_notifier_waits_for_the_injected_clock(sqlite_url: str, fake_order: FakeOrder) -> None:
    clock = ManualClock()
    running = await RunningPay.start(
        pay_settings(sqlite_url, fake_order.address, notify_interval_seconds=30),
        clock=clock,
        background=False,
    )
    domain = running.runtime.domain
    try:
        created = await running.create()
        fake_order.down = True
        await running.stub.SimulateGatewayPay(
            pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id)
        )
        fake_order.down = False

        assert await domain.notify_due() == 0  # not due before the interval passed
        clock.advance(29)
        assert await domain.notify_due() == 0
        clock.advance(1)
        assert await domain.notify_due() == 1

        assert (await running.stored(created.payment_id)).order_notified
        assert await domain.notify_due() == 0
        assert [c.answered for c in fake_order.calls_for(created.order_id)] == ["unavailable", "accepted"]
    finally:
        await running.stop()


async def test_notifier_refunds_when_the_order_was_cancelled_meanwhile(
    sqlite_url: str, fake_order: FakeOrder
) -> None:
    clock = ManualClock()
    running = await RunningPay.start(
        pay_settings(sqlite_url, fake_order.address, notify_interval_seconds=5), clock=clock, background=False
    )
    try:
        created = await running.create(amount_cents=650)
        fake_order.down = True
        await running.stub.SimulateGatewayPay(
            pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id)
        )
        fake_order.down = False
        fake_order.cancel(created.order_id)

        clock.advance(5)
        assert await running.runtime.domain.notify_due() == 1

        row = await running.audit_of(created.payment_id)
        assert (row.status, row.refund_count, row.refunded_cents) == (pay_pb2.PAYMENT_STATUS_REFUNDED, 1, 650)
        assert await running.runtime.domain.notify_due() == 0
    finally:
        await running.stop()


async def test_restart_after_success_before_order_was_told_loses_nothing(
    db_url: str, fake_order: FakeOrder
) -> None:
    settings = pay_settings(db_url, fake_order.address, notify_interval_seconds=0.2)
    first = await RunningPay.start(settings, background=False)
    try:
        created = await first.create()
        fake_order.down = True
        await first.stub.SimulateGatewayPay(pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id))
    finally:
        await first.stop()  # "crash": SUCCEEDED is stored, order_svc never heard of it
    fake_order.down = False

    second = await RunningPay.start(settings)
    try:

        async def told() -> bool:
            return (await second.stored(created.payment_id)).order_notified

        await wait_for(told, within=10, what="the restarted notifier")
        assert len(fake_order.calls_for(created.order_id, "accepted")) == 1
    finally:
        await second.stop()


async def test_used_nonces_expire_and_stay_refused_as_stale(sqlite_url: str, fake_order: FakeOrder) -> None:
    clock = ManualClock()
    running = await RunningPay.start(
        pay_settings(sqlite_url, fake_order.address, callback_window_seconds=60),
        clock=clock,
        background=False,
    )
    domain = running.runtime.domain
    try:
        created = await running.create()
        callback = signed_callback(created, clock=clock)
        assert (await running.stub.Callback(callback)).accepted

        clock.advance(119)
        assert await domain.clean_nonces() == 0  # kept while a replay could still be in the window
        clock.advance(2)
        assert await domain.clean_nonces() == 1

        replay = await rpc_error(running.stub.Callback(callback))
        assert replay.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "timestamp_ms" in (replay.details() or "")
    finally:
        await running.stop()
