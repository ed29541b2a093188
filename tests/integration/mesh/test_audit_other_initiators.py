"""``meshctl audit`` on a mesh whose stock_svc also serves another initiator (its own stack: the last
test leaves a real discrepancy behind on purpose)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest

from meshctl.audit.checks import check_stock_sold_matches_orders
from meshctl.audit.gather import audit_until_settled, gather_report
from meshctl.audit.model import MeshReport, Verdict
from meshctl.exitcodes import ExitCode
from meshkit.runtime.clock import SystemClock
from meshkit.sdk import CoordinatorClient, saga, tcc
from meshkit.tx.target import Target
from meshpb.coordinator.v1 import coordinator_pb2 as cpb
from meshpb.order.v1 import order_pb2 as opb
from meshpb.stock.v1 import stock_pb2 as spb
from tests.integration.creds import stack_auth
from tests.integration.mesh.conftest import Mesh
from tests.integration.mesh.ordering import audit_failures, passing_audit, put_sku

MERCHANT = "m-other-initiators"
PRICE = 300
STOCK = spb.DESCRIPTOR.services_by_name["Stock"].full_name


def _stock_target(mesh: Mesh, method: str) -> str:
    host, port = mesh.clients.addresses.stock.rsplit(":", 1)
    return str(Target(host, int(port), STOCK, method))


def _coordinator(mesh: Mesh) -> CoordinatorClient:
    return CoordinatorClient(mesh.clients.addresses.coordinator, auth=stack_auth(mesh.data_dir))


async def _place_order(mesh: Mesh, sku: str, quantity: int) -> str:
    item = opb.OrderItem(sku=sku, merchant_id=MERCHANT, quantity=quantity, unit_price_cents=PRICE)
    reply = await mesh.clients.order.PlaceOrder(
        opb.PlaceOrderRequest(request_id=uuid.uuid4().hex, user_id="u-audit", items=[item]), timeout=60
    )
    (order_id,) = reply.order_ids
    return order_id


async def _warehouse_sale(mesh: Mesh, sku: str, quantity: int) -> None:
    """Another initiator's TCC over stock_svc alone, naming an id order_svc never issued."""
    request = spb.ReserveRequest(
        items=[{"sku": sku, "quantity": quantity}], order_ids=[f"warehouse-{uuid.uuid4().hex[:8]}"]
    )
    client = _coordinator(mesh)
    try:
        async with tcc(client, gid=f"warehouse-{uuid.uuid4().hex}", wait_result=True) as t:
            await t.call_branch(
                _stock_target(mesh, "TryReserve"),
                _stock_target(mesh, "ConfirmReserve"),
                _stock_target(mesh, "CancelReserve"),
                request.SerializeToString(),
            )
        assert t.status == cpb.STATUS_SUCCEEDED
    finally:
        await client.close()


async def _report(mesh: Mesh) -> MeshReport:
    return await gather_report(mesh.clients, SystemClock())


@pytest.mark.timeout(240)
async def test_sales_of_another_initiator_are_not_a_false_fail(mesh: Mesh) -> None:
    sku = f"sku-oi-{uuid.uuid4().hex[:8]}"
    await put_sku(mesh.clients, sku, MERCHANT, PRICE, 10)
    await _place_order(mesh, sku, 1)
    await _warehouse_sale(mesh, sku, 2)

    audit = await passing_audit(mesh.clients)
    assert not audit_failures(audit), audit_failures(audit)
    result = next(r for r in audit.results if r.key == "stock.sold_matches_orders")
    assert result.verdict is Verdict.PASS
    assert result.numbers["sold_outside_orders"] >= 2
    sold = {s.sku: s.db_sold for s in audit.report.stock.skus}
    assert sold[sku] == 3
    # The same real reports judged the old way (every sale taken to be an order's) fail.
    old_way = await _report(mesh)
    old_way.stock.ClearField("sold_by_ref")
    assert old_way.coordinator.at_rest
    assert check_stock_sold_matches_orders(old_way).verdict is Verdict.FAIL


@pytest.mark.timeout(240)
async def test_stock_released_for_an_order_that_still_holds_it_fails(mesh: Mesh) -> None:
    sku = f"sku-oi-{uuid.uuid4().hex[:8]}"
    await put_sku(mesh.clients, sku, MERCHANT, PRICE, 10)
    order_id = await _place_order(mesh, sku, 2)
    await _warehouse_sale(mesh, sku, 1)
    # A release naming the order while it is still CREATED: stock_svc gives its units back, order_svc
    # still counts them as held - a real discrepancy the audit must keep catching.
    release = spb.ReleaseStockRequest(items=[{"sku": sku, "quantity": 2}], order_id=order_id)
    client = _coordinator(mesh)
    try:
        status = (
            await saga(client, gid=f"rogue-{uuid.uuid4().hex}")
            .add(_stock_target(mesh, "ReleaseStock"), payload=release.SerializeToString())
            .submit(wait=True)
        )
    finally:
        await client.close()
    assert status == cpb.STATUS_SUCCEEDED

    outcome = await audit_until_settled(mesh.clients, SystemClock(), wait_seconds=5)
    result = next(r for r in outcome.results if r.key == "stock.sold_matches_orders")
    assert result.verdict is Verdict.FAIL, result
    assert result.violations == (f"sku {sku}: stock_svc sold 0 to orders != live orders hold 2",)

    # The CLI: exit 1, and while it waits (stderr is not a terminal here) one progress line per attempt.
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "meshctl", "audit", "--data-dir", str(mesh.data_dir), "--wait", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == ExitCode.FAILED, done.stdout + done.stderr
    steps = [line for line in done.stderr.splitlines() if line.startswith("... ")]
    assert steps[0] == "... gathering every service's audit"
    assert steps[1].startswith("... audit attempt 1: 1 of ")
    assert "(stock.sold_matches_orders)" in steps[1]
    assert "FAIL" in done.stdout and sku in done.stdout
