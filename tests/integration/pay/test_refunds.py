"""Refund and RefundBranch: idempotent per out_refund_no, at most one refund per payment, barrier-guarded."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from sqlalchemy import select

from meshkit.tx.context import Op, TxContext, TxMode
from meshkit.tx.initiator import CoordinatorClient, msg
from meshpb.coordinator.v1 import coordinator_pb2 as cpb
from meshpb.order.v1 import order_pb2
from meshpb.pay.v1 import pay_pb2
from pay_svc.payments.tables import refunds
from tests.integration.coordinator.harness import RunningCoordinator, coordinator_settings, wait_final
from tests.integration.creds import AUTH
from tests.integration.pay.harness import FakeOrder, RunningPay, rpc_error

REFUNDED = pay_pb2.PAYMENT_STATUS_REFUNDED


async def paid_payment(pay: RunningPay, amount_cents: int = 900) -> pay_pb2.Payment:
    created = await pay.create(amount_cents=amount_cents)
    return await pay.stub.SimulateGatewayPay(pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id))


async def refundable_payment(pay: RunningPay, order: FakeOrder, amount_cents: int = 900) -> pay_pb2.Payment:
    """A paid payment whose order is being cancelled (REFUNDING): an operator's Refund may help it."""
    payment = await paid_payment(pay, amount_cents)
    order.refunding(payment.order_id)
    return payment


def refund_request(payment: pay_pb2.Payment, out_refund_no: str, **fields: object) -> pay_pb2.RefundRequest:
    values: dict[str, object] = {
        "payment_id": payment.payment_id,
        "amount_cents": payment.amount_cents,
        "reason": "customer asked",
        "out_refund_no": out_refund_no,
        **fields,
    }
    return pay_pb2.RefundRequest(**values)  # type: ignore[arg-type]


def branch_metadata(gid: str, branch: str = "03", op: str = "action") -> tuple[tuple[str, str], ...]:
    return tuple(TxContext(gid=gid, branch_id=branch, op=Op(op), mode=TxMode.MSG).to_metadata())


async def test_refund_is_idempotent_per_out_refund_no(pay: RunningPay, fake_order: FakeOrder) -> None:
    payment = await refundable_payment(pay, fake_order)

    first = await pay.stub.Refund(refund_request(payment, "r-1"))
    second = await pay.stub.Refund(refund_request(payment, "r-1"))

    assert first.refund_id and first == second
    assert first.amount_cents == payment.amount_cents
    after = await pay.stub.GetPayment(pay_pb2.GetPaymentRequest(order_id=payment.order_id))
    assert after.status == REFUNDED and after.refund_id == first.refund_id
    row = await pay.audit_of(payment.payment_id)
    assert (row.refund_count, row.refunded_cents) == (1, payment.amount_cents)


async def test_second_refund_with_other_key_answers_the_existing_one(
    pay: RunningPay, fake_order: FakeOrder
) -> None:
    payment = await refundable_payment(pay, fake_order)
    first = await pay.stub.Refund(refund_request(payment, "r-a"))

    other = await pay.stub.Refund(refund_request(payment, "r-b", payment_id="", order_id=payment.order_id))

    assert other == first
    assert (await pay.audit_of(payment.payment_id)).refund_count == 1


async def test_concurrent_duplicate_refunds_make_one(pay: RunningPay, fake_order: FakeOrder) -> None:
    payment = await refundable_payment(pay, fake_order)
    keys = [f"r-{i % 3}" for i in range(12)]

    answers = await asyncio.gather(*(pay.stub.Refund(refund_request(payment, key)) for key in keys))

    assert len({a.refund_id for a in answers}) == 1
    row = await pay.audit_of(payment.payment_id)
    assert (row.status, row.refund_count, row.refunded_cents) == (REFUNDED, 1, payment.amount_cents)


async def test_partial_refund_is_refused(pay: RunningPay, fake_order: FakeOrder) -> None:
    payment = await refundable_payment(pay, fake_order, amount_cents=1000)

    error = await rpc_error(pay.stub.Refund(refund_request(payment, "r-part", amount_cents=400)))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith("amount_cents:")
    row = await pay.audit_of(payment.payment_id)
    assert (row.status, row.refund_count) == (pay_pb2.PAYMENT_STATUS_SUCCEEDED, 0)


async def test_out_refund_no_of_another_payment_is_refused(pay: RunningPay, fake_order: FakeOrder) -> None:
    one, two = await refundable_payment(pay, fake_order), await refundable_payment(pay, fake_order)
    await pay.stub.Refund(refund_request(one, "r-shared"))

    error = await rpc_error(pay.stub.Refund(refund_request(two, "r-shared")))

    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert (await pay.audit_of(two.payment_id)).refund_count == 0


async def test_refund_of_pending_payment_closes_it_and_late_money_goes_back(
    pay: RunningPay, fake_order: FakeOrder
) -> None:
    created = await pay.create(amount_cents=250)
    fake_order.cancel(created.order_id)  # the order was cancelled while its payment was pending

    closed = await pay.stub.Refund(refund_request(created, "r-pending"))
    repeat = await pay.stub.Refund(refund_request(created, "r-pending"))

    assert closed == repeat
    assert (closed.refund_id, closed.amount_cents) == ("", 0)
    stored = await pay.stored(created.payment_id)
    assert (stored.status.value, stored.closed_by) == ("FAILED", "r-pending")

    late = await pay.stub.SimulateGatewayPay(pay_pb2.SimulateGatewayPayRequest(payment_id=created.payment_id))

    assert late.status == REFUNDED
    assert fake_order.calls == []
    row = await pay.audit_of(created.payment_id)
    assert (row.succeeded, row.refund_count, row.refunded_cents) == (True, 1, 250)
    after = await pay.stub.Refund(refund_request(created, "r-pending"))
    assert after.refund_id == late.refund_id


async def test_refund_branch_through_the_barrier_is_applied_once(pay: RunningPay, gid: str) -> None:
    payment = await paid_payment(pay)
    request = refund_request(payment, payment.order_id)

    first = await pay.stub.RefundBranch(request, metadata=branch_metadata(gid))
    concurrent = await asyncio.gather(
        *(pay.stub.RefundBranch(request, metadata=branch_metadata(gid)) for _ in range(5))
    )
    other_gid = await pay.stub.RefundBranch(request, metadata=branch_metadata(uuid.uuid4().hex))

    assert first.note == "refunded"
    assert {reply.note for reply in concurrent} == {"duplicate"}
    assert other_gid.note == "duplicate"  # same out_refund_no from another transaction: the same refund
    row = await pay.audit_of(payment.payment_id)
    assert (row.status, row.refund_count, row.refunded_cents) == (REFUNDED, 1, payment.amount_cents)


async def test_refund_branch_needs_an_action_context(pay: RunningPay, gid: str) -> None:
    payment = await paid_payment(pay)
    request = refund_request(payment, "r-ctx")

    missing = await rpc_error(pay.stub.RefundBranch(request))
    wrong_op = await rpc_error(pay.stub.RefundBranch(request, metadata=branch_metadata(gid, op="compensate")))

    assert missing.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (missing.details() or "").startswith("x-mesh-gid:")
    assert wrong_op.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (wrong_op.details() or "").startswith("x-mesh-op:")
    assert (await pay.audit_of(payment.payment_id)).refund_count == 0


async def test_refund_branch_refusal_is_a_business_failure(pay: RunningPay, gid: str) -> None:
    payment = await paid_payment(pay, amount_cents=800)

    error = await rpc_error(
        pay.stub.RefundBranch(refund_request(payment, "r-x", amount_cents=10), metadata=branch_metadata(gid))
    )

    assert error.code() == grpc.StatusCode.ABORTED
    assert "amount_cents" in (error.details() or "")
    # The refused branch left no barrier row: the right request for the same branch still applies.
    ok = await pay.stub.RefundBranch(refund_request(payment, "r-x"), metadata=branch_metadata(gid))
    assert ok.note == "refunded"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_refund_branch_driven_by_the_coordinator(pay: RunningPay, sqlite_url: str, gid: str) -> None:
    coordinator = await RunningCoordinator.start(coordinator_settings(sqlite_url))
    try:
        payment = await paid_payment(pay, amount_cents=1500)
        target = f"{pay.address}/meshpb.pay.v1.Pay/RefundBranch"
        async with CoordinatorClient(coordinator.address, auth=AUTH) as client:
            message = msg(
                client, gid=gid, query_prepared=f"{pay.address}/meshpb.order.v1.Order/QueryPrepared"
            )
            message.add(
                target, refund_request(payment, payment.order_id, reason="order cancelled"), branch_id="03"
            )
            await message.prepare()
            await message.submit(wait=True)
        tx = await wait_final(coordinator, gid)
    finally:
        await coordinator.stop()

    assert tx.status == cpb.STATUS_SUCCEEDED
    row = await pay.audit_of(payment.payment_id)
    assert (row.status, row.refund_count, row.refunded_cents) == (REFUNDED, 1, 1500)


@pytest.mark.parametrize("order_state", ["CREATED", "PAID", "SHIPPED", "COMPLETED"])
async def test_issue15_item1_refund_of_an_order_not_being_cancelled_is_refused(
    pay: RunningPay, fake_order: FakeOrder, order_state: str
) -> None:
    payment = await paid_payment(pay)
    fake_order.status[payment.order_id] = order_pb2.OrderStatus.Value(f"ORDER_STATUS_{order_state}")

    error = await rpc_error(pay.stub.Refund(refund_request(payment, f"r-{order_state}")))

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = error.details() or ""
    assert f"order {payment.order_id}" in details and order_state in details and "cancel the order" in details
    row = await pay.audit_of(payment.payment_id)
    assert (row.status, row.refund_count) == (pay_pb2.PAYMENT_STATUS_SUCCEEDED, 0)


async def test_issue15_item1_refund_rows_carry_the_order_id(pay: RunningPay, fake_order: FakeOrder) -> None:
    payment = await refundable_payment(pay, fake_order)

    await pay.stub.Refund(refund_request(payment, "r-order"))

    async with pay.runtime.db.connect() as conn:
        rows = (
            await conn.execute(
                select(refunds.c.order_id, refunds.c.payment_id).where(refunds.c.out_refund_no == "r-order")
            )
        ).all()
    assert [(r.order_id, str(r.payment_id)) for r in rows] == [(payment.order_id, payment.payment_id)]
