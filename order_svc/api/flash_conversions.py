"""Protobuf messages <-> flash sale domain values (the servicer's translation layer for the flash RPCs)."""

from __future__ import annotations

from meshkit.rpc.pbtime import timestamp, timestamp_ms
from meshpb.order.v1 import order_pb2 as pb
from order_svc.flash.rules import BuyRequest, FlashSale, FlashState, FlashTicket, SaleView

STATE_PB: dict[FlashState, pb.FlashState.ValueType] = {
    FlashState.PENDING: pb.FLASH_STATE_PENDING,
    FlashState.SUCCEEDED: pb.FLASH_STATE_SUCCEEDED,
    FlashState.FAILED: pb.FLASH_STATE_FAILED,
}


def state_pb(state: FlashState) -> pb.FlashState.ValueType:
    """The wire state of a ticket."""
    return STATE_PB[state]


def sale(message: pb.PutFlashSaleRequest) -> FlashSale:
    """The domain sale of PutFlashSale (a missing time becomes 0, which the rules refuse)."""
    return FlashSale(
        sale_id=message.sale_id,
        sku=message.sku,
        merchant_id=message.merchant_id,
        price_cents=message.price_cents,
        quantity=message.quantity,
        per_user_limit=message.per_user_limit,
        starts_at_ms=timestamp_ms(message.starts_at, "starts_at") if message.HasField("starts_at") else 0,
        ends_at_ms=timestamp_ms(message.ends_at, "ends_at") if message.HasField("ends_at") else 0,
    )


def sale_pb(view: SaleView) -> pb.FlashSale:
    """The wire view of a sale with its counters."""
    s = view.sale
    return pb.FlashSale(
        sale_id=s.sale_id,
        sku=s.sku,
        merchant_id=s.merchant_id,
        price_cents=s.price_cents,
        quantity=s.quantity,
        starts_at=timestamp(s.starts_at_ms),
        ends_at=timestamp(s.ends_at_ms),
        per_user_limit=s.per_user_limit,
        remaining=view.remaining,
        tickets_pending=view.pending,
        tickets_succeeded=view.succeeded,
        tickets_failed=view.failed,
    )


def buy_request(message: pb.FlashBuyRequest) -> BuyRequest:
    """The domain request of FlashBuy."""
    return BuyRequest(
        request_id=message.request_id,
        user_id=message.user_id,
        sale_id=message.sale_id,
        sku=message.sku,
        quantity=message.quantity,
    )


def result_pb(ticket: FlashTicket) -> pb.FlashResult:
    """GetFlashResult's answer."""
    return pb.FlashResult(
        ticket=ticket.ticket,
        state=state_pb(ticket.state),
        order_id=ticket.order_id or "",
        reason=ticket.reason,
    )
