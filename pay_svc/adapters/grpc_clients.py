"""gRPC implementations of :mod:`~pay_svc.adapters.ports`: order_svc's PaymentSucceeded, our own Callback."""

from __future__ import annotations

import grpc
import grpc.aio

from meshkit.observability.metrics import ClientRpcMetrics
from meshkit.rpc.auth import mesh_channel
from meshkit.rpc.status import error_from_rpc
from meshkit.settings.config import AuthSettings
from meshkit.tx.branchcall import DEFAULT_CHANNEL_OPTIONS, child_traceparent
from meshkit.tx.context import TRACEPARENT_KEY
from meshpb.order.v1 import order_pb2, order_pb2_grpc
from meshpb.pay.v1 import pay_pb2_grpc
from pay_svc.api.conversions import callback_request
from pay_svc.payments.values import CallbackNotice

# A restarted peer is found again within seconds, not grpc's default of up to two minutes.
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    *DEFAULT_CHANNEL_OPTIONS,
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def own_address(host: str, port: int) -> str:
    """How this process reaches its own server bound on ``host:port`` (wildcards -> loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


class GrpcOrderClient:
    """:class:`pay_svc.adapters.ports.OrderPort` over gRPC to ``peers.order``."""

    def __init__(
        self,
        address: str,
        call_seconds: float,
        auth: AuthSettings | None = None,
        metrics: ClientRpcMetrics | None = None,
    ) -> None:
        self._channel = mesh_channel(address, auth, options=CHANNEL_OPTIONS, metrics=metrics)
        self._stub = order_pb2_grpc.OrderStub(self._channel)
        self._call_seconds = call_seconds

    async def payment_succeeded(self, order_id: str, payment_id: str, amount_cents: int) -> bool:
        """Call Order.PaymentSucceeded; gRPC failures become :class:`meshkit.errors.MeshError`."""
        request = order_pb2.PaymentSucceededRequest(
            order_id=order_id, payment_id=payment_id, amount_cents=amount_cents
        )
        metadata = ((TRACEPARENT_KEY, child_traceparent(None, f"pay-{payment_id}")),)
        try:
            reply = await self._stub.PaymentSucceeded(request, timeout=self._call_seconds, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from exc
        return reply.accepted

    async def order_status(self, order_id: str) -> str | None:
        """Call Order.GetOrder; NOT_FOUND is None, other gRPC failures become a MeshError."""
        try:
            info = await self._stub.GetOrder(
                order_pb2.GetOrderRequest(order_id=order_id), timeout=self._call_seconds
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                return None
            raise error_from_rpc(exc) from exc
        return order_status_text(info.status)

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()


class GrpcCallbackClient:
    """:class:`~.ports.CallbackPort`: pay_svc's own Callback RPC, once :meth:`bind` named it."""

    def __init__(self, call_seconds: float) -> None:
        self._call_seconds = call_seconds
        self._channel: grpc.aio.Channel | None = None
        self._stub: pay_pb2_grpc.PayAsyncStub | None = None

    def bind(self, address: str) -> None:
        """Deliver to ``address`` (``host:port`` of this process's server) from now on."""
        self._channel = grpc.aio.insecure_channel(address, options=list(CHANNEL_OPTIONS))
        self._stub = pay_pb2_grpc.PayStub(self._channel)

    async def deliver(self, notice: CallbackNotice) -> None:
        """Call Callback; a refusal becomes the matching :class:`meshkit.errors.MeshError`."""
        if self._stub is None:
            raise RuntimeError("callback client used before bind()")
        try:
            await self._stub.Callback(callback_request(notice), timeout=self._call_seconds)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from exc

    async def close(self) -> None:
        """Close the channel."""
        if self._channel is not None:
            await self._channel.close()


def order_status_text(status: int) -> str:
    """The order status name without its prefix; ``UNKNOWN(n)`` for a number this build does not know."""
    try:
        return order_pb2.OrderStatus.Name(order_pb2.OrderStatus.ValueType(status)).removeprefix(
            "ORDER_STATUS_"
        )
    except ValueError:  # a newer order_svc: the refund check refuses it like any other status
        return f"UNKNOWN({status})"
