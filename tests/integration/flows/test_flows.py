"""The business flows end to end on a REAL whole stack (coordinator + four services as processes).

One stack for the module; every test brings its own users, SKUs and request ids, and asserts the state
of every service it touched (stock, points, payments, the coordinator's view), not just the answers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from meshctl.audit.checks import all_ok
from meshctl.audit.gather import audit_until_settled
from meshctl.stack import stackfile
from meshkit.runtime.clock import SystemClock
from meshpb.common.v1 import common_pb2
from meshpb.coordinator.v1 import coordinator_pb2 as cpb
from meshpb.order.v1 import order_pb2 as opb
from meshpb.pay.v1 import pay_pb2 as paypb
from order_svc.placing.rules import place_gid
from tests.integration.asserts import eventually, rpc_error
from tests.integration.flows.stack import Stack, whole_stack

POINTS = opb.PAY_CHANNEL_POINTS
EXTERNAL = opb.PAY_CHANNEL_EXTERNAL
CREATED = opb.ORDER_STATUS_CREATED
PAID = opb.ORDER_STATUS_PAID
CANCELLED = opb.ORDER_STATUS_CANCELLED
REFUNDING = opb.ORDER_STATUS_REFUNDING
REFUNDED = opb.ORDER_STATUS_REFUNDED


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with whole_stack(tmp_path_factory.mktemp("flows")) as running:
        yield running


def merchant() -> str:
    return f"m-{uuid.uuid4().hex[:8]}"


async def test_multi_merchant_order_paid_with_points(stack: Stack) -> None:
    tea, books = merchant(), merchant()
    sencha = await stack.sku(tea, 1200, 10)
    oolong = await stack.sku(tea, 800, 10)
    novel = await stack.sku(books, 2500, 10)
    user = await stack.user(points=20_000)
    items = [(sencha, tea, 2, 1200), (novel, books, 1, 2500), (oolong, tea, 1, 800)]

    placed = await stack.place(user, items, points=490)

    assert len(placed.order_ids) == 2
    tea_order, book_order = [await stack.get_order(i) for i in placed.order_ids]
    assert (tea_order.merchant_id, tea_order.total_cents, tea_order.status) == (tea, 3200, CREATED)
    assert (book_order.merchant_id, book_order.total_cents, book_order.status) == (books, 2500, CREATED)
    # 490 points in proportion to 3200 : 2500 -> 275 + 214 = 489, the remainder 1 to the first order
    assert (tea_order.points_used, book_order.points_used) == (276, 214)
    assert {i.sku for i in tea_order.items} == {sencha, oolong}
    assert tea_order.gid == placed.gid == book_order.gid
    assert await stack.stock_of(sencha) == (8, 0, 2)
    assert await stack.stock_of(oolong) == (9, 0, 1)
    assert await stack.stock_of(novel) == (9, 0, 1)
    assert await stack.account(user) == (20_000 - 490, 0)
    tx = await stack.final_tx(placed.gid)
    assert tx.status == cpb.STATUS_SUCCEEDED
    assert tx.mode == cpb.MODE_TCC
    assert [b.branch_id for b in tx.branches] == ["stock", "points", "order"]

    for info in (tea_order, book_order):
        paid = await stack.pay_order(info.order_id, POINTS)
        assert paid.status == PAID
        assert paid.payment_id == f"points:{info.order_id}"
    due = (3200 - 276) + (2500 - 214)
    assert await stack.account(user) == (20_000 - 490 - due, 0)
    for order_id in placed.order_ids:
        got = await stack.get_order(order_id)
        assert got.status == PAID
        assert got.payment_id == f"points:{order_id}"
    # paying twice is refused, naming the state
    again = await rpc_error(stack.pay_order(tea_order.order_id, POINTS))
    assert again.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "PAID" in (again.details() or "")
    shipped = await stack.order.Ship(opb.OrderIdRequest(order_id=tea_order.order_id))
    assert shipped.status == opb.ORDER_STATUS_SHIPPED
    done = await stack.order.Complete(opb.OrderIdRequest(order_id=tea_order.order_id))
    assert done.status == opb.ORDER_STATUS_COMPLETED
    assert await stack.account(user) == (20_000 - 490 - due, 0)


async def test_external_gateway_pay(stack: Stack) -> None:
    shop = merchant()
    lamp = await stack.sku(shop, 4200, 5)
    user = await stack.user()
    placed = await stack.place(user, [(lamp, shop, 1, 4200)])
    order_id = placed.order_ids[0]

    started = await stack.pay_order(order_id, EXTERNAL)
    assert started.payment_id and started.token
    assert started.status == CREATED
    assert (await stack.get_order(order_id)).payment_id == started.payment_id
    payment = await stack.payment(started.payment_id)
    assert (payment.status, payment.amount_cents, payment.order_id) == (
        paypb.PAYMENT_STATUS_PENDING,
        4200,
        order_id,
    )
    # asking again answers the same payment
    assert (await stack.pay_order(order_id, EXTERNAL)).payment_id == started.payment_id

    await stack.pay.SimulateGatewayPay(paypb.SimulateGatewayPayRequest(payment_id=started.payment_id))

    info = await stack.order_status(order_id, PAID)
    assert info.payment_id == started.payment_id
    payment = await stack.payment(started.payment_id)
    assert payment.status == paypb.PAYMENT_STATUS_SUCCEEDED
    assert payment.trade_no
    assert await stack.stock_of(lamp) == (4, 0, 1)


@pytest.mark.parametrize("channel", [POINTS, EXTERNAL], ids=["points", "external"])
async def test_cancel_after_payment_refunds(stack: Stack, channel: int) -> None:
    shop = merchant()
    kettle = await stack.sku(shop, 3000, 4)
    user = await stack.user(points=6000)
    placed = await stack.place(user, [(kettle, shop, 2, 3000)], points=1000)
    order_id = placed.order_ids[0]
    paid = await stack.pay_order(order_id, channel)
    if channel == EXTERNAL:
        await stack.pay.SimulateGatewayPay(paypb.SimulateGatewayPayRequest(payment_id=paid.payment_id))
        await stack.order_status(order_id, PAID)
        assert await stack.account(user) == (5000, 0)  # the 1000 discount taken
    else:
        assert await stack.account(user) == (0, 0)  # 1000 discount + 5000 due
    assert await stack.stock_of(kettle) == (2, 0, 2)

    refunding = await stack.cancel(order_id, "returned")

    assert refunding.status in (REFUNDING, REFUNDED)  # the chain may finish before Cancel reads back
    await stack.order_status(order_id, REFUNDED)
    # everything came back: the discount, the payment, the stock
    await eventually(lambda: stack.account(user), lambda a: a == (6000, 0), 20, "points back")
    await eventually(lambda: stack.stock_of(kettle), lambda s: s == (4, 0, 0), 20, "stock back")
    if channel == EXTERNAL:
        payment = await eventually(
            lambda: stack.payment(paid.payment_id),
            lambda p: p.status == paypb.PAYMENT_STATUS_REFUNDED,
            20,
            "payment refunded",
        )
        assert payment.refund_id
    (cancel,) = await stack.transactions(f"cancel-{order_id}-")
    cancel = await stack.final_tx(cancel.gid)
    assert cancel.status == cpb.STATUS_SUCCEEDED
    assert {b.branch_id for b in cancel.branches} == {"stock", "points", "refund", "finish"}
    # a refunded order is final
    again = await rpc_error(stack.cancel(order_id))
    assert again.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "REFUNDED" in (again.details() or "")


async def test_stock_runs_out_rolls_back_the_whole_order(stack: Stack) -> None:
    tea, books = merchant(), merchant()
    plenty = await stack.sku(tea, 500, 5)
    scarce = await stack.sku(books, 900, 1)
    user = await stack.user(points=1000)
    request_id = f"req-{uuid.uuid4().hex}"
    items = [(plenty, tea, 2, 500), (scarce, books, 2, 900)]

    error = await rpc_error(stack.place(user, items, points=300, request_id=request_id))

    assert error.code() is grpc.StatusCode.ABORTED
    assert "stock" in (error.details() or "").lower()
    assert await stack.stock_of(plenty) == (5, 0, 0)
    assert await stack.stock_of(scarce) == (1, 0, 0)
    assert await stack.account(user) == (1000, 0)
    assert await stack.listed(user) == {}
    tx = await stack.final_tx(place_gid(request_id))
    assert tx.status == cpb.STATUS_FAILED
    # a retry answers the same failure and places nothing
    retry = await rpc_error(stack.place(user, items, points=300, request_id=request_id))
    assert retry.code() is grpc.StatusCode.ABORTED
    assert retry.details() == error.details()
    assert await stack.stock_of(plenty) == (5, 0, 0)
    assert await stack.listed(user) == {}


async def test_duplicate_place_order_retry_answers_the_same_ids(stack: Stack) -> None:
    shop, other = merchant(), merchant()
    mug = await stack.sku(shop, 700, 10)
    cap = await stack.sku(other, 300, 10)
    user = await stack.user(points=100)
    request_id = f"req-{uuid.uuid4().hex}"
    items = [(mug, shop, 1, 700), (cap, other, 1, 300)]

    first = await stack.place(user, items, points=100, request_id=request_id)
    retry = await stack.place(user, items, points=100, request_id=request_id)
    assert (list(retry.order_ids), retry.gid) == (list(first.order_ids), first.gid)

    # concurrent duplicates of a new request: the first wins, the others wait for its answer
    request_id2 = f"req-{uuid.uuid4().hex}"
    answers = await asyncio.gather(*(stack.place(user, items, request_id=request_id2) for _ in range(5)))
    assert len({tuple(a.order_ids) for a in answers}) == 1
    assert len({a.gid for a in answers}) == 1

    assert await stack.stock_of(mug) == (8, 0, 2)
    assert await stack.stock_of(cap) == (8, 0, 2)
    assert await stack.account(user) == (0, 0)
    assert set(await stack.listed(user)) == {*first.order_ids, *answers[0].order_ids}
    # the same request id for a different request is refused
    reused = await rpc_error(stack.place(user, [(mug, shop, 2, 700)], request_id=request_id))
    assert reused.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in (reused.details() or "")


RACE_ROUNDS = 50  # the issue: pay racing cancel on one order 50 times, never both


async def test_pay_racing_cancel_never_both(stack: Stack) -> None:
    shop = merchant()
    pen = await stack.sku(shop, 250, RACE_ROUNDS + 10)
    user = await stack.user(points=RACE_ROUNDS * 250)
    outcomes: dict[str, int] = {"paid": 0, "cancelled": 0, "refunded": 0}
    for _ in range(RACE_ROUNDS):
        placed = await stack.place(user, [(pen, shop, 1, 250)])
        order_id = placed.order_ids[0]
        results: list[Any] = list(
            await asyncio.gather(
                stack.pay_order(order_id, POINTS), stack.cancel(order_id, "race"), return_exceptions=True
            )
        )
        pay, cancel = results
        for result in results:
            if isinstance(result, BaseException):
                assert isinstance(result, grpc.aio.AioRpcError), result
                assert result.code() is grpc.StatusCode.FAILED_PRECONDITION, result.details()
        pay_won = isinstance(pay, opb.PayResponse)
        cancel_won = isinstance(cancel, opb.OrderInfo)
        assert pay_won or cancel_won
        if pay_won and cancel_won:
            # the cancel came after the payment: a refund, never "paid and cancelled"
            assert cancel.status in (REFUNDING, REFUNDED)
            await stack.order_status(order_id, REFUNDED)
            outcomes["refunded"] += 1
        elif pay_won:
            assert (await stack.get_order(order_id)).status == PAID
            assert "PAID" in (cancel.details() or "") or "payment" in (cancel.details() or "")
            outcomes["paid"] += 1
        else:
            assert cancel.status == CANCELLED
            assert (await stack.get_order(order_id)).status == CANCELLED
            outcomes["cancelled"] += 1
    print(f"pay racing cancel outcomes: {outcomes}")
    paid = outcomes["paid"]
    await eventually(
        lambda: stack.account(user),
        lambda a: a == (RACE_ROUNDS * 250 - paid * 250, 0),
        30,
        f"points after {outcomes}",
    )
    sold = paid
    await eventually(
        lambda: stack.stock_of(pen), lambda s: s == (RACE_ROUNDS + 10 - sold, 0, sold), 30, "stock settled"
    )


async def test_bad_input_on_every_public_rpc_is_invalid_argument(stack: Stack) -> None:
    shop = merchant()
    pin = await stack.sku(shop, 100, 3)
    user = await stack.user(points=50)
    good = opb.OrderItem(sku=pin, merchant_id=shop, quantity=1, unit_price_cents=100)

    def place(**changes: Any) -> opb.PlaceOrderRequest:
        fields: dict[str, Any] = {"request_id": f"req-{uuid.uuid4().hex}", "user_id": user, "items": [good]}
        fields.update(changes)
        return opb.PlaceOrderRequest(**fields)

    def item(**changes: Any) -> opb.OrderItem:
        fields: dict[str, Any] = {"sku": pin, "merchant_id": shop, "quantity": 1, "unit_price_cents": 100}
        fields.update(changes)
        return opb.OrderItem(**fields)

    o = stack.order
    cases: list[tuple[str, Any, str]] = [
        ("PlaceOrder", place(request_id=""), "request_id"),
        ("PlaceOrder", place(request_id="x" * 200), "request_id"),
        ("PlaceOrder", place(user_id=""), "user_id"),
        ("PlaceOrder", place(items=[]), "items"),
        ("PlaceOrder", place(items=[item(sku=f"s{i}") for i in range(101)]), "items"),
        ("PlaceOrder", place(items=[item(quantity=0)]), "items[0].quantity"),
        ("PlaceOrder", place(items=[item(quantity=10_001)]), "items[0].quantity"),
        ("PlaceOrder", place(items=[item(unit_price_cents=-1)]), "items[0].unit_price_cents"),
        ("PlaceOrder", place(items=[item(unit_price_cents=99)]), "items[0].unit_price_cents"),
        ("PlaceOrder", place(items=[item(merchant_id="someone-else")]), "items[0].merchant_id"),
        ("PlaceOrder", place(items=[good, item(sku="no-such-sku")]), "items[1].sku"),
        ("PlaceOrder", place(items=[good, good]), "items[1].sku"),
        ("PlaceOrder", place(points_to_use=-1), "points_to_use"),
        ("PlaceOrder", place(points_to_use=101), "points_to_use"),
        ("GetOrder", opb.GetOrderRequest(order_id=""), "order_id"),
        ("GetOrder", opb.GetOrderRequest(order_id="x" * 40), "order_id"),
        ("ListOrders", opb.ListOrdersRequest(user_id=""), "user_id"),
        (
            "ListOrders",
            opb.ListOrdersRequest(user_id=user, page=common_pb2.PageRequest(limit=501)),
            "page.limit",
        ),
        (
            "ListOrders",
            opb.ListOrdersRequest(user_id=user, page=common_pb2.PageRequest(cursor="%%%")),
            "page.cursor",
        ),
        ("Pay", opb.PayRequest(order_id="", channel=POINTS), "order_id"),
        ("Pay", opb.PayRequest(order_id="123", channel=opb.PAY_CHANNEL_UNSPECIFIED), "channel"),
        ("Cancel", opb.CancelRequest(order_id=""), "order_id"),
        ("Cancel", opb.CancelRequest(order_id="123", reason="r" * 300), "reason"),
        ("Ship", opb.OrderIdRequest(order_id=""), "order_id"),
        ("Complete", opb.OrderIdRequest(order_id="has space"), "order_id"),
        ("PaymentSucceeded", opb.PaymentSucceededRequest(order_id="", payment_id="p"), "order_id"),
        ("PaymentSucceeded", opb.PaymentSucceededRequest(order_id="1", payment_id=""), "payment_id"),
        (
            "PaymentSucceeded",
            opb.PaymentSucceededRequest(order_id="1", payment_id="p", amount_cents=-5),
            "amount_cents",
        ),
        ("TryCreate", opb.CreateOrdersBranch(), "x-mesh-gid"),
        ("ConfirmCreate", opb.CreateOrdersBranch(), "x-mesh-gid"),
        ("CancelCreate", opb.CreateOrdersBranch(), "x-mesh-gid"),
        ("TryMarkPaid", opb.MarkPaidBranch(), "x-mesh-gid"),
        ("ConfirmMarkPaid", opb.MarkPaidBranch(), "x-mesh-gid"),
        ("CancelMarkPaid", opb.MarkPaidBranch(), "x-mesh-gid"),
        ("QueryPrepared", opb.OrderIdRequest(), "x-mesh-gid"),
        ("FinishRefund", opb.OrderIdRequest(), "x-mesh-gid"),
    ]
    for method, request, field in cases:
        error = await rpc_error(getattr(o, method)(request, timeout=10))
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (method, field, error.details())
        assert (error.details() or "").startswith(field), (method, field, error.details())
    # nothing happened anywhere
    assert await stack.listed(user) == {}
    assert await stack.stock_of(pin) == (3, 0, 0)
    assert await stack.account(user) == (50, 0)
    for method, request, _ in cases:
        if method == "PlaceOrder" and request.request_id and len(request.request_id) <= 128:
            missing = await rpc_error(stack.tx(place_gid(request.request_id)))
            assert missing.code() is grpc.StatusCode.NOT_FOUND


async def test_audit_passes_after_the_flows(stack: Stack) -> None:
    outcome = await audit_until_settled(stack.clients, SystemClock(), wait_seconds=30)
    failing = [(r.key, r.violations) for r in outcome.results if not r.ok]
    assert all_ok(outcome.results), failing


async def test_place_order_whose_client_gave_up_still_completes(stack: Stack) -> None:
    shop = merchant()
    cup = await stack.sku(shop, 300, 5)
    user = await stack.user(points=1000)
    request = opb.PlaceOrderRequest(
        request_id=f"req-{uuid.uuid4().hex}",
        user_id=user,
        items=[opb.OrderItem(sku=cup, merchant_id=shop, quantity=1, unit_price_cents=300)],
        points_to_use=100,
    )
    state = stackfile.load(stack.launcher.data_dir)
    assert state is not None
    points_pid = next(p.pid for p in state.services() if p.name == "points_svc")
    os.kill(points_pid, signal.SIGSTOP)  # the placing TCC hangs at the points try
    try:
        with pytest.raises(grpc.aio.AioRpcError) as gave_up:
            await stack.order.PlaceOrder(request, timeout=1.0)
        assert gave_up.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        os.kill(points_pid, signal.SIGCONT)
    # The placement was not cut in half by the client leaving: it finished, and the retry says so.
    again = await stack.order.PlaceOrder(request, timeout=30)
    [order_id] = again.order_ids
    assert (await stack.get_order(order_id)).status == CREATED
    await eventually(lambda: stack.stock_of(cup), lambda s: s == (4, 0, 1), 10, "one unit sold")
    assert await stack.account(user) == (900, 0)
