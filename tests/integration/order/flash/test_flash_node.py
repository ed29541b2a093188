"""The flash sale on real in-process services: coordinator, stock_svc and order_svc nodes, with the
session's real Redis and NATS JetStream, SQLite and (where the store matters) MariaDB."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import redis.asyncio as aioredis

from meshctl.stack.embedded import NatsServer, free_port
from meshpb.order.v1 import order_pb2 as pb
from meshpb.stock.v1 import stock_pb2
from order_svc.flash.hot import BuyKind
from order_svc.flash.rules import BuyRequest, TicketEntry, new_ticket, ticket_of
from tests.integration.asserts import eventually
from tests.integration.order.flash.harness import (
    JobQueue,
    buy,
    buy_request,
    expect,
    final_result,
    get_sale,
    now_ms,
    sale_request,
    ticket_row,
)
from tests.integration.order.harness import RunningOrder
from tests.integration.stock.harness import RunningStock

SC = grpc.StatusCode
Start = Callable[..., Awaitable[RunningOrder]]


def merchant() -> str:
    return f"m-{uuid.uuid4().hex[:8]}"


async def new_sku(stock: RunningStock, quantity: int, price: int = 900) -> tuple[str, str]:
    sku, owner = f"sku-{uuid.uuid4().hex[:8]}", merchant()
    await stock.put(sku, quantity, merchant=owner, price=price)
    return sku, owner


async def new_sale(
    node: RunningOrder, stock: RunningStock, quantity: int, *, units: int = 100, **kwargs: Any
) -> pb.FlashSale:
    """A sale of ``quantity`` of a fresh SKU that stock_svc holds ``units`` of."""
    sku, owner = await new_sku(stock, units)
    sale: pb.FlashSale = await node.stub.PutFlashSale(sale_request(sku, owner, quantity=quantity, **kwargs))
    return sale


async def hot_state(node: RunningOrder, sale_id: str, user_id: str) -> tuple[int | None, int]:
    """(units left, units the user holds) in the sale's Redis copy."""
    hot = node.runtime.flash.hot
    return await hot.remaining(sale_id), await hot.user_units(sale_id, user_id)


async def user_order_count(node: RunningOrder, user_id: str) -> int:
    page = await node.stub.ListOrders(pb.ListOrdersRequest(user_id=user_id))
    return len(page.orders)


# ---------------------------------------------------------------- sales


async def test_put_sale_is_stored_loaded_into_redis_and_idempotent(
    node: RunningOrder, stock: RunningStock, redis_client: aioredis.Redis
) -> None:
    sku, owner = await new_sku(stock, 20, price=900)
    request = sale_request(sku, owner, price=100, quantity=5, per_user_limit=0)

    sale = await node.stub.PutFlashSale(request)

    assert (sale.sale_id, sale.sku, sale.merchant_id, sale.price_cents) == (request.sale_id, sku, owner, 100)
    assert (sale.quantity, sale.per_user_limit, sale.remaining) == (5, 1, 5)
    assert (sale.tickets_pending, sale.tickets_succeeded, sale.tickets_failed) == (0, 0, 0)
    assert sale.starts_at == request.starts_at and sale.ends_at == request.ends_at
    sale_key, _, _ = node.runtime.flash.hot.keys(sale.sale_id)
    assert await redis_client.hget(sale_key, "quota") == b"5"
    assert await redis_client.pttl(sale_key) > 0
    assert await node.stub.PutFlashSale(request) == sale  # same terms: the same answer
    assert await get_sale(node.stub, sale.sale_id) == sale
    other = pb.PutFlashSaleRequest()
    other.CopyFrom(request)
    other.price_cents = 99
    details = await expect(node.stub.PutFlashSale(other), SC.ALREADY_EXISTS)
    assert "price_cents" in details
    await expect(get_sale(node.stub, "no-such-sale"), SC.NOT_FOUND)


async def test_put_sale_checks_the_catalogue_and_stores_nothing_on_bad_input(
    node: RunningOrder, stock: RunningStock
) -> None:
    sku, owner = await new_sku(stock, 5)
    unknown = sale_request("no-such-sku", owner)
    await expect(node.stub.PutFlashSale(unknown), SC.INVALID_ARGUMENT, "sku:")
    wrong = sale_request(sku, "someone-else")
    await expect(node.stub.PutFlashSale(wrong), SC.INVALID_ARGUMENT, "merchant_id:")
    for field, request in [
        ("sale_id", sale_request(sku, owner, sale_id="bad id")),
        ("quantity", sale_request(sku, owner, quantity=0)),
        ("price_cents", sale_request(sku, owner, price=-1)),
        ("ends_at", sale_request(sku, owner, starts_at_ms=now_ms(), ends_at_ms=now_ms() - 1)),
        ("per_user_limit", sale_request(sku, owner, per_user_limit=-2)),
    ]:
        await expect(node.stub.PutFlashSale(request), SC.INVALID_ARGUMENT, f"{field}:")
    missing = sale_request(sku, owner)
    missing.ClearField("starts_at")
    await expect(node.stub.PutFlashSale(missing), SC.INVALID_ARGUMENT, "starts_at:")
    for request in (unknown, wrong, missing):
        await expect(get_sale(node.stub, request.sale_id), SC.NOT_FOUND)


async def test_redis_copy_is_reloaded_from_the_db_when_missing(
    node: RunningOrder, stock: RunningStock, redis_client: aioredis.Redis
) -> None:
    sale = await new_sale(node, stock, 3)
    first = await buy(node.stub, "u-1", sale, request_id="req-u1")
    await redis_client.delete(*node.runtime.flash.hot.keys(sale.sale_id))  # Redis lost the sale

    assert (await get_sale(node.stub, sale.sale_id)).remaining == 2  # reloaded: u-1's ticket holds one
    assert await hot_state(node, sale.sale_id, "u-1") == (2, 1)
    await expect(buy(node.stub, "u-1", sale), SC.FAILED_PRECONDITION, "user u-1 already holds 1")
    assert (await buy(node.stub, "u-1", sale, request_id="req-u1")).ticket == first.ticket
    await redis_client.delete(*node.runtime.flash.hot.keys(sale.sale_id))
    second = await buy(node.stub, "u-2", sale)  # the buy script itself reloads the missing copy
    assert second.state == pb.FLASH_STATE_PENDING
    assert await hot_state(node, sale.sale_id, "u-2") == (1, 1)
    for ticket in (first.ticket, second.ticket):
        assert (await final_result(node.stub, ticket)).state == pb.FLASH_STATE_SUCCEEDED


# ---------------------------------------------------------------- buying


async def test_window_closed_is_refused_naming_the_window(
    start: Start, sqlite_url: str, stock: RunningStock, redis_client: aioredis.Redis, namespace: str
) -> None:
    node = await start(sqlite_url)
    past = await new_sale(node, stock, 5, starts_at_ms=now_ms() - 120_000, ends_at_ms=now_ms() - 60_000)
    future = await new_sale(node, stock, 5, starts_at_ms=now_ms() + 60_000)

    details = await expect(buy(node.stub, "u-1", past), SC.FAILED_PRECONDITION)
    assert f"flash sale {past.sale_id} has ended: window [" in details
    details = await expect(buy(node.stub, "u-1", future), SC.FAILED_PRECONDITION)
    assert f"flash sale {future.sale_id} has not started: window [" in details

    for sale in (past, future):
        assert (await get_sale(node.stub, sale.sale_id)).remaining == 5
        assert await node.runtime.flash.repo.sale_tickets(sale.sale_id) == []
    assert await redis_client.keys(f"{namespace}:rate:u-1:*") == []  # refused before the rate limit


async def test_user_buys_once_only_and_the_same_request_answers_the_same_ticket(
    node: RunningOrder, stock: RunningStock, jobs: JobQueue
) -> None:
    sale = await new_sale(node, stock, 10, price=123)

    first = await buy(node.stub, "u-1", sale, request_id="req-a")

    assert first.state == pb.FLASH_STATE_PENDING
    assert first.ticket.startswith("flash-")
    details = await expect(buy(node.stub, "u-1", sale, request_id="req-b"), SC.FAILED_PRECONDITION)
    assert "already holds 1 of the 1 unit(s) allowed per user" in details
    await expect(buy(node.stub, "u-2", sale, request_id="req-a"), SC.INVALID_ARGUMENT, "request_id:")
    result = await final_result(node.stub, first.ticket)
    assert result.state == pb.FLASH_STATE_SUCCEEDED
    again = await buy(node.stub, "u-1", sale, request_id="req-a")
    assert (again.ticket, again.state) == (first.ticket, pb.FLASH_STATE_SUCCEEDED)
    order = await node.stub.GetOrder(pb.GetOrderRequest(order_id=result.order_id))
    assert (order.user_id, order.status, order.total_cents, order.points_used) == (
        "u-1",
        pb.ORDER_STATUS_CREATED,
        123,
        0,
    )
    assert [(i.sku, i.quantity, i.unit_price_cents) for i in order.items] == [(sale.sku, 1, 123)]
    assert await hot_state(node, sale.sale_id, "u-1") == (9, 1)
    view = await get_sale(node.stub, sale.sale_id)
    assert (view.remaining, view.tickets_pending, view.tickets_succeeded) == (9, 0, 1)

    # A job for a ticket that is already final is acked and ignored.
    row = await ticket_row(node, first.ticket)
    await jobs.publish(first.ticket)
    await jobs.drained()
    assert await ticket_row(node, first.ticket) == row
    assert await user_order_count(node, "u-1") == 1


async def test_rate_limit_answers_resource_exhausted(
    start: Start, sqlite_url: str, stock: RunningStock
) -> None:
    node = await start(sqlite_url, flash_rate_limit_per_second=3)
    sale = await new_sale(node, stock, 100)

    calls = [node.stub.FlashBuy(buy_request("u-fast", sale)) for _ in range(12)]
    answers = await asyncio.gather(*calls, return_exceptions=True)

    codes = [a.code() if isinstance(a, grpc.aio.AioRpcError) else SC.OK for a in answers]
    assert codes.count(SC.OK) == 1, codes
    assert codes.count(SC.RESOURCE_EXHAUSTED) >= 12 - 2 * 3, codes  # the calls may span two seconds
    assert set(codes) <= {SC.OK, SC.FAILED_PRECONDITION, SC.RESOURCE_EXHAUSTED}
    exhausted = next(
        a for a in answers if isinstance(a, grpc.aio.AioRpcError) and a.code() is SC.RESOURCE_EXHAUSTED
    )
    assert "u-fast" in (exhausted.details() or "")
    assert (await buy(node.stub, "u-calm", sale)).state == pb.FLASH_STATE_PENDING  # others are not limited


async def test_bad_input_answers_invalid_argument_naming_the_field_without_side_effects(
    start: Start, sqlite_url: str, stock: RunningStock, redis_client: aioredis.Redis, namespace: str
) -> None:
    node = await start(sqlite_url)
    sale = await new_sale(node, stock, 5, per_user_limit=2)

    def request(**changes: object) -> pb.FlashBuyRequest:
        message = buy_request("u-bad", sale)
        for key, value in changes.items():
            setattr(message, key, value)
        return message

    for field, bad in [
        ("request_id", request(request_id="")),
        ("request_id", request(request_id="r" * 129)),
        ("user_id", request(user_id="")),
        ("user_id", request(user_id="has space")),
        ("sale_id", request(sale_id="")),
        ("sale_id", request(sale_id="no/such")),
        ("sku", request(sku="")),
        ("sku", request(sku="another-sku")),
        ("quantity", request(quantity=-1)),
        ("quantity", request(quantity=3)),
    ]:
        await expect(node.stub.FlashBuy(bad), SC.INVALID_ARGUMENT, f"{field}:")
    await expect(node.stub.FlashBuy(request(sale_id="no-such-sale")), SC.NOT_FOUND)
    await expect(
        node.stub.GetFlashResult(pb.GetFlashResultRequest(ticket="")), SC.INVALID_ARGUMENT, "ticket:"
    )
    missing = pb.GetFlashResultRequest(ticket="flash-unknown")
    await expect(node.stub.GetFlashResult(missing), SC.NOT_FOUND)
    await expect(node.stub.GetFlashSale(pb.GetFlashSaleRequest(sale_id="")), SC.INVALID_ARGUMENT, "sale_id:")

    assert await hot_state(node, sale.sale_id, "u-bad") == (5, 0)
    assert await node.runtime.flash.repo.sale_tickets(sale.sale_id) == []
    assert await redis_client.keys(f"{namespace}:rate:*") == []
    assert (await buy(node.stub, "u-bad", sale, quantity=2)).state == pb.FLASH_STATE_PENDING  # still allowed


async def test_flash_buy_answers_unavailable_until_the_work_queue_is_reachable(
    start: Start, sqlite_url: str, stock: RunningStock, tmp_path: Path
) -> None:
    nats_port = free_port()
    node = await start(sqlite_url, wait_queue=False, nats_url=f"nats://127.0.0.1:{nats_port}")
    sale = await new_sale(node, stock, 5)  # sales need no NATS

    details = await expect(buy(node.stub, "u-1", sale, request_id="req-1"), SC.UNAVAILABLE)

    assert "work queue unreachable" in details
    assert await hot_state(node, sale.sale_id, "u-1") == (5, 0)  # nothing taken
    assert await node.runtime.flash.repo.sale_tickets(sale.sale_id) == []
    with NatsServer(tmp_path / "late-nats", port=nats_port):  # NATS comes up: the node connects by itself
        await eventually(
            lambda: asyncio.sleep(0, node.runtime.flash_queue.available), bool, 20, "work queue connected"
        )
        answer = await buy(node.stub, "u-1", sale, request_id="req-1")
        assert answer.state == pb.FLASH_STATE_PENDING
        assert (await final_result(node.stub, answer.ticket)).state == pb.FLASH_STATE_SUCCEEDED


async def test_what_a_crashed_flash_buy_left_behind_is_stored_queued_and_placed(
    node: RunningOrder, stock: RunningStock
) -> None:
    sale = await new_sale(node, stock, 5)
    flash = node.runtime.flash
    domain_sale = await flash.sales.get(sale.sale_id)
    unqueued = BuyRequest("req-unqueued", "u-1", sale.sale_id, sale.sku, 1)
    rowless = BuyRequest("req-rowless", "u-2", sale.sale_id, sale.sku, 1)
    for request in (unqueued, rowless):  # the units are taken: the script ran, then the process died
        ticket = ticket_of(sale.sale_id, request.request_id)
        taken = await flash.hot.buy(sale.sale_id, ticket, TicketEntry(True, 1, request.user_id))
        assert taken.kind is BuyKind.TAKEN
    # one died after storing its ticket (its job never queued), the other before
    stored = new_ticket(domain_sale, unqueued, ticket_of(sale.sale_id, unqueued.request_id), now_ms())
    assert await flash.repo.insert_ticket(stored)

    # The sweeper queues the stored ticket's job; a retry of the other request stores and queues it.
    assert (await final_result(node.stub, stored.ticket)).state == pb.FLASH_STATE_SUCCEEDED
    retry = await buy(node.stub, "u-2", sale, request_id=rowless.request_id)
    assert retry.ticket == ticket_of(sale.sale_id, rowless.request_id)
    assert (await final_result(node.stub, retry.ticket)).state == pb.FLASH_STATE_SUCCEEDED
    view = await get_sale(node.stub, sale.sale_id)
    assert (view.remaining, view.tickets_succeeded, view.tickets_pending) == (3, 2, 0)
    level = await stock.stub.GetStock(stock_pb2.GetStockRequest(sku=sale.sku))
    assert (level.available, level.reserved, level.sold) == (98, 0, 2)


async def test_local_sold_out_flag_answers_without_redis_and_a_give_back_broadcast_clears_it(
    start: Start,
    sqlite_url: str,
    stock: RunningStock,
    redis_client: aioredis.Redis,
    jobs: JobQueue,
) -> None:
    node_a = await start(sqlite_url, worker_id=1, request_timeout_seconds=1.0)
    node_b = await start(sqlite_url, worker_id=2, request_timeout_seconds=1.0, flash_sold_out_ttl_seconds=600)
    sale = await new_sale(node_a, stock, 2, units=1)  # stock_svc has fewer units than the sale
    await stock.stop()  # jobs wait (their catalogue calls fail and are redelivered) until it is back

    tickets = [
        (await buy(node_a.stub, user, sale, request_id=f"req-{user}")).ticket for user in ("u-1", "u-2")
    ]
    await expect(
        buy(node_b.stub, "u-3", sale), SC.FAILED_PRECONDITION, f"flash sale {sale.sale_id} is sold out"
    )
    assert node_b.runtime.flash.flags.is_set(sale.sale_id)
    assert not node_a.runtime.flash.flags.is_set(sale.sale_id)

    sale_key = node_a.runtime.flash.hot.keys(sale.sale_id)[0]
    await redis_client.hincrby(sale_key, "quota", 1)  # a unit appears behind the flag's back
    await expect(buy(node_b.stub, "u-4", sale), SC.FAILED_PRECONDITION, "flash sale")  # the flag answered
    assert await redis_client.hincrby(sale_key, "quota", -1) == 0  # Redis was not touched by that call
    retry = await buy(node_b.stub, "u-1", sale, request_id="req-u-1")  # a retry still finds its ticket
    assert retry.ticket == tickets[0]

    stock_again = await RunningStock.start(stock.runtime.settings)
    try:
        results = [await final_result(node_a.stub, t) for t in tickets]
        states = sorted(r.state for r in results)
        assert states == [pb.FLASH_STATE_SUCCEEDED, pb.FLASH_STATE_FAILED]
        failed_ticket = tickets[[r.state for r in results].index(pb.FLASH_STATE_FAILED)]
        # The ticket turns FAILED first; the give-back is its next step (exactly once, flagged `returned`).
        failed = await eventually(
            lambda: ticket_row(node_a, failed_ticket), lambda row: row.returned, 10, "the units given back"
        )
        assert "insufficient stock" in failed.reason
        assert failed.returned
        await eventually(
            lambda: asyncio.sleep(0, node_b.runtime.flash.flags.is_set(sale.sale_id)),
            lambda flagged: not flagged,
            10,
            "node B's sold-out flag cleared by the broadcast",
        )
        assert await hot_state(node_a, sale.sale_id, failed.user_id) == (1, 0)
        await jobs.publish(failed_ticket)  # the failed ticket's job once more: nothing is given back twice
        await jobs.drained()
        assert await hot_state(node_a, sale.sale_id, failed.user_id) == (1, 0)
    finally:
        await stock_again.stop()
