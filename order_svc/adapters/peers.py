"""gRPC adapters of the catalogue (stock_svc) and external payments (pay_svc)."""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Mapping
from typing import TYPE_CHECKING, TypeVar

import grpc
import grpc.aio

from meshkit.rpc.status import error_from_rpc
from meshpb.order.v1 import order_pb2
from meshpb.pay.v1 import pay_pb2, pay_pb2_grpc
from meshpb.stock.v1 import stock_pb2, stock_pb2_grpc
from order_svc.orders.values import PaymentTicket, SkuInfo

if TYPE_CHECKING:
    from meshpb.pay.v1.pay_pb2_grpc import PayAsyncStub
    from meshpb.stock.v1.stock_pb2_grpc import StockAsyncStub

T = TypeVar("T")
LIVE_PAYMENT_STATES = frozenset({pay_pb2.PAYMENT_STATUS_PENDING, pay_pb2.PAYMENT_STATUS_SUCCEEDED})


async def _call(call: Awaitable[T]) -> T:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        raise error_from_rpc(exc) from exc


class GrpcCatalogue:
    """SKUs from stock_svc's GetSkus."""

    def __init__(self, channel: grpc.aio.Channel, timeout_seconds: float) -> None:
        self._stub: StockAsyncStub = stock_pb2_grpc.StockStub(channel)
        self._timeout = timeout_seconds

    async def get_skus(self, skus: Collection[str]) -> Mapping[str, SkuInfo]:
        """The known SKUs among ``skus``."""
        request = stock_pb2.GetSkusRequest(skus=sorted(skus))
        response = await _call(self._stub.GetSkus(request, timeout=self._timeout))
        return {s.sku: SkuInfo(s.sku, s.merchant_id, s.price_cents) for s in response.skus}


class GrpcPayments:
    """External payments from pay_svc's CreatePayment (idempotent per order)."""

    def __init__(self, channel: grpc.aio.Channel, timeout_seconds: float) -> None:
        self._stub: PayAsyncStub = pay_pb2_grpc.PayStub(channel)
        self._timeout = timeout_seconds

    async def create_payment(self, order_id: str, user_id: str, amount_cents: int) -> PaymentTicket:
        """Create (or find) the external payment of ``order_id``."""
        request = pay_pb2.CreatePaymentRequest(
            order_id=order_id,
            user_id=user_id,
            amount_cents=amount_cents,
            channel=order_pb2.PAY_CHANNEL_EXTERNAL,
        )
        payment = await _call(self._stub.CreatePayment(request, timeout=self._timeout))
        return PaymentTicket(
            payment_id=payment.payment_id,
            token=payment.token,
            live=payment.status in LIVE_PAYMENT_STATES,
        )

    async def payment_live(self, payment_id: str) -> bool:
        """GetPayment: PENDING or SUCCEEDED (a FAILED or REFUNDED payment can no longer pay)."""
        request = pay_pb2.GetPaymentRequest(payment_id=payment_id)
        payment = await _call(self._stub.GetPayment(request, timeout=self._timeout))
        return payment.status in LIVE_PAYMENT_STATES
