"""Generic unary gRPC calls to branch targets (``host:port/package.Service/Method``) with raw bytes.

The coordinator calls participants without knowing their protobuf types: the request is the branch's
payload bytes, sent with identity serializers, and only the status matters. Initiators (the
:mod:`meshkit.tx.initiator` builders) call tries the same way. Channels are pooled per ``host:port`` and,
given the ``auth`` settings, sign every call with the mesh credentials (:mod:`meshkit.rpc.auth`).

W3C trace context: every call carries a ``traceparent``; a caller's one is continued (same trace id,
new span id), otherwise a trace id derived from the gid is used, so all calls of one transaction share
a trace.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence

import grpc
import grpc.aio

from meshkit.observability import logctx
from meshkit.observability.metrics import ClientRpcMetrics
from meshkit.rpc.auth import channel_options, client_interceptors
from meshkit.settings.config import AuthSettings
from meshkit.tx.context import TxContext
from meshkit.tx.target import Target, parse_target

DEFAULT_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
)

TRACEPARENT_KEY = logctx.TRACEPARENT_KEY
valid_traceparent = logctx.valid_traceparent
RawMethod = grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]


def _identity(data: bytes) -> bytes:
    return data


def child_traceparent(parent: str | None, seed: str) -> str:
    """A ``traceparent`` for an outgoing call: continues ``parent`` if valid, else a trace from ``seed``."""
    normal = logctx.normalized_traceparent(parent) if parent else ""
    if normal:
        _, trace_id, _, flags = normal.split("-")
    else:
        trace_id, flags = logctx.seeded_trace_id(seed), "01"
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


def branch_metadata(
    ctx: TxContext, headers: Sequence[tuple[str, str]] = (), traceparent: str | None = None
) -> list[tuple[str, str]]:
    """The metadata of a branch call: custom headers, ``x-mesh-*`` and a ``traceparent``."""
    parent = traceparent or next((v for k, v in headers if k == TRACEPARENT_KEY), None)
    metadata = [(k, v) for k, v in headers if k != TRACEPARENT_KEY]
    metadata.extend(ctx.to_metadata())
    metadata.append((TRACEPARENT_KEY, child_traceparent(parent, ctx.gid)))
    return metadata


class ChannelPool:
    """One ``grpc.aio`` channel per ``host:port`` and one raw method callable per target.

    ``metrics``: count every call on them (``mesh_rpc_client_*``).
    """

    def __init__(
        self,
        options: Sequence[tuple[str, int]] = DEFAULT_CHANNEL_OPTIONS,
        *,
        auth: AuthSettings | None = None,
        metrics: ClientRpcMetrics | None = None,
    ) -> None:
        self._options = channel_options(options)
        self._interceptors = client_interceptors(auth, metrics=metrics, forward_trace=False)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._methods: dict[str, tuple[Target, RawMethod]] = {}

    def channel(self, address: str) -> grpc.aio.Channel:
        """The pooled channel to ``address`` (``host:port``), created on first use."""
        channel = self._channels.get(address)
        if channel is None:
            channel = grpc.aio.insecure_channel(
                address, options=self._options, interceptors=self._interceptors
            )
            self._channels[address] = channel
        return channel

    def method(self, target: str) -> RawMethod:
        """The raw-bytes callable of ``target``; raises :class:`meshkit.tx.target.TargetError` if bad."""
        cached = self._methods.get(target)
        if cached is None:
            parsed = parse_target(target)
            call: RawMethod = self.channel(parsed.address).unary_unary(
                parsed.method_path, request_serializer=_identity, response_deserializer=_identity
            )
            cached = (parsed, call)
            self._methods[target] = cached
        return cached[1]

    async def call(
        self, target: str, payload: bytes, metadata: Sequence[tuple[str, str]], deadline_seconds: float | None
    ) -> bytes:
        """Call ``target`` with ``payload``; returns the response bytes, raises ``AioRpcError`` on failure."""
        response: bytes = await self.method(target)(
            payload, metadata=tuple(metadata), timeout=deadline_seconds
        )
        return response

    async def close(self) -> None:
        """Close every channel."""
        channels = list(self._channels.values())
        self._channels.clear()
        self._methods.clear()
        await asyncio.gather(*(c.close() for c in channels), return_exceptions=True)
