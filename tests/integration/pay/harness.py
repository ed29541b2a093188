"""pay_svc in-process on a real MeshServer, and a real gRPC stand-in for order_svc's PaymentSucceeded.

:class:`FakeOrder` is a small, honest model of the order side of the contract (order_svc is built in
parallel): a real gRPC server on its own port answering ``meshpb.order.v1.Order/PaymentSucceeded``:
CREATED -> PAID (accepted), PAID by the same payment -> accepted, CANCELLED (or paid by another
payment) -> accepted = false. It records every call with its metadata, and :attr:`FakeOrder.down`
makes it answer ``UNAVAILABLE``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import pytest
from pydantic import SecretStr

from meshkit.errors import TransientError
from meshkit.rpc.auth import MESH, protect
from meshkit.rpc.server import MeshServer
from meshkit.runtime.clock import Clock, SystemClock
from meshkit.settings.config import DbSettings, MeshSettings, ServerSettings
from meshkit.settings.peers import PeersSection
from meshpb.common.v1 import common_pb2
from meshpb.order.v1 import order_pb2, order_pb2_grpc
from meshpb.pay.v1 import pay_pb2, pay_pb2_grpc
from pay_svc.config import PaySection, PayServerSettings, PaySettings
from pay_svc.payments.values import Payment
from pay_svc.runtime import PROTECTED, PayRuntime
from tests.integration.creds import ADMIN, AUTH, trusted_channel

SECRET = "test-callback-secret-0123456789"
PAY_SERVICE = pay_pb2.DESCRIPTOR.services_by_name["Pay"].full_name
ORDER_SERVICE = order_pb2.DESCRIPTOR.services_by_name["Order"].full_name

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass
class OrderCall:
    """One PaymentSucceeded call as the order side received it."""

    order_id: str
    payment_id: str
    amount_cents: int
    metadata: dict[str, str]
    answered: str  # "accepted", "refused" or "unavailable"


@dataclass
class FakeOrder(order_pb2_grpc.OrderServicer):
    """order_svc's PaymentSucceeded on a real gRPC server (see the module docstring)."""

    status: dict[str, int] = field(default_factory=dict)  # order_id -> OrderStatus (absent = CREATED)
    paid_by: dict[str, str] = field(default_factory=dict)
    calls: list[OrderCall] = field(default_factory=list)
    down: bool = False
    port: int = 0
    _server: MeshServer | None = None

    async def start(self) -> FakeOrder:
        """Serve on a free 127.0.0.1 port (or on :attr:`port` if set)."""
        settings = MeshSettings(
            server=ServerSettings(host="127.0.0.1", port=self.port, grace_seconds=0.2), auth=AUTH
        )
        self._server = MeshServer(
            settings,
            "fake-order",
            [lambda s: order_pb2_grpc.add_OrderServicer_to_server(self, s)],
            [ORDER_SERVICE],
            protected=protect(ORDER_SERVICE, MESH, ["PaymentSucceeded"]),  # as order_svc declares it
        )
        self.port = await self._server.start()
        return self

    async def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            await self._server.stop(0.2)

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def cancel(self, order_id: str) -> None:
        """The order is CANCELLED (e.g. its pay deadline passed)."""
        self.status[order_id] = order_pb2.ORDER_STATUS_CANCELLED

    def order_status(self, order_id: str) -> int:
        """The order's status (CREATED until something happened)."""
        return self.status.get(order_id, order_pb2.ORDER_STATUS_CREATED)

    def calls_for(self, order_id: str, answered: str | None = None) -> list[OrderCall]:
        """The calls received for ``order_id`` (optionally only those answered so)."""
        return [c for c in self.calls if c.order_id == order_id and answered in (None, c.answered)]

    def refunding(self, order_id: str) -> None:
        """The order is being cancelled after it was paid (its cancel chain runs)."""
        self.status[order_id] = order_pb2.ORDER_STATUS_REFUNDING

    async def GetOrder(self, request: order_pb2.GetOrderRequest, context: Context) -> order_pb2.OrderInfo:
        """The order's status (every order exists: absent means CREATED), as pay_svc's Refund reads it."""
        return order_pb2.OrderInfo(
            order_id=request.order_id,
            status=self.order_status(request.order_id),  # type: ignore[arg-type]
            payment_id=self.paid_by.get(request.order_id, ""),
        )

    async def PaymentSucceeded(
        self, request: order_pb2.PaymentSucceededRequest, context: Context
    ) -> order_pb2.PaymentSucceededResponse:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}

        def record(answered: str) -> None:
            self.calls.append(
                OrderCall(request.order_id, request.payment_id, request.amount_cents, metadata, answered)
            )

        if self.down:
            record("unavailable")
            raise TransientError("order_svc is down (test switch)", code="UNAVAILABLE")
        current = self.order_status(request.order_id)
        if current == order_pb2.ORDER_STATUS_CREATED:
            self.status[request.order_id] = order_pb2.ORDER_STATUS_PAID
            self.paid_by[request.order_id] = request.payment_id
            current = order_pb2.ORDER_STATUS_PAID
        accepted = (
            current == order_pb2.ORDER_STATUS_PAID and self.paid_by[request.order_id] == request.payment_id
        )
        record("accepted" if accepted else "refused")
        return order_pb2.PaymentSucceededResponse(accepted=accepted, status=current)  # type: ignore[arg-type]


def pay_settings(db_url: str, order_address: str, *, secret: str = SECRET, **pay: Any) -> PaySettings:
    """Settings of an in-process pay_svc on a free port."""
    return PaySettings(
        server=PayServerSettings(host="127.0.0.1", port=0, grace_seconds=0.5, worker_id=3),
        db=DbSettings(url=db_url),
        pay=PaySection(callback_secret=SecretStr(secret), **{"simulator_enabled": True, **pay}),
        peers=PeersSection(order=order_address),
        auth=AUTH,
        admin=ADMIN,
    )


@dataclass
class RunningPay:
    """pay_svc's runtime behind a real MeshServer, and a stub on a channel to it."""

    runtime: PayRuntime
    server: MeshServer
    channel: grpc.aio.Channel
    stub: pay_pb2_grpc.PayAsyncStub

    @classmethod
    async def start(
        cls, settings: PaySettings, *, clock: Clock | None = None, background: bool = True
    ) -> RunningPay:
        """Start the runtime and its server (like ``python -m pay_svc``)."""
        runtime = await PayRuntime.start(settings, clock=clock or SystemClock(), background=background)
        server = MeshServer(settings, "pay_svc", [runtime.register], [PAY_SERVICE], protected=PROTECTED)
        server.add_stop_hook(runtime.stop)
        port = await server.start()
        runtime.bind(port)
        channel = trusted_channel(f"127.0.0.1:{port}")
        return cls(runtime, server, channel, pay_pb2_grpc.PayStub(channel))

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.server.port}"

    async def stop(self) -> None:
        """Stop the server (and with it the runtime)."""
        await self.channel.close()
        await self.server.stop(0.5)

    async def stored(self, payment_id: str) -> Payment:
        """The payment as stored (including what the wire does not show, e.g. order_notified)."""
        return await self.runtime.domain.payment(int(payment_id))

    async def create(
        self, amount_cents: int = 1234, order_id: str | None = None, user_id: str = "u1"
    ) -> pay_pb2.Payment:
        """CreatePayment for a fresh (or the given) order."""
        return await self.stub.CreatePayment(
            pay_pb2.CreatePaymentRequest(
                order_id=order_id or f"o-{uuid.uuid4().hex[:16]}",
                user_id=user_id,
                amount_cents=amount_cents,
                channel=order_pb2.PAY_CHANNEL_EXTERNAL,
            )
        )

    async def audit_of(self, payment_id: str) -> pay_pb2.PaymentAuditRow:
        """The audit row of one payment."""
        audit = await self.stub.Audit(common_pb2.AuditRequest())
        return next(row for row in audit.payments if row.payment_id == payment_id)


def signature(secret: str, canonical: str) -> str:
    """The contract's signature, computed here independently of pay_svc: hex HMAC-SHA256."""
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def signed_callback(
    payment: pay_pb2.Payment,
    *,
    clock: Clock | None = None,
    secret: str = SECRET,
    status: int = pay_pb2.PAYMENT_STATUS_SUCCEEDED,
    trade_no: str | None = None,
    timestamp_ms: int | None = None,
    nonce: str | None = None,
    **overrides: Any,
) -> pay_pb2.CallbackRequest:
    """A callback for ``payment`` signed like the gateway signs (``overrides`` replace fields first)."""
    fields: dict[str, Any] = {
        "payment_id": payment.payment_id,
        "order_id": payment.order_id,
        "amount_cents": payment.amount_cents,
        "trade_no": trade_no or f"gw-{payment.payment_id}",
        "status": status,
        "timestamp_ms": timestamp_ms
        if timestamp_ms is not None
        else int((clock or SystemClock()).now() * 1000),
        "nonce": nonce or uuid.uuid4().hex,
        **overrides,
    }
    canonical = "|".join(
        str(x)
        for x in (
            fields["payment_id"],
            fields["order_id"],
            fields["amount_cents"],
            fields["trade_no"],
            pay_pb2.PaymentStatus.Name(fields["status"]),
            fields["timestamp_ms"],
            fields["nonce"],
        )
    )
    return pay_pb2.CallbackRequest(signature=signature(secret, canonical), **fields)


async def wait_for(check: Callable[[], object], within: float = 10.0, what: str = "condition") -> None:
    """Poll ``check`` (sync or async) until truthy; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    """Await ``call`` and return the error it failed with (fails the test if it succeeded)."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc
    pytest.fail("the call succeeded but was expected to fail")
