"""MeshServer against real gRPC clients: health, reflection, interceptors, limits, graceful stop."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import CollectorRegistry

from meshctl.stack.embedded import free_port
from meshkit.errors import BranchFailure, BranchOngoing, InvalidArgument, NotFound
from meshkit.observability.logging import TxContextFilter
from meshkit.observability.metrics import ClientRpcMetrics
from meshkit.rpc.auth import mesh_channel
from meshkit.rpc.health import check_health
from meshkit.rpc.server import MeshServer
from meshkit.rpc.status import error_from_rpc
from meshkit.runtime.clock import Clock, ManualClock
from meshkit.settings.config import MeshSettings, ServerSettings
from meshkit.tx.context import TxContext, current_tx
from meshpb.stock.v1 import stock_pb2, stock_pb2_grpc

STOCK = stock_pb2.DESCRIPTOR.services_by_name["Stock"].full_name

ERRORS: dict[str, Exception] = {
    "invalid": InvalidArgument("sku", "must not be empty"),
    "abort": BranchFailure("insufficient stock"),
    "ongoing": BranchOngoing("try not finished"),
    "missing": NotFound("sku zz"),
    "boom": RuntimeError("secret internals"),
}


@dataclass
class FakeStock(stock_pb2_grpc.StockServicer):
    """A tiny Stock servicer whose GetStock behaviour is chosen by the sku."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    seen: list[TxContext | None] = field(default_factory=list)

    async def GetStock(
        self, request: stock_pb2.GetStockRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> stock_pb2.StockLevel:
        self.seen.append(current_tx.get())
        kind, _, arg = request.sku.partition(":")
        if kind == "raise":
            raise ERRORS[arg]
        if kind == "ctx":
            tx = current_tx.get()
            desc = f"{tx.gid}|{tx.branch_id}|{tx.op.value}|{tx.mode.value}" if tx else "none"
            return stock_pb2.StockLevel(sku=desc)
        if kind == "slow":
            self.entered.set()
            await asyncio.sleep(float(arg))
            return stock_pb2.StockLevel(sku="done")
        return stock_pb2.StockLevel(sku=request.sku, available=len(request.sku))


@dataclass
class Running:
    server: MeshServer
    servicer: FakeStock
    target: str


def _settings(**server: float) -> MeshSettings:
    return MeshSettings(server=ServerSettings(host="127.0.0.1", port=0, grace_seconds=1.0, **server))


async def _start(settings: MeshSettings, clock: Clock | None = None) -> Running:
    servicer = FakeStock()  # type: ignore[abstract]  # the other RPCs answer UNIMPLEMENTED
    server = MeshServer(
        settings,
        "test_svc",
        [lambda s: stock_pb2_grpc.add_StockServicer_to_server(servicer, s)],
        [STOCK],
        clock=clock,
    )
    port = await server.start()
    return Running(server, servicer, f"127.0.0.1:{port}")


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    run = await _start(_settings(metrics_port=free_port()))
    try:
        yield run
    finally:
        await run.server.stop(0)


async def _get(target: str, sku: str, metadata: list[tuple[str, str]] | None = None) -> stock_pb2.StockLevel:
    async with grpc.aio.insecure_channel(target) as channel:
        reply: stock_pb2.StockLevel = await stock_pb2_grpc.StockStub(channel).GetStock(
            stock_pb2.GetStockRequest(sku=sku), metadata=metadata, timeout=5
        )
        return reply


def _tx_metadata(gid: str, op: str = "try") -> list[tuple[str, str]]:
    return [("x-mesh-gid", gid), ("x-mesh-branch", "01"), ("x-mesh-op", op), ("x-mesh-mode", "tcc")]


async def test_health_serving_for_server_and_each_service(running: Running) -> None:
    assert await check_health(running.target) == "SERVING"
    assert await check_health(running.target, STOCK) == "SERVING"
    assert await check_health(running.target, "no.such.Service") == "NOT_FOUND"


async def test_reflection_lists_the_service(running: Running) -> None:
    async with grpc.aio.insecure_channel(running.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        names: set[str] = set()
        async for reply in stub.ServerReflectionInfo(iter([request]), timeout=5):
            names |= {s.name for s in reply.list_services_response.service}
    assert {STOCK, "grpc.health.v1.Health"} <= names


@pytest.mark.parametrize(
    ("kind", "code", "details"),
    [
        ("invalid", grpc.StatusCode.INVALID_ARGUMENT, "sku: must not be empty"),
        ("abort", grpc.StatusCode.ABORTED, "insufficient stock"),
        ("ongoing", grpc.StatusCode.FAILED_PRECONDITION, "try not finished"),
        ("missing", grpc.StatusCode.NOT_FOUND, "sku zz"),
        ("boom", grpc.StatusCode.INTERNAL, "internal error"),
    ],
)
async def test_error_raised_in_handler_becomes_mapped_code(
    running: Running, gid: str, kind: str, code: grpc.StatusCode, details: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _get(running.target, f"raise:{kind}", _tx_metadata(gid))
    assert info.value.code() is code
    assert info.value.details() == details


async def test_client_sees_domain_error_from_rpc(running: Running, gid: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _get(running.target, "raise:invalid", _tx_metadata(gid))
    err = error_from_rpc(info.value)
    assert isinstance(err, InvalidArgument)
    assert err.field == "sku"


async def test_tx_metadata_reaches_handler_via_current_tx(running: Running, gid: str) -> None:
    reply = await _get(running.target, "ctx", _tx_metadata(gid, op="confirm"))
    assert reply.sku == f"{gid}|01|confirm|tcc"
    assert current_tx.get() is None  # the server's context did not leak into the caller


async def test_call_without_tx_metadata_has_no_context(running: Running) -> None:
    assert (await _get(running.target, "ctx")).sku == "none"


async def test_malformed_op_is_invalid_argument_before_handler(running: Running, gid: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _get(running.target, "ctx", _tx_metadata(gid, op="commit"))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith("x-mesh-op:")
    assert running.servicer.seen == []


async def test_100kib_request_is_resource_exhausted(running: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _get(running.target, "x" * (100 * 1024))
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert running.servicer.seen == []


async def test_request_under_limit_is_served(running: Running) -> None:
    reply = await _get(running.target, "y" * (60 * 1024))
    assert reply.available == 60 * 1024


async def test_call_without_deadline_gets_default_deadline() -> None:
    run = await _start(_settings(default_deadline_seconds=0.2))
    try:
        async with grpc.aio.insecure_channel(run.target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stock_pb2_grpc.StockStub(channel).GetStock(stock_pb2.GetStockRequest(sku="slow:3"))
        assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        await run.server.stop(0)


async def test_metrics_count_calls_by_code(running: Running, gid: str) -> None:
    await _get(running.target, "plain")
    with pytest.raises(grpc.aio.AioRpcError):
        await _get(running.target, "raise:abort", _tx_metadata(gid))
    url = f"http://127.0.0.1:{running.server.metrics_port}/metrics"
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    labels = f'service="{STOCK}"'
    assert f'mesh_rpc_server_handled_total{{code="OK",method="GetStock",{labels}}} 1.0' in body
    assert f'mesh_rpc_server_handled_total{{code="ABORTED",method="GetStock",{labels}}} 1.0' in body
    assert f'mesh_rpc_server_handling_seconds_count{{method="GetStock",{labels}}} 2.0' in body


async def test_metrics_endpoint_exports_process_and_python_collectors(running: Running) -> None:
    url = f"http://127.0.0.1:{running.server.metrics_port}/metrics"
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
        assert f"\n{name} " in body
    assert "\npython_info{" in body
    assert "\npython_gc_collections_total{" in body


async def test_mesh_channel_counts_client_calls_by_method_and_code(running: Running, gid: str) -> None:
    registry = CollectorRegistry()
    metrics = ClientRpcMetrics(registry)
    async with mesh_channel(running.target, None, metrics=metrics) as channel:
        stub = stock_pb2_grpc.StockStub(channel)
        await stub.GetStock(stock_pb2.GetStockRequest(sku="plain"), timeout=5)
        await stub.GetStock(stock_pb2.GetStockRequest(sku="plain"), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetStock(stock_pb2.GetStockRequest(sku="raise:abort"), timeout=5)
    labels = {"service": STOCK, "method": "GetStock"}
    assert registry.get_sample_value("mesh_rpc_client_handled_total", {**labels, "code": "OK"}) == 2.0
    assert registry.get_sample_value("mesh_rpc_client_handled_total", {**labels, "code": "ABORTED"}) == 1.0
    assert registry.get_sample_value("mesh_rpc_client_handling_seconds_count", labels) == 3.0


async def test_call_log_line_carries_the_callers_trace_id(
    running: Running, gid: str, caplog: pytest.LogCaptureFixture
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    metadata = [*_tx_metadata(gid), ("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01")]
    context = TxContextFilter()
    caplog.handler.addFilter(context)
    try:
        with caplog.at_level(logging.INFO, logger="meshkit.rpc"):
            with pytest.raises(grpc.aio.AioRpcError):
                await _get(running.target, "raise:abort", metadata)
            for _ in range(100):  # the client can hear the status before the line is written
                if any(getattr(r, "gid", "") == gid for r in caplog.records):
                    break
                await asyncio.sleep(0.02)
    finally:
        caplog.handler.removeFilter(context)
    (line,) = [r for r in caplog.records if getattr(r, "gid", "") == gid]
    assert line.__dict__["trace_id"] == trace_id


async def test_call_log_line_carries_method_code_and_tx_context(
    running: Running, gid: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="meshkit.rpc"):
        with pytest.raises(grpc.aio.AioRpcError):
            await _get(running.target, "raise:ongoing", _tx_metadata(gid, op="cancel"))
        # The client can hear the status before the server's wrapper has written its line: give it a moment.
        for _ in range(100):
            if any(getattr(r, "gid", "") == gid for r in caplog.records):
                break
            await asyncio.sleep(0.02)
    records = [r for r in caplog.records if getattr(r, "gid", "") == gid]
    assert len(records) == 1
    rec = records[0]
    assert (rec.__dict__["method"], rec.__dict__["code"]) == (
        "/meshpb.stock.v1.Stock/GetStock",
        "FAILED_PRECONDITION",
    )
    assert (rec.__dict__["branch"], rec.__dict__["op"]) == ("01", "cancel")
    assert rec.__dict__["duration_ms"] >= 0
    json.dumps(rec.__dict__["duration_ms"])


async def test_sigterm_marks_not_serving_and_lets_inflight_call_finish() -> None:
    run = await _start(_settings())
    run.server.install_signal_handlers()
    async with grpc.aio.insecure_channel(run.target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=STOCK))
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        stock = stock_pb2_grpc.StockStub(channel)
        inflight = asyncio.ensure_future(stock.GetStock(stock_pb2.GetStockRequest(sku="slow:0.3"), timeout=5))
        await asyncio.wait_for(run.servicer.entered.wait(), 5)
        os.kill(os.getpid(), signal.SIGTERM)
        after = await asyncio.wait_for(watch.read(), 5)
        assert after.status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stock.GetStock(stock_pb2.GetStockRequest(sku="late"), timeout=5)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert (await inflight).sku == "done"
        watch.cancel()
    await asyncio.wait_for(run.server.wait_for_termination(), 10)


async def test_sigterm_drain_answers_not_serving_but_still_serves_until_the_delay_ends() -> None:
    clock = ManualClock()
    run = await _start(_settings(drain_seconds=10.0), clock)
    run.server.install_signal_handlers()
    async with grpc.aio.insecure_channel(run.target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=STOCK))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        stock = stock_pb2_grpc.StockStub(channel)
        os.kill(os.getpid(), signal.SIGTERM)
        assert (await asyncio.wait_for(watch.read(), 5)).status == health_pb2.HealthCheckResponse.NOT_SERVING
        # During the drain a client polling health sees NOT_SERVING, and calls are still served.
        assert await check_health(run.target) == "NOT_SERVING"
        assert (await stock.GetStock(stock_pb2.GetStockRequest(sku="during"), timeout=5)).sku == "during"
        clock.advance(9.0)
        assert (await stock.GetStock(stock_pb2.GetStockRequest(sku="still"), timeout=5)).sku == "still"
        assert not run.server._stopped.is_set()
        clock.advance(1.0)
        await asyncio.wait_for(run.server.wait_for_termination(), 10)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stock.GetStock(stock_pb2.GetStockRequest(sku="late"), timeout=5)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        watch.cancel()


async def test_max_connection_age_closes_old_connections_and_the_client_reconnects() -> None:
    run = await _start(_settings(max_connection_age_seconds=0.5))
    try:
        async with grpc.aio.insecure_channel(run.target) as channel:
            stock = stock_pb2_grpc.StockStub(channel)
            assert (await stock.GetStock(stock_pb2.GetStockRequest(sku="a"), timeout=5)).sku == "a"
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=STOCK))
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            # The server ends the aged connection: the open stream ends once the age grace (1 s) is up.
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await asyncio.wait_for(watch.read(), 10)
            assert ended.value.code() is grpc.StatusCode.UNAVAILABLE
            assert (await stock.GetStock(stock_pb2.GetStockRequest(sku="b"), timeout=5)).sku == "b"
    finally:
        await run.server.stop(0)


async def test_mesh_channel_spreads_calls_over_every_address_a_name_resolves_to() -> None:
    first, second = await _start(_settings()), await _start(_settings())
    try:
        # What a headless Service's DNS name gives a client: several addresses behind one target.
        target = f"ipv4:{first.target},{second.target}"
        async with mesh_channel(target, None) as channel:
            await asyncio.wait_for(channel.channel_ready(), 5)
            stock = stock_pb2_grpc.StockStub(channel)
            for n in range(40):
                await stock.GetStock(stock_pb2.GetStockRequest(sku=f"rr{n}"), timeout=5)
        assert first.servicer.seen and second.servicer.seen
        assert len(first.servicer.seen) + len(second.servicer.seen) == 40
    finally:
        await first.server.stop(0)
        await second.server.stop(0)
