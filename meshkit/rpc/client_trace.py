"""The client interceptor that carries the call being served's trace on the calls made meanwhile.

A handler that calls another service (order_svc asking the coordinator to Prepare, or stock_svc for
prices) sends :data:`meshkit.observability.logctx.current_traceparent` continued with a new span id, so the
callee's log lines (and, with tracing on, its spans) join the caller's trace. A call that names its own
``traceparent`` (a branch call) keeps it; outside a traced call nothing is added.
"""

from __future__ import annotations

import secrets
from typing import Any

import grpc.aio

from meshkit.observability.logctx import TRACEPARENT_KEY, current_traceparent


def continued(traceparent: str) -> str:
    """``traceparent`` (well-formed) with a new span id: the same trace, the same flags."""
    return f"{traceparent[:36]}{secrets.token_hex(8)}{traceparent[52:]}"


class TraceForwarder(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds the current trace's ``traceparent`` to calls that carry none."""

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        """Call on, with the ``traceparent`` appended when there is a current trace to continue."""
        parent = current_traceparent.get()
        details: grpc.aio.ClientCallDetails = client_call_details
        existing = list(details.metadata or ())
        if not parent or any(key == TRACEPARENT_KEY for key, _ in existing):
            return await continuation(details, request)
        metadata = grpc.aio.Metadata(*existing, (TRACEPARENT_KEY, continued(parent)))
        traced = grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )
        return await continuation(traced, request)
