"""The Stock gRPC servicer: messages -> :class:`~stock_svc.stock.domain.StockDomain` -> messages, no more.

Branch RPCs read the transaction context from the call's ``x-mesh-*`` metadata; domain errors are
mapped to status codes by the shared interceptor (meshkit.rpc.status).
"""

from __future__ import annotations

from meshpb.common.v1 import common_pb2
from meshpb.stock.v1 import stock_pb2, stock_pb2_grpc
from stock_svc.api import conversions
from stock_svc.stock.domain import StockDomain

Context = conversions.Context


class StockServicer(stock_pb2_grpc.StockServicer):
    """``meshpb.stock.v1.Stock`` over a :class:`StockDomain`."""

    def __init__(self, domain: StockDomain) -> None:
        self._domain = domain

    async def PutSku(self, request: stock_pb2.PutSkuRequest, context: Context) -> stock_pb2.StockLevel:
        """Create or restock a SKU, once per request id."""
        level = await self._domain.put_sku(
            request.sku, request.merchant_id, request.price_cents, request.quantity, request.request_id
        )
        return conversions.level_pb(level)

    async def GetStock(self, request: stock_pb2.GetStockRequest, context: Context) -> stock_pb2.StockLevel:
        """One SKU's available, reserved and sold stock."""
        return conversions.level_pb(await self._domain.get_stock(request.sku))

    async def GetSkus(self, request: stock_pb2.GetSkusRequest, context: Context) -> stock_pb2.GetSkusResponse:
        """The known SKUs among the requested ones."""
        skus = await self._domain.get_skus(list(request.skus))
        return stock_pb2.GetSkusResponse(
            skus=[
                stock_pb2.Sku(sku=s.sku, merchant_id=s.merchant_id, price_cents=s.price_cents) for s in skus
            ]
        )

    async def TryReserve(self, request: stock_pb2.ReserveRequest, context: Context) -> common_pb2.BranchReply:
        """TCC try: reserve every item in Redis, or none."""
        note = await self._domain.try_reserve(
            conversions.tx_context(context), conversions.items_of(request.items), list(request.order_ids)
        )
        return common_pb2.BranchReply(note=note)

    async def ConfirmReserve(
        self, request: stock_pb2.ReserveRequest, context: Context
    ) -> common_pb2.BranchReply:
        """TCC confirm: persist the sale, clear the reservation."""
        note = await self._domain.confirm_reserve(
            conversions.tx_context(context), conversions.items_of(request.items), list(request.order_ids)
        )
        return common_pb2.BranchReply(note=note)

    async def CancelReserve(
        self, request: stock_pb2.ReserveRequest, context: Context
    ) -> common_pb2.BranchReply:
        """TCC cancel: give the reservation back."""
        note = await self._domain.cancel_reserve(
            conversions.tx_context(context), conversions.items_of(request.items), list(request.order_ids)
        )
        return common_pb2.BranchReply(note=note)

    async def ReleaseStock(
        self, request: stock_pb2.ReleaseStockRequest, context: Context
    ) -> common_pb2.BranchReply:
        """MSG branch of the cancel chain: give persisted stock back."""
        note = await self._domain.release_stock(
            conversions.tx_context(context), conversions.items_of(request.items), request.order_id
        )
        return common_pb2.BranchReply(note=note)

    async def Audit(self, request: common_pb2.AuditRequest, context: Context) -> stock_pb2.StockAudit:
        """Per-SKU figures and the net sales per logged order ids, for ``meshctl audit``."""
        skus = [conversions.audit_pb(s) for s in await self._domain.audit()]
        refs = [conversions.sold_by_ref_pb(r) for r in await self._domain.audit_sold_by_ref()]
        return stock_pb2.StockAudit(skus=skus, sold_by_ref=refs)
