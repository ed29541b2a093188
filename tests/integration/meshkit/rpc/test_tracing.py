"""OpenTelemetry on (``tracing.enabled``): MeshServer exports a span per call to a real OTLP/gRPC receiver.

The receiver is a real gRPC server on 127.0.0.1 implementing the OTLP ``TraceService`` (what an
OpenTelemetry Collector listens with); the spans arrive when the server stops (the batch is flushed).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from meshkit.observability.logging import TxContextFilter
from meshkit.rpc.server import MeshServer
from meshkit.settings.config import MeshSettings, ServerSettings, TracingSettings
from meshpb.stock.v1 import stock_pb2, stock_pb2_grpc
from tests.integration.meshkit.rpc.test_server import STOCK, FakeStock

METHOD = f"/{STOCK}/GetStock"


@dataclass
class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every exported span with its resource's ``service.name``."""

    spans: list[tuple[str, trace_pb2.Span]] = field(default_factory=list)

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                self.spans.extend((attributes.get("service.name", ""), span) for span in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    servicer = Receiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, port
    finally:
        await server.stop(0)


async def traced_server(port: int) -> tuple[MeshServer, str]:
    tracing = TracingSettings(
        enabled=True, otlp_endpoint=f"http://127.0.0.1:{port}", service_name="stock-test"
    )
    settings = MeshSettings(
        server=ServerSettings(host="127.0.0.1", port=0, grace_seconds=1.0), tracing=tracing
    )
    servicer = FakeStock()  # type: ignore[abstract]  # the other RPCs answer UNIMPLEMENTED
    server = MeshServer(
        settings, "test_svc", [lambda s: stock_pb2_grpc.add_StockServicer_to_server(servicer, s)], [STOCK]
    )
    return server, f"127.0.0.1:{await server.start()}"


async def get_stock(target: str, sku: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        await stock_pb2_grpc.StockStub(channel).GetStock(
            stock_pb2.GetStockRequest(sku=sku), metadata=metadata, timeout=5
        )


async def test_a_served_call_is_exported_as_a_span_continuing_the_callers_trace(
    receiver: tuple[Receiver, int],
) -> None:
    spans, port = receiver
    server, target = await traced_server(port)
    trace_id, parent_span = secrets.token_hex(16), secrets.token_hex(8)
    try:
        await get_stock(target, "plain", (("traceparent", f"00-{trace_id}-{parent_span}-01"),))
    finally:
        await server.stop(0)  # flushes the batch

    mine = [(name, s) for name, s in spans.spans if s.trace_id.hex() == trace_id]
    assert [(name, s.name) for name, s in mine] == [("stock-test", METHOD)]
    assert mine[0][1].parent_span_id.hex() == parent_span
    assert mine[0][1].kind == trace_pb2.Span.SPAN_KIND_SERVER


async def test_a_call_without_traceparent_logs_the_trace_id_of_its_new_span(
    receiver: tuple[Receiver, int], caplog: pytest.LogCaptureFixture
) -> None:
    spans, port = receiver
    server, target = await traced_server(port)
    sku = f"sku-{secrets.token_hex(4)}"
    context = TxContextFilter()
    caplog.handler.addFilter(context)
    try:
        with caplog.at_level(logging.INFO, logger="meshkit.rpc"):
            await get_stock(target, sku)
            for _ in range(100):  # the client can hear the answer before the line is written
                if any(r.__dict__.get("method") == METHOD for r in caplog.records):
                    break
                await asyncio.sleep(0.02)
    finally:
        caplog.handler.removeFilter(context)
        await server.stop(0)

    (line,) = [r for r in caplog.records if r.__dict__.get("method") == METHOD]
    exported = [s for _, s in spans.spans if s.name == METHOD]
    assert [s.trace_id.hex() for s in exported] == [line.__dict__["trace_id"]]
