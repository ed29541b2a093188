"""Observability on a REAL whole stack: trace propagation into log lines, and the metrics endpoints.

order_svc continues a client's ``traceparent`` into the placing TCC: the tries it makes, the
coordinator's lines about the transaction and the participant's call log all carry the client's trace
id. Every process's ``/metrics`` has the process collectors, its client RPC and barrier counters.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.request
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from meshctl.stack import layout
from meshctl.stack.layout import SERVICES
from meshpb.order.v1 import order_pb2 as opb
from order_svc.placing.rules import place_gid
from tests.integration.asserts import eventually, rpc_error
from tests.integration.flows.stack import RPC_SECONDS, Stack, whole_stack


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with whole_stack(tmp_path_factory.mktemp("trace")) as running:
        yield running


def log_records(stack: Stack, process: str) -> list[dict[str, Any]]:
    """The JSON log records of ``process`` so far (non-JSON lines, e.g. a subprocess banner, skipped)."""
    records = []
    path = layout.log_path(stack.launcher.data_dir, process)
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def lines_of(stack: Stack, process: str, trace_id: str) -> list[dict[str, Any]]:
    """The records of ``process`` carrying ``trace_id``."""
    return [r for r in log_records(stack, process) if r.get("trace_id") == trace_id]


async def test_client_traceparent_reaches_the_participant_log_line(stack: Stack) -> None:
    merchant = f"m-{uuid.uuid4().hex[:8]}"
    scarce = await stack.sku(merchant, 900, 1)
    user = await stack.user()
    request_id = f"req-{uuid.uuid4().hex}"
    gid = place_gid(request_id)
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    request = opb.PlaceOrderRequest(
        request_id=request_id,
        user_id=user,
        items=[opb.OrderItem(sku=scarce, merchant_id=merchant, quantity=2, unit_price_cents=900)],
    )

    error = await rpc_error(
        stack.order.PlaceOrder(request, timeout=RPC_SECONDS, metadata=(("traceparent", traceparent),))
    )
    assert error.code() is grpc.StatusCode.ABORTED

    # The refused try's call line at stock_svc (INFO: not OK) names the transaction and the trace.
    async def stock_line() -> list[dict[str, Any]]:
        return [
            r for r in lines_of(stack, "stock_svc", trace_id) if r.get("method", "").endswith("/TryReserve")
        ]

    refused = await eventually(stock_line, bool, 20.0, "the refused try logged at stock_svc")
    assert refused[0]["gid"] == gid
    assert refused[0]["branch"] == "stock"
    assert refused[0]["op"] == "try"
    assert refused[0]["code"] == "ABORTED"

    # The coordinator's line about the transaction's end carries the gid and the same trace.
    async def coordinator_lines() -> list[dict[str, Any]]:
        return [r for r in lines_of(stack, "coordinator", trace_id) if r.get("gid") == gid]

    assert await eventually(coordinator_lines, bool, 20.0, "the coordinator's lines about the gid")
    # and the call line of order_svc's Prepare: the trace went along on the mesh channel too
    calls = [r.get("method", "") for r in lines_of(stack, "coordinator", trace_id)]
    assert any(method.endswith("/Prepare") for method in calls)

    # And order_svc's own lines: the rollback (with the gid) and the PlaceOrder call (logged once the
    # answer is on its way, so it may land just after the client saw it).
    async def order_lines() -> list[dict[str, Any]]:
        return lines_of(stack, "order_svc", trace_id)

    def complete(found: list[dict[str, Any]]) -> bool:
        call = any(r.get("method", "").endswith("/PlaceOrder") for r in found)
        return call and any(r.get("gid") == gid for r in found)

    await eventually(order_lines, complete, 20.0, "order_svc's call and rollback lines")


def scrape(stack: Stack, process: str) -> str:
    """The ``/metrics`` text of one process of the stack."""
    (spec,) = [s for s in SERVICES if s.name == process]
    url = f"http://127.0.0.1:{spec.metrics_port(stack.launcher.base_port)}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        body: str = response.read().decode()
    return body


def sample(body: str, name: str, **labels: str) -> float:
    """The value of the series ``name`` whose labels include ``labels`` (summed over the rest)."""
    total = 0.0
    for line in body.splitlines():
        if not line.startswith(name + "{"):
            continue
        series, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


async def test_every_process_exports_process_client_and_barrier_metrics(stack: Stack) -> None:
    merchant = f"m-{uuid.uuid4().hex[:8]}"
    sku = await stack.sku(merchant, 500, 10)
    user = await stack.user(points=100)
    await stack.place(user, [(sku, merchant, 1, 500)], points=50)

    bodies = {s.name: await asyncio.to_thread(scrape, stack, s.name) for s in SERVICES}
    for name, body in bodies.items():
        assert "\nprocess_cpu_seconds_total " in body, name
        assert "\npython_info{" in body, name
    order, coordinator = bodies["order_svc"], bodies["coordinator"]
    # order_svc's calls: the coordinator's Prepare and the tries it makes itself
    client = "mesh_rpc_client_handled_total"
    assert sample(order, client, method="Prepare", code="OK") >= 1
    assert sample(order, client, method="TryReserve", code="OK") >= 1
    # the coordinator's branch calls, through its channel pool
    assert sample(coordinator, client, method="ConfirmReserve", code="OK") >= 1
    assert sample(coordinator, client, method="ConfirmFreeze", code="OK") >= 1
    # each participant's barrier counted the try and the confirm it applied
    outcomes = "mesh_barrier_outcomes_total"
    for process in ("stock_svc", "points_svc", "order_svc"):
        assert sample(bodies[process], outcomes, service=process, outcome="applied") >= 2, process
    # store-derived gauges carry the replica, so that max() (not sum()) aggregates them
    assert 'mesh_tx_stuck_unfinished{replica="' in coordinator


async def test_order_calls_log_their_order_id(stack: Stack) -> None:
    merchant = f"m-{uuid.uuid4().hex[:8]}"
    sku = await stack.sku(merchant, 300, 5)
    user = await stack.user()
    (order_id,) = (await stack.place(user, [(sku, merchant, 1, 300)])).order_ids
    await stack.cancel(order_id)

    async def cancel_lines() -> list[dict[str, Any]]:
        return [r for r in log_records(stack, "order_svc") if r.get("method", "").endswith("/Cancel")]

    (line,) = await eventually(cancel_lines, bool, 20.0, "order_svc's Cancel call line")
    assert (line["order_id"], line["code"]) == (order_id, "OK")
    placed = [r for r in log_records(stack, "order_svc") if r.get("method", "").endswith("/PlaceOrder")]
    assert order_id in [r.get("order_id") for r in placed]
