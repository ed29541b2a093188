"""The server interceptor's per-method handler reuse, call-log levels and prebound method metrics."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

import grpc
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from meshkit.errors import InvalidArgument
from meshkit.observability.metrics import RpcMetrics
from meshkit.rpc.auth import MESH, Gate, protect
from meshkit.rpc.interceptors import MeshInterceptor, call_level
from meshkit.settings.config import AuthSettings
from meshkit.tx.context import GID_KEY, from_metadata

SERVICE = "meshpb.test.v1.Echo"
METHOD = f"/{SERVICE}/Echo"


async def echo(request: bytes, context: Any) -> bytes:
    return request


@dataclass(frozen=True)
class _CallDetails:
    """What grpc hands an interceptor about a call (its own class is only a protocol)."""

    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


def _details(metadata: tuple[tuple[str, str], ...] = ()) -> grpc.HandlerCallDetails:
    return cast(grpc.HandlerCallDetails, _CallDetails(METHOD, metadata))


def _interceptor(gate: Gate | None = None) -> tuple[MeshInterceptor, CollectorRegistry]:
    registry = CollectorRegistry()
    return MeshInterceptor(RpcMetrics(registry), 5.0, gate=gate), registry


async def test_a_methods_wrapped_handler_is_built_once_and_reused() -> None:
    interceptor, _ = _interceptor()
    source = grpc.unary_unary_rpc_method_handler(echo)

    async def continuation(details: grpc.HandlerCallDetails) -> Any:
        return source

    first = await interceptor.intercept_service(continuation, _details())
    second = await interceptor.intercept_service(continuation, _details())
    assert first is second
    assert first is not source and first is not None and first.unary_unary is not echo


async def test_a_new_handler_for_the_same_method_is_wrapped_anew() -> None:
    interceptor, _ = _interceptor()
    handlers = iter([grpc.unary_unary_rpc_method_handler(echo), grpc.unary_unary_rpc_method_handler(echo)])

    async def continuation(details: grpc.HandlerCallDetails) -> Any:
        return next(handlers)

    first = await interceptor.intercept_service(continuation, _details())
    second = await interceptor.intercept_service(continuation, _details())
    assert first is not second


async def test_a_refused_call_gets_its_own_handler_that_never_decodes_the_body() -> None:
    gate = Gate(protect(SERVICE, MESH, ["Echo"]), AuthSettings(mesh_secret=SecretStr("s" * 16)), "")
    interceptor, _ = _interceptor(gate)
    source = grpc.unary_unary_rpc_method_handler(echo, request_deserializer=bytes)

    async def continuation(details: grpc.HandlerCallDetails) -> Any:
        return source

    refused = await interceptor.intercept_service(continuation, _details())
    again = await interceptor.intercept_service(continuation, _details())
    assert refused is not None and again is not None
    assert refused.request_deserializer is None
    assert refused is not again


@pytest.mark.parametrize(
    ("quiet", "branch_call", "code", "level"),
    [
        (False, True, "OK", logging.DEBUG),
        (True, False, "OK", logging.DEBUG),
        (False, False, "OK", logging.INFO),
        (False, True, "FAILED_PRECONDITION", logging.INFO),
        (True, False, "UNAVAILABLE", logging.INFO),
    ],
)
def test_call_level_is_debug_for_successful_branch_calls_and_probes_only(
    quiet: bool, branch_call: bool, code: str, level: int
) -> None:
    assert call_level(quiet, branch_call, code) == level


def test_method_metrics_count_each_code_and_observe_the_duration() -> None:
    registry = CollectorRegistry()
    metrics = RpcMetrics(registry)
    one = metrics.method(METHOD)
    assert metrics.method(METHOD) is one
    one.observe("OK", 0.002)
    one.observe("OK", 0.002)
    metrics.observe(METHOD, "ABORTED", 0.2)
    labels = {"service": SERVICE, "method": "Echo"}
    assert registry.get_sample_value("mesh_rpc_server_handled_total", {**labels, "code": "OK"}) == 2.0
    assert registry.get_sample_value("mesh_rpc_server_handled_total", {**labels, "code": "ABORTED"}) == 1.0
    assert registry.get_sample_value("mesh_rpc_server_handling_seconds_count", labels) == 3.0
    assert (
        registry.get_sample_value("mesh_rpc_server_handling_seconds_bucket", {**labels, "le": "0.0025"})
        == 2.0
    )


@pytest.mark.parametrize("gid", ["no\u00a0break", "ideo\u3000space", "line\u2028sep", "nel\x85x"])
def test_a_gid_with_any_unicode_whitespace_is_refused_naming_the_gid(gid: str) -> None:
    metadata = [(GID_KEY, gid), ("x-mesh-branch", "01"), ("x-mesh-op", "try"), ("x-mesh-mode", "tcc")]
    with pytest.raises(InvalidArgument) as caught:
        from_metadata(metadata)
    assert caught.value.field == GID_KEY
