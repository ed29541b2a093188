"""The client interceptor counting the RPCs a process makes, by method and status code, with latency.

Installed on mesh channels and the branch :class:`~meshkit.tx.branchcall.ChannelPool` when the process
passes its :class:`~meshkit.observability.metrics.ClientRpcMetrics`. As on the server side, each method's
labelled children are bound once (:meth:`RpcMetrics.method`), so a call costs a dict lookup and two
updates.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import grpc.aio

from meshkit.observability.metrics import ClientRpcMetrics


def _method(details: grpc.aio.ClientCallDetails) -> str:
    method = details.method
    return method.decode() if isinstance(method, bytes) else method


class ClientMetricsInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Records ``mesh_rpc_client_handled_total`` / ``mesh_rpc_client_handling_seconds`` per call."""

    def __init__(self, metrics: ClientRpcMetrics) -> None:
        self._metrics = metrics

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        """Make the call and record its final code (``UNKNOWN`` for a local error) and duration."""
        observe = self._metrics.method(_method(client_call_details)).observe
        start = time.perf_counter()
        code = grpc.StatusCode.UNKNOWN.name
        try:
            call = await continuation(client_call_details, request)
            status: grpc.StatusCode = await call.code()
            code = status.name
            return call
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
            raise
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED.name
            raise
        finally:
            observe(code, time.perf_counter() - start)
