"""Server interceptors every saga-mesh process installs (outermost first, see :func:`default_interceptors`).

1. :class:`MetricsInterceptor` - ``mesh_rpc_server_handled_total`` / ``mesh_rpc_server_handling_seconds``.
2. :class:`LoggingInterceptor` - one structured line per call: method, code, duration, gid/branch/op.
3. :class:`TxContextInterceptor` - ``x-mesh-*`` metadata -> :data:`meshkit.txcontext.current_tx`
   (malformed -> ``INVALID_ARGUMENT``).
4. :class:`ErrorMappingInterceptor` - domain errors -> status codes through :mod:`meshkit.status`.
5. :class:`DeadlineInterceptor` - calls without a deadline get the configured default.

Only unary-unary handlers are wrapped (every saga-mesh RPC is unary); streaming handlers such as
health ``Watch`` pass through untouched.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc
import grpc.aio

from meshkit.errors import InvalidArgument, TransientError
from meshkit.metrics import RpcMetrics
from meshkit.status import status_of
from meshkit.txcontext import TxContext, current_tx, from_metadata

log = logging.getLogger(__name__)

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Behavior: TypeAlias = Callable[[Any, "grpc.aio.ServicerContext[Any, Any]"], Awaitable[Any]]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = Callable[
    [grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any] | None"]
]

# Calls to these services are logged at DEBUG only (probes would drown the call log).
QUIET_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _as_async(behavior: Callable[[Any, Any], Any]) -> Behavior:
    """An async behavior for a handler function that may be sync (e.g. the generated base servicer)."""

    async def call(request: Any, context: Context) -> Any:
        result = behavior(request, context)
        if inspect.isawaitable(result):
            return await result
        return result

    return call


def wrap_unary(handler: Handler | None, wrap: Callable[[Behavior], Behavior]) -> Handler | None:
    """``handler`` with its unary-unary behavior wrapped by ``wrap``; other handlers unchanged."""
    if handler is None or handler.unary_unary is None:
        return handler
    return grpc.unary_unary_rpc_method_handler(
        wrap(_as_async(handler.unary_unary)),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def status_name(context: Context, exc: BaseException | None) -> str:
    """The final status code name of a call, after its behavior returned or raised ``exc``."""
    if isinstance(exc, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED.name
    code = context.code()
    if code is None:
        return grpc.StatusCode.UNKNOWN.name if exc is not None else grpc.StatusCode.OK.name
    if isinstance(code, grpc.StatusCode):
        return code.name
    try:  # the aio context may report the raw integer code
        return next(c.name for c in grpc.StatusCode if c.value[0] == code)
    except StopIteration:
        return str(code)


def peek_context(metadata: Any) -> TxContext | None:
    """The transaction context in ``metadata``, or ``None`` when absent or malformed (for logging)."""
    try:
        return from_metadata(metadata)
    except InvalidArgument:
        return None


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts every finished call by code and observes its duration."""

    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        """Wrap the handler so each call is recorded."""
        method = handler_call_details.method

        def wrap(behavior: Behavior) -> Behavior:
            async def call(request: Any, context: Context) -> Any:
                start = time.perf_counter()
                failure: BaseException | None = None
                try:
                    return await behavior(request, context)
                except BaseException as exc:
                    failure = exc
                    raise
                finally:
                    self._metrics.observe(method, status_name(context, failure), time.perf_counter() - start)

            return call

        return wrap_unary(await continuation(handler_call_details), wrap)


class LoggingInterceptor(grpc.aio.ServerInterceptor):
    """Logs one line per call with method, code, duration and the transaction context."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("meshkit.rpc")

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        """Wrap the handler so each call is logged when it ends."""
        method = handler_call_details.method
        ctx = peek_context(handler_call_details.invocation_metadata)
        level = logging.DEBUG if method.startswith(QUIET_SERVICES) else logging.INFO

        def wrap(behavior: Behavior) -> Behavior:
            async def call(request: Any, context: Context) -> Any:
                start = time.perf_counter()
                failure: BaseException | None = None
                try:
                    return await behavior(request, context)
                except BaseException as exc:
                    failure = exc
                    raise
                finally:
                    code = status_name(context, failure)
                    self._log.log(
                        level if code == "OK" else max(level, logging.INFO),
                        "rpc %s %s",
                        method,
                        code,
                        extra={
                            "method": method,
                            "code": code,
                            "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                            "gid": ctx.gid if ctx else "",
                            "branch": ctx.branch_id if ctx else "",
                            "op": ctx.op.value if ctx else "",
                        },
                    )

            return call

        return wrap_unary(await continuation(handler_call_details), wrap)


class TxContextInterceptor(grpc.aio.ServerInterceptor):
    """Sets :data:`current_tx` from the call's ``x-mesh-*`` metadata for the duration of the call."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        """Wrap the handler; a malformed context is answered ``INVALID_ARGUMENT`` before the handler runs."""
        metadata = handler_call_details.invocation_metadata

        def wrap(behavior: Behavior) -> Behavior:
            async def call(request: Any, context: Context) -> Any:
                try:
                    tx = from_metadata(metadata)
                except InvalidArgument as exc:
                    status = status_of(exc)
                    await context.abort(status.code, status.details)
                token = current_tx.set(tx)
                try:
                    return await behavior(request, context)
                finally:
                    current_tx.reset(token)

            return call

        return wrap_unary(await continuation(handler_call_details), wrap)


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Turns exceptions escaping a handler into the status :func:`meshkit.status.status_of` names."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        """Wrap the handler so every exception ends the call with its mapped status."""
        method = handler_call_details.method

        def wrap(behavior: Behavior) -> Behavior:
            async def call(request: Any, context: Context) -> Any:
                try:
                    return await behavior(request, context)
                except grpc.aio.AbortError:
                    raise  # the handler chose its status itself
                except Exception as exc:
                    status = status_of(exc)
                    if status.is_internal:
                        self._log.exception("unhandled error in %s", method, extra={"method": method})
                    await context.abort(status.code, status.details)

            return call

        return wrap_unary(await continuation(handler_call_details), wrap)


class DeadlineInterceptor(grpc.aio.ServerInterceptor):
    """Bounds calls that carry no deadline by ``default_seconds`` (then ``DEADLINE_EXCEEDED``).

    Calls with a client deadline are bounded by gRPC itself.
    """

    def __init__(self, default_seconds: float) -> None:
        self._default = default_seconds

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        """Wrap the handler with the default deadline when the call has none."""

        def wrap(behavior: Behavior) -> Behavior:
            async def call(request: Any, context: Context) -> Any:
                if context.time_remaining() is not None:
                    return await behavior(request, context)
                scope = asyncio.timeout(self._default)
                try:
                    async with scope:
                        return await behavior(request, context)
                except TimeoutError:
                    if not scope.expired():
                        raise  # the handler's own timeout, not ours
                    raise TransientError(
                        f"no answer within the default deadline of {self._default:g}s",
                        code=grpc.StatusCode.DEADLINE_EXCEEDED.name,
                    ) from None

            return call

        return wrap_unary(await continuation(handler_call_details), wrap)


def default_interceptors(
    metrics: RpcMetrics, default_deadline_seconds: float
) -> list[grpc.aio.ServerInterceptor]:
    """The interceptor chain of a :class:`~meshkit.server.MeshServer`, outermost first."""
    return [
        MetricsInterceptor(metrics),
        LoggingInterceptor(),
        TxContextInterceptor(),
        ErrorMappingInterceptor(),
        DeadlineInterceptor(default_deadline_seconds),
    ]
