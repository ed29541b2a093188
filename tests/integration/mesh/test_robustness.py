"""The whole mesh under contention and a crash: invariants hold, each order ends placed or rolled back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid

import grpc
import pytest

from meshctl.exitcodes import ExitCode
from meshpb.order.v1 import order_pb2 as opb
from tests.integration.mesh.conftest import Mesh
from tests.integration.mesh.ordering import (
    Outcome,
    audit_failures,
    passing_audit,
    place_once,
    put_sku,
    settle,
    stock_of,
    wait_until,
)

MERCHANT = "m-robust"
PRICE = 500


def _request(request_id: str, user: str, sku: str, quantity: int = 1) -> opb.PlaceOrderRequest:
    item = opb.OrderItem(sku=sku, merchant_id=MERCHANT, quantity=quantity, unit_price_cents=PRICE)
    return opb.PlaceOrderRequest(request_id=request_id, user_id=user, items=[item], points_to_use=0)


async def _settle_all(
    mesh: Mesh, requests: list[opb.PlaceOrderRequest], first: list[Outcome]
) -> list[Outcome]:
    settled = await asyncio.gather(
        *(
            settle(mesh.clients, r) if o.unknown else asyncio.sleep(0, o)
            for r, o in zip(requests, first, strict=True)
        )
    )
    return list(settled)


@pytest.mark.timeout(300)
async def test_100_concurrent_orders_for_the_last_10_units_exactly_10_win(mesh: Mesh) -> None:
    tag = uuid.uuid4().hex[:8]
    sku = f"last10-{tag}"
    await put_sku(mesh.clients, sku, MERCHANT, PRICE, 10)
    requests = [_request(f"last10-{tag}-{i}", f"buyer-{i}", sku) for i in range(100)]

    first = await asyncio.gather(*(place_once(mesh.clients, r) for r in requests))
    outcomes = await _settle_all(mesh, requests, list(first))

    unknown = [o for o in outcomes if o.unknown]
    assert not unknown, f"requests without a known outcome: {unknown[:3]}\n{mesh.logs()}"
    placed = [o for o in outcomes if o.placed]
    assert len(placed) == 10, f"{len(placed)} placed"
    assert all(o.refused for o in outcomes if not o.placed)
    level = await stock_of(mesh.clients, sku)
    assert (level.available, level.reserved, level.sold) == (0, 0, 10)
    for outcome in placed:
        (order_id,) = outcome.order_ids
        order = await mesh.clients.order.GetOrder(opb.GetOrderRequest(order_id=order_id), timeout=10)
        assert order.status == opb.ORDER_STATUS_CREATED
        assert [(i.sku, i.quantity) for i in order.items] == [(sku, 1)]
    audit = await passing_audit(mesh.clients)
    assert not audit_failures(audit), audit_failures(audit)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("victim", ["stock_svc", "coordinator", "order_svc"])
async def test_process_killed_while_placing_orders_every_order_ends_placed_or_rolled_back(
    mesh: Mesh, victim: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    sku = f"crash-{tag}"
    await put_sku(mesh.clients, sku, MERCHANT, PRICE, 1000)
    outcomes: list[Outcome] = []
    stop = asyncio.Event()

    async def customer(worker: int) -> None:
        """Place orders one after the other; an inconclusive answer is retried with the same request id."""
        n = 0
        while not stop.is_set():
            request = _request(f"crash-{tag}-{worker}-{n}", f"crash-user-{worker}", sku, quantity=2)
            n += 1
            outcomes.append(await settle(mesh.clients, request))

    def placed_count() -> int:
        return sum(1 for o in outcomes if o.placed)

    workers = [asyncio.create_task(customer(w)) for w in range(6)]
    try:
        assert await wait_until(lambda: placed_count() >= 10, 60), (
            f"orders are not being placed\n{mesh.logs()}"
        )
        os.kill(mesh.pid(victim), signal.SIGKILL)
        assert await wait_until(lambda: victim in mesh.launcher.exited(), 10)
        answered_at_kill = len(outcomes)
        await wait_until(lambda: len(outcomes) >= answered_at_kill + 6, 10)  # orders tried while it is down
        await mesh.launcher.restart(victim)
        placed_at_restart = placed_count()
        assert await wait_until(lambda: placed_count() >= placed_at_restart + 10, 90), (
            f"no orders placed after the restart\n{mesh.logs()}"
        )
    finally:
        stop.set()
        await asyncio.gather(*workers)

    unknown = [o for o in outcomes if o.unknown]
    assert not unknown, f"requests without a known outcome: {unknown[:3]}\n{mesh.logs()}"
    placed = [o for o in outcomes if o.placed]
    rolled_back = [o for o in outcomes if o.refused]
    assert len(placed) + len(rolled_back) == len(outcomes)
    # The kill hit orders in flight: they were rolled back (stock is plentiful, so nothing else refuses)
    # or their callers got inconclusive answers until a retry settled them (possibly placed).
    hit = [o for o in outcomes if o.refused or o.inconclusive]
    assert hit, f"no order was in flight while {victim} was down"
    assert placed, "no order was placed"
    for outcome in placed:
        (order_id,) = outcome.order_ids
        order = await _visible_order(mesh, order_id)
        assert order.status == opb.ORDER_STATUS_CREATED, outcome
    audit = await passing_audit(mesh.clients)
    assert not audit_failures(audit), f"{audit_failures(audit)}\n{mesh.logs()}"
    # A TCC whose initiator lost the coordinator mid-way may still hold a reservation: the coordinator
    # aborts it at its timeout (order.tx_timeout_seconds, 30 s) and the cancel gives the units back.
    expected = (0, 2 * len(placed), 1000 - 2 * len(placed))
    for _ in range(120):
        level = await stock_of(mesh.clients, sku)
        if (level.reserved, level.sold, level.available) == expected:
            break
        await asyncio.sleep(0.5)
    assert (level.reserved, level.sold, level.available) == expected, mesh.logs()


async def _visible_order(mesh: Mesh, order_id: str, within: float = 60.0) -> opb.OrderInfo:
    """The order once its confirm landed: a placing TCC committed just before the coordinator was killed
    is confirmed (made visible) by the restarted coordinator's retry, a moment after its caller heard
    "placed"."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            order: opb.OrderInfo = await mesh.clients.order.GetOrder(
                opb.GetOrderRequest(order_id=order_id), timeout=10
            )
            return order
        except grpc.aio.AioRpcError as error:
            if error.code() is not grpc.StatusCode.NOT_FOUND or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.2)


def _meshctl_audit(mesh: Mesh, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshctl", "audit", "--data-dir", str(mesh.data_dir), "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.timeout(240)
async def test_meshctl_audit_passes_on_the_stack_and_exits_3_when_a_service_is_down(mesh: Mesh) -> None:
    done = await asyncio.to_thread(_meshctl_audit, mesh, "--wait", "60")
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is True
    assert doc["coordinator"]["complete"] is True
    assert {c["result"] for c in doc["checks"]} == {"PASS"}

    points = next(p for p in mesh.launcher_state().services() if p.name == "points_svc")
    os.kill(points.pid, signal.SIGKILL)
    try:
        down = await asyncio.to_thread(_meshctl_audit, mesh, "--wait", "0")
        assert down.returncode == ExitCode.UNAVAILABLE, down.stdout + down.stderr
        assert f"points_svc at {points.address} cannot be audited: UNAVAILABLE" in down.stderr
        assert json.loads(down.stdout) == {
            "ok": False,
            "error": "unreachable",
            "problems": [line.removeprefix("error: ") for line in down.stderr.splitlines() if line],
        }
    finally:
        await wait_until(lambda: "points_svc" in mesh.launcher.exited(), 10)
        await mesh.launcher.restart("points_svc")
