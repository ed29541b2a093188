"""The server interceptor every saga-mesh process installs: one wrapper around each unary call.

It does, outermost first:

0. credentials - a protected method whose metadata the :class:`meshkit.rpc.auth.Gate` refuses answers
   ``UNAUTHENTICATED`` without its body being decoded (still counted and logged);
1. metrics - ``mesh_rpc_server_handled_total`` / ``mesh_rpc_server_handling_seconds``;
2. the call log - one structured line per call: method, code, duration, gid/branch/op; at DEBUG for a
   successful branch call (one carrying a transaction context) or probe, at INFO otherwise;
3. the transaction context - ``x-mesh-*`` metadata -> :data:`meshkit.tx.context.current_tx`
   (malformed -> ``INVALID_ARGUMENT`` before the handler runs), and the caller's ``traceparent`` ->
   :data:`meshkit.observability.logctx.current_traceparent` (log lines' ``trace_id``; transactions started
   by the handler continue that trace);
4. error mapping - domain errors -> status codes through :mod:`meshkit.rpc.status`; a request body that
   did not decode is ``INVALID_ARGUMENT`` here too (:mod:`meshkit.rpc.decoding`), not grpc's ``UNKNOWN``;
5. the default deadline - calls without a deadline get the configured one.

They are one interceptor rather than five because gRPC runs each interceptor for every call; and the
wrapped handler of each method is built once and reused, so a call costs a credentials check, a
metadata parse, a metrics update and a level check on top of its handler (``python -m bench
rpc_overhead`` measures it against bare gRPC).

Only unary-unary handlers are wrapped (every saga-mesh RPC is unary); streaming handlers such as
health ``Watch`` pass through untouched.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeAlias

import grpc
import grpc.aio

from meshkit.errors import InvalidArgument, TransientError, Unauthenticated
from meshkit.observability.logctx import current_traceparent
from meshkit.observability.metrics import RpcMetrics
from meshkit.observability.tracing import Tracing, span_traceparent
from meshkit.rpc.auth import Gate
from meshkit.rpc.decoding import decoded, tolerant
from meshkit.rpc.status import status_of
from meshkit.tx.context import TxContext, current_tx, read_metadata

log = logging.getLogger(__name__)

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Behavior: TypeAlias = Callable[[Any, "grpc.aio.ServicerContext[Any, Any]"], Awaitable[Any]]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = Callable[
    [grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any] | None"]
]

# Calls to these services are logged at DEBUG only (probes would drown the call log).
QUIET_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
OK = grpc.StatusCode.OK.name


def as_async(behavior: Callable[[Any, Any], Any]) -> Behavior:
    """An async behavior for a handler function that may be sync (e.g. the generated base servicer)."""
    if inspect.iscoroutinefunction(behavior):
        return behavior

    async def call(request: Any, context: Context) -> Any:
        result = behavior(request, context)
        if inspect.isawaitable(result):
            return await result
        return result

    return call


def call_level(quiet: bool, branch_call: bool, code: str) -> int:
    """The level of a call's log line: DEBUG for a successful probe or branch call, else INFO.

    Branch calls (the ones carrying a transaction context) come at the highest rate, and the
    coordinator records each one's outcome; a failed call is always logged at INFO.
    """
    if code == OK and (quiet or branch_call):
        return logging.DEBUG
    return logging.INFO


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


@dataclass(frozen=True, slots=True)
class _Route:
    """One method's wrapped handler, built on its first call and reused (``source``: what it wraps)."""

    source: Handler
    handler: Handler


class MeshInterceptor(grpc.aio.ServerInterceptor):
    """Metrics, call log, transaction context, error mapping and default deadline for every unary call.

    The wrapped handler of a method is built once, on its first call, and reused: per call only the
    credentials are checked here, the rest happens inside the wrapped behavior.
    """

    def __init__(
        self,
        metrics: RpcMetrics,
        default_deadline_seconds: float,
        *,
        call_log: logging.Logger | None = None,
        error_log: logging.Logger | None = None,
        gate: Gate | None = None,
        trace_source: Callable[[], str] | None = None,
    ) -> None:
        self._metrics = metrics
        # with OpenTelemetry on: the current span's traceparent, for calls that came without one
        self._trace_source = trace_source
        self._gate = gate
        self._default_deadline = default_deadline_seconds
        self._call_log = call_log or logging.getLogger("meshkit.rpc")
        self._error_log = error_log or log
        # full method -> its wrapped handler; only methods some registered handler answers get here
        self._routes: dict[str, _Route] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        """The handler with its unary-unary behavior wrapped; other handlers unchanged."""
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        refusal = self._refusal(handler_call_details)
        if refusal is not None:  # refused on its metadata: the body is never decoded
            return grpc.unary_unary_rpc_method_handler(
                self._wrap(refusal, method),
                request_deserializer=None,
                response_serializer=handler.response_serializer,
            )
        route = self._routes.get(method)
        if route is None or route.source is not handler:
            route = _Route(handler, self._wrapped_handler(handler, as_async(handler.unary_unary), method))
            self._routes[method] = route
        return route.handler

    def _wrapped_handler(self, handler: Handler, behavior: Behavior, method: str) -> Handler:
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(behavior, method),
            request_deserializer=tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    def _refusal(self, details: grpc.HandlerCallDetails) -> Behavior | None:
        """A behavior answering UNAUTHENTICATED when the gate refuses the call's credentials, else None."""
        if self._gate is None:
            return None
        try:
            self._gate.check(details.method, details.invocation_metadata)
        except Unauthenticated as exc:
            error = exc

            async def refuse(request: Any, context: Context) -> Any:
                raise error

            return refuse
        return None

    def _wrap(self, behavior: Behavior, method: str) -> Behavior:
        quiet = method.startswith(QUIET_SERVICES)
        observe = self._metrics.method(method).observe
        trace_source = self._trace_source

        async def call(request: Any, context: Context) -> Any:
            start = time.perf_counter()
            failure: BaseException | None = None
            tx: TxContext | None = None
            try:
                try:
                    tx, traceparent = read_metadata(context.invocation_metadata())
                except InvalidArgument as exc:
                    status = status_of(exc)
                    await context.abort(status.code, status.details)
                token = current_tx.set(tx)
                if not traceparent and trace_source is not None:
                    traceparent = trace_source()
                # each call runs in its own task (a copied context): no reset needed
                current_traceparent.set(traceparent)
                try:  # inline rather than one more coroutine: this runs on every call
                    if context.time_remaining() is not None:
                        return await behavior(decoded(request), context)
                    return await self._bounded(behavior, decoded(request), context)
                except grpc.aio.AbortError:
                    raise  # the handler chose its status itself
                except Exception as exc:
                    await self._abort_mapped(exc, context, method)
                finally:
                    current_tx.reset(token)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                code = status_name(context, failure)
                elapsed = time.perf_counter() - start
                observe(code, elapsed)
                self._log_call(call_level(quiet, tx is not None, code), method, code, elapsed, tx)

        return call

    async def _abort_mapped(self, exc: Exception, context: Context, method: str) -> NoReturn:
        """End the call with the status ``exc`` maps to (logged with its traceback when internal)."""
        status = status_of(exc)
        if status.is_internal:
            self._error_log.exception("unhandled error in %s", method, extra={"method": method})
        await context.abort(status.code, status.details)

    async def _bounded(self, behavior: Behavior, request: Any, context: Context) -> Any:
        """A call without a client deadline is bounded by the default one (then ``DEADLINE_EXCEEDED``)."""
        scope = asyncio.timeout(self._default_deadline)
        try:
            async with scope:
                return await behavior(request, context)
        except TimeoutError:
            if not scope.expired():
                raise  # the handler's own timeout, not ours
            raise TransientError(
                f"no answer within the default deadline of {self._default_deadline:g}s",
                code=grpc.StatusCode.DEADLINE_EXCEEDED.name,
            ) from None

    def _log_call(self, level: int, method: str, code: str, elapsed: float, tx: TxContext | None) -> None:
        if not self._call_log.isEnabledFor(level):
            return
        self._call_log.log(
            level,
            "rpc %s %s",
            method,
            code,
            extra={
                "method": method,
                "code": code,
                "duration_ms": round(elapsed * 1000, 3),
                "gid": tx.gid if tx else "",
                "branch": tx.branch_id if tx else "",
                "op": tx.op.value if tx else "",
            },
        )


def default_interceptors(
    metrics: RpcMetrics,
    default_deadline_seconds: float,
    gate: Gate | None = None,
    tracing: Tracing | None = None,
) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors of a :class:`~meshkit.rpc.server.MeshServer` (``gate``: its protected methods).

    With ``tracing``, OpenTelemetry's span interceptor comes first (outermost).
    """
    if tracing is None:
        return [MeshInterceptor(metrics, default_deadline_seconds, gate=gate)]
    mesh = MeshInterceptor(metrics, default_deadline_seconds, gate=gate, trace_source=span_traceparent)
    return [tracing.server_interceptor(), mesh]
