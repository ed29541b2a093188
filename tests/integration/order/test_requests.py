"""PlaceOrder requests whose initiator was lost: settled from the coordinator's view by a duplicate call or
the sweeper (real order_svc and coordinator; stock and points are not running here)."""

from __future__ import annotations

import uuid

import grpc

from meshpb.coordinator.v1 import coordinator_pb2 as cpb
from meshpb.order.v1 import order_pb2 as pb
from order_svc.api import conversions
from order_svc.orders.values import RequestRecord, RequestState
from order_svc.placing.rules import fingerprint, place_gid
from tests.integration.coordinator.harness import RunningCoordinator
from tests.integration.order.harness import RunningOrder, expect_code


def place_request(user: str = "u-lost") -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        request_id=f"req-{uuid.uuid4().hex}",
        user_id=user,
        items=[pb.OrderItem(sku="sku-1", merchant_id="m-1", quantity=1, unit_price_cents=100)],
    )


async def lost(order: RunningOrder, request: pb.PlaceOrderRequest) -> RequestRecord:
    """The record a crashed initiator leaves: pending, lease expired."""
    record = RequestRecord(
        request_id=request.request_id,
        user_id=request.user_id,
        fingerprint=fingerprint(conversions.place_request(request)),
        gid=place_gid(request.request_id),
        order_ids=("900000000000000001",),
        state=RequestState.PENDING,
        reason="",
        lease_until_ms=1,
        created_at_ms=1,
    )
    assert await order.runtime.service.repo.insert_request(record)
    return record


async def state_of(order: RunningOrder, request_id: str) -> RequestRecord:
    record = await order.runtime.service.repo.get_request(request_id)
    assert record is not None
    return record


async def prepare(coordinator: RunningCoordinator, gid: str) -> None:
    options = cpb.TxOptions(timeout_ms=60_000)
    await coordinator.stub.Prepare(cpb.PrepareRequest(gid=gid, mode=cpb.MODE_TCC, options=options))


async def test_sweeper_fences_a_request_lost_before_its_transaction(
    order: RunningOrder, coordinator: RunningCoordinator
) -> None:
    record = await lost(order, place_request())
    assert await order.runtime.service.sweep_once() >= 1
    settled = await state_of(order, record.request_id)
    assert settled.state is RequestState.FAILED
    # the gid is burnt: a late initiator can never commit it
    assert (await coordinator.query(record.gid)).status in (cpb.STATUS_ABORTING, cpb.STATUS_FAILED)


async def test_sweeper_aborts_a_request_left_prepared(
    order: RunningOrder, coordinator: RunningCoordinator
) -> None:
    record = await lost(order, place_request())
    await prepare(coordinator, record.gid)
    await order.runtime.service.sweep_once()
    assert (await state_of(order, record.request_id)).state is RequestState.FAILED
    assert (await coordinator.query(record.gid)).status in (cpb.STATUS_ABORTING, cpb.STATUS_FAILED)


async def test_retry_of_a_committed_lost_request_answers_its_ids(
    order: RunningOrder, coordinator: RunningCoordinator
) -> None:
    request = place_request()
    record = await lost(order, request)
    await prepare(coordinator, record.gid)
    await coordinator.stub.Submit(cpb.SubmitRequest(gid=record.gid, mode=cpb.MODE_TCC))
    answer = await order.stub.PlaceOrder(request)
    assert (list(answer.order_ids), answer.gid) == (list(record.order_ids), record.gid)
    assert (await state_of(order, record.request_id)).state is RequestState.PLACED


async def test_retry_takes_over_a_request_lost_before_its_transaction(
    order: RunningOrder, coordinator: RunningCoordinator
) -> None:
    request = place_request()
    record = await lost(order, request)
    # the duplicate runs the transaction itself (same gid); stock_svc is down here, so it rolls back
    details = await expect_code(order.stub.PlaceOrder(request), grpc.StatusCode.ABORTED)
    assert record.request_id in details
    assert (await state_of(order, record.request_id)).state is RequestState.FAILED
    tx = await coordinator.query(record.gid)
    assert [b.branch_id for b in tx.branches] == ["stock"]
    # and from now on the failure is the answer
    again = await expect_code(order.stub.PlaceOrder(request), grpc.StatusCode.ABORTED)
    assert again == details


async def test_reused_request_id_for_another_request_is_refused(order: RunningOrder) -> None:
    request = place_request()
    await lost(order, request)
    other = pb.PlaceOrderRequest()
    other.CopyFrom(request)
    other.user_id = "someone-else"
    details = await expect_code(order.stub.PlaceOrder(other), grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith("request_id")
