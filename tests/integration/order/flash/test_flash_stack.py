"""The flash sale end to end on a REAL whole stack (coordinator + four services as processes, embedded
Redis and NATS; the flows' stack helper), plus, where a second replica is needed, an in-process order_svc
node sharing the stack's order database, Redis and NATS.

Faults are real: stock_svc is paused with SIGSTOP (its calls hang) and order_svc is killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from meshctl.audit.checks import all_ok
from meshctl.audit.gather import audit_until_settled
from meshctl.stack import layout, stackfile
from meshkit.infra.db import create_engine
from meshkit.runtime.clock import SystemClock
from meshkit.settings.config import DbSettings
from meshpb.order.v1 import order_pb2 as pb
from order_svc.flash.hot import FlashHot
from order_svc.flash.queries import FlashRepo
from tests.integration.asserts import eventually
from tests.integration.flows.stack import Stack, whole_stack
from tests.integration.order.flash.harness import (
    JobQueue,
    buy,
    expect,
    final_result,
    get_sale,
    node_settings,
    sale_request,
    start_node,
)

SC = grpc.StatusCode
NAMESPACE = "flash"  # the default: the stack runs with the default flash names
ORDER_ENV = {
    "MESH_ORDER__FLASH_ACK_WAIT_SECONDS": "2",
    "MESH_ORDER__FLASH_RETRY_SECONDS": "0.2",
    "MESH_ORDER__FLASH_MAX_RETRY_SECONDS": "1",
    "MESH_ORDER__FLASH_SWEEP_INTERVAL_SECONDS": "1",
    # Long enough that a call to a paused stock_svc waits for it instead of timing out.
    "MESH_ORDER__REQUEST_TIMEOUT_SECONDS": "10",
}


class FlashStack:
    """The stack plus what the flash tests read directly: its order DB, Redis and work queue."""

    def __init__(
        self, stack: Stack, redis: aioredis.Redis, hot: FlashHot, repo: FlashRepo, jobs: JobQueue
    ) -> None:
        self.stack = stack
        self.redis = redis
        self.hot = hot
        self.repo = repo
        self.jobs = jobs

    @property
    def data_dir(self) -> Path:
        return self.stack.launcher.data_dir

    @property
    def order_db_url(self) -> str:
        return f"sqlite+aiosqlite:///{(self.data_dir / 'order_svc').resolve()}.db"

    def url_of(self, infra: str) -> str:
        state = stackfile.load(self.data_dir)
        assert state is not None
        return next(p.address for p in state.infra() if p.name == infra)

    def pid(self, service: str) -> int:
        state = stackfile.load(self.data_dir)
        assert state is not None
        return next(p.pid for p in state.services() if p.name == service)

    def address(self, service: str) -> str:
        spec = next(s for s in layout.SERVICES if s.name == service)
        return layout.address(self.stack.launcher.base_port, spec)

    def logs(self) -> str:
        return "\n".join(f"--- {s.name}:\n{self.stack.log(s.name)[-3000:]}" for s in layout.SERVICES)


@pytest.fixture(scope="module")
async def flash(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FlashStack]:
    async with whole_stack(tmp_path_factory.mktemp("flash"), ORDER_ENV) as stack:
        probe = FlashStack(stack, None, None, None, None)  # type: ignore[arg-type]
        redis = aioredis.Redis.from_url(probe.url_of("redis"))
        engine = create_engine(DbSettings(url=probe.order_db_url))
        jobs = await JobQueue.connect(probe.url_of("nats"), NAMESPACE)
        try:
            yield FlashStack(stack, redis, FlashHot(redis, NAMESPACE), FlashRepo(engine), jobs)
        finally:
            await jobs.close()
            await engine.dispose()
            await redis.aclose()


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """SIGSTOP ``pid`` for the block (its peers' calls hang), SIGCONT afterwards whatever happens."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def new_sale(flash: FlashStack, *, units: int, quantity: int, price: int) -> pb.FlashSale:
    owner = f"m-{uuid.uuid4().hex[:8]}"
    sku = await flash.stack.sku(owner, 900, units)
    sale: pb.FlashSale = await flash.stack.order.PutFlashSale(
        sale_request(sku, owner, price=price, quantity=quantity), timeout=20
    )
    return sale


def users(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"fu-{tag}-{i}" for i in range(n)]


async def test_50_concurrent_buyers_for_10_units_get_exactly_10_tickets_that_all_become_orders(
    flash: FlashStack,
) -> None:
    stack = flash.stack
    sale = await new_sale(flash, units=15, quantity=10, price=500)

    answers = await asyncio.gather(*(buy(stack.order, u, sale) for u in users(50)), return_exceptions=True)

    tickets = [a.ticket for a in answers if isinstance(a, pb.FlashBuyResponse)]
    refusals = [a for a in answers if not isinstance(a, pb.FlashBuyResponse)]
    assert len(tickets) == len(set(tickets)) == 10, refusals[:3]
    for refusal in refusals:
        assert isinstance(refusal, grpc.aio.AioRpcError), refusal
        assert refusal.code() is SC.FAILED_PRECONDITION, refusal.details()
        assert "sold out" in (refusal.details() or "")
    results = await asyncio.gather(*(final_result(stack.order, t) for t in tickets))
    assert {r.state for r in results} == {pb.FLASH_STATE_SUCCEEDED}, flash.logs()
    order_ids = {r.order_id for r in results}
    assert len(order_ids) == 10
    for order_id in order_ids:
        order = await stack.get_order(order_id)
        assert (order.status, order.total_cents, order.points_used) == (pb.ORDER_STATUS_CREATED, 500, 0)
        assert [(i.sku, i.quantity, i.unit_price_cents) for i in order.items] == [(sale.sku, 1, 500)]
    assert await stack.stock_of(sale.sku) == (5, 0, 10)
    view = await get_sale(stack.order, sale.sale_id)
    assert (view.remaining, view.tickets_pending, view.tickets_succeeded, view.tickets_failed) == (
        0,
        0,
        10,
        0,
    )
    outcome = await audit_until_settled(stack.clients, SystemClock(), wait_seconds=30)
    assert all_ok(outcome.results), [(r.key, r.violations) for r in outcome.results if not r.ok]


async def test_failed_orders_give_back_quota_and_user_flag_once_and_clear_another_nodes_sold_out_flag(
    flash: FlashStack,
) -> None:
    stack = flash.stack
    sale = await new_sale(flash, units=1, quantity=3, price=300)  # stock_svc really has 1 unit
    node_b = await start_node(
        node_settings(
            flash.order_db_url,
            coordinator=flash.address("coordinator"),
            stock=flash.address("stock_svc"),
            redis_url=flash.url_of("redis"),
            nats_url=flash.url_of("nats"),
            namespace=NAMESPACE,
            worker_id=900,
            request_timeout_seconds=10.0,
            flash_sold_out_ttl_seconds=600.0,  # only the broadcast can clear it within the test
        )
    )
    buyers = users(4)
    try:
        with paused(flash.pid("stock_svc")):  # the jobs wait for stock_svc, the units stay taken
            tickets = {u: (await buy(stack.order, u, sale)).ticket for u in buyers[:3]}
            await expect(buy(node_b.stub, buyers[3], sale), SC.FAILED_PRECONDITION, "flash sale")
            assert node_b.runtime.flash.flags.is_set(sale.sale_id)

        results = {u: await final_result(stack.order, t) for u, t in tickets.items()}
        won = [u for u, r in results.items() if r.state == pb.FLASH_STATE_SUCCEEDED]
        lost = [u for u, r in results.items() if r.state == pb.FLASH_STATE_FAILED]
        assert len(won) == 1 and len(lost) == 2, results
        for user in lost:
            assert "insufficient stock" in results[user].reason
            assert not results[user].order_id
        await eventually(
            lambda: asyncio.sleep(0, node_b.runtime.flash.flags.is_set(sale.sale_id)),
            lambda flagged: not flagged,
            15,
            "node B's sold-out flag cleared by the restock broadcast",
        )
        assert await flash.hot.remaining(sale.sale_id) == 2
        assert [await flash.hot.user_units(sale.sale_id, u) for u in (*won, *lost)] == [1, 0, 0]
        for user in lost:
            row = await flash.repo.get_ticket(tickets[user])
            assert row is not None and row.returned

        for user in lost:  # the failed tickets' jobs again: acked and ignored, nothing given back twice
            await flash.jobs.publish(tickets[user])
        await flash.jobs.drained()
        assert await flash.hot.remaining(sale.sale_id) == 2
        assert await stack.stock_of(sale.sku) == (0, 0, 1)

        # The user flag came back: a failed buyer may buy again (on node B, whose flag is gone).
        again = await buy(node_b.stub, lost[0], sale)
        assert again.state == pb.FLASH_STATE_PENDING
        assert (
            await final_result(node_b.stub, again.ticket)
        ).state == pb.FLASH_STATE_FAILED  # still no stock
        await eventually(lambda: flash.hot.remaining(sale.sale_id), lambda left: left == 2, 10, "quota back")
        view = await get_sale(stack.order, sale.sale_id)
        assert (view.remaining, view.tickets_succeeded, view.tickets_failed, view.tickets_pending) == (
            2,
            1,
            3,
            0,
        )
    finally:
        await node_b.stop()


async def test_worker_killed_mid_job_the_job_is_redelivered_and_the_ticket_ends_final_once(
    flash: FlashStack,
) -> None:
    stack = flash.stack
    sale = await new_sale(flash, units=5, quantity=5, price=250)
    (buyer,) = users(1)

    with paused(flash.pid("stock_svc")):
        ticket = (await buy(stack.order, buyer, sale)).ticket

        async def attempts() -> int:
            row = await flash.repo.get_ticket(ticket)
            return 0 if row is None else row.attempts

        await eventually(attempts, lambda n: n >= 1, 15, "a worker on the job")  # now waiting for stock_svc
        os.kill(flash.pid("order_svc"), signal.SIGKILL)  # the worker dies before it can ack
        await eventually(
            lambda: asyncio.sleep(0, stack.launcher.exited()),
            lambda dead: "order_svc" in dead,
            10,
            "order_svc dead",
        )
    await stack.launcher.restart("order_svc")

    result = await final_result(stack.order, ticket, within=40)

    assert result.state == pb.FLASH_STATE_SUCCEEDED, flash.logs()
    row = await flash.repo.get_ticket(ticket)
    assert row is not None
    assert row.attempts == 2  # the killed delivery and the redelivery
    assert list(await stack.listed(buyer)) == [result.order_id]
    assert await stack.stock_of(sale.sku) == (4, 0, 1)
    view = await get_sale(stack.order, sale.sale_id)
    assert (view.remaining, view.tickets_succeeded, view.tickets_pending) == (4, 1, 0)
