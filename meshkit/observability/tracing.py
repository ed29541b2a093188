"""OpenTelemetry for one process (``tracing`` settings): a tracer provider exporting over OTLP/gRPC.

Built by :class:`~meshkit.rpc.server.MeshServer` when ``tracing.enabled``; nothing is imported from
OpenTelemetry otherwise. The provider is passed to the server interceptor of
``opentelemetry-instrumentation-grpc`` (no global provider is installed), outermost: it makes a span
per served call (health checks aside), continuing the caller's
``traceparent``; :class:`~meshkit.rpc.interceptors.MeshInterceptor` then takes the span's context as
the call's trace when the caller sent none, so log lines and the transactions the handler starts carry
the span's trace id. Calls made meanwhile continue that trace without client spans of their own: mesh
channels through :class:`~meshkit.rpc.client_trace.TraceForwarder`, branch calls through the
transaction's ``traceparent`` (the coordinator makes them long after the initiator's span ended), so
every callee's server span joins the initiator's trace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshkit.settings.config import TracingSettings

if TYPE_CHECKING:
    import grpc.aio
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

QUIET_SERVICE = "grpc.health.v1.Health"


def span_traceparent() -> str:
    """The ``traceparent`` of the current OpenTelemetry span ("" when there is none)."""
    from opentelemetry import trace  # noqa: PLC0415 - only with tracing on

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return ""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


class Tracing:
    """The tracer provider of one process and the gRPC interceptors that use it."""

    def __init__(
        self, settings: TracingSettings, service_name: str, exporter: SpanExporter | None = None
    ) -> None:
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415 - only with tracing on
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased  # noqa: PLC0415

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

            exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint, insecure=settings.insecure)
        self.provider: TracerProvider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name or service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
        )
        self.provider.add_span_processor(BatchSpanProcessor(exporter))

    def server_interceptor(self) -> grpc.aio.ServerInterceptor:
        """The span-per-call server interceptor (health checks are not traced)."""
        from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters  # noqa: PLC0415

        interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider, filter_=filters.negate(filters.service_name(QUIET_SERVICE))
        )
        return interceptor

    def shutdown(self) -> None:
        """Export the spans still buffered, then stop."""
        self.provider.shutdown()
