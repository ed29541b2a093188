"""Protobuf messages <-> order domain values (the servicer's and the adapters' only translation layer)."""

from __future__ import annotations

from meshkit.errors import InvalidArgument
from meshkit.rpc.pbtime import timestamp
from meshpb.order.v1 import order_pb2 as pb
from order_svc.adapters.ports import PointsPayment
from order_svc.orders.branches import MarkPaid
from order_svc.orders.states import OrderState
from order_svc.orders.values import Channel, Item, NewOrder, Order, PlacePlan, PlaceRequest
from order_svc.placing.rules import MAX_REQUEST_ID_LEN, check_id

STATUS_PB: dict[OrderState, pb.OrderStatus.ValueType] = {
    OrderState.CREATED: pb.ORDER_STATUS_CREATED,
    OrderState.PAID: pb.ORDER_STATUS_PAID,
    OrderState.SHIPPED: pb.ORDER_STATUS_SHIPPED,
    OrderState.COMPLETED: pb.ORDER_STATUS_COMPLETED,
    OrderState.CANCELLED: pb.ORDER_STATUS_CANCELLED,
    OrderState.REFUNDING: pb.ORDER_STATUS_REFUNDING,
    OrderState.REFUNDED: pb.ORDER_STATUS_REFUNDED,
}
MAX_ORDERS_PER_BRANCH = 10_000


def status_pb(state: OrderState) -> pb.OrderStatus.ValueType:
    """The wire status of ``state`` (UNSPECIFIED for the hidden internal states)."""
    return STATUS_PB.get(state, pb.ORDER_STATUS_UNSPECIFIED)


def channel_of(value: int) -> Channel:
    """The domain channel of a wire ``PayChannel`` (unknown values are UNSPECIFIED = NONE)."""
    try:
        return Channel(value)
    except ValueError:
        return Channel.NONE


def item(message: pb.OrderItem) -> Item:
    """A domain item."""
    return Item(
        sku=message.sku,
        merchant_id=message.merchant_id,
        quantity=message.quantity,
        unit_price_cents=message.unit_price_cents,
    )


def item_pb(value: Item) -> pb.OrderItem:
    """A wire item."""
    return pb.OrderItem(
        sku=value.sku,
        merchant_id=value.merchant_id,
        quantity=value.quantity,
        unit_price_cents=value.unit_price_cents,
    )


def place_request(message: pb.PlaceOrderRequest) -> PlaceRequest:
    """The domain request of PlaceOrder."""
    return PlaceRequest(
        request_id=message.request_id,
        user_id=message.user_id,
        items=tuple(item(i) for i in message.items),
        points_to_use=message.points_to_use,
    )


def order_info(order: Order) -> pb.OrderInfo:
    """The wire view of an order."""
    return pb.OrderInfo(
        order_id=order.order_id,
        user_id=order.user_id,
        merchant_id=order.merchant_id,
        status=status_pb(order.status),
        total_cents=order.total_cents,
        points_used=order.points_used,
        items=[item_pb(i) for i in order.items],
        created_at=timestamp(order.created_at_ms),
        pay_deadline=timestamp(order.pay_deadline_ms),
        gid=order.gid,
        payment_id=order.payment_id or "",
        version=order.version,
    )


def audit_row(order: Order) -> pb.OrderAuditRow:
    """One order as the audit sees it."""
    return pb.OrderAuditRow(
        order_id=order.order_id,
        user_id=order.user_id,
        status=status_pb(order.status),
        channel=int(order.channel),  # type: ignore[arg-type]
        payment_id=order.payment_id or "",
        amount_due_cents=order.amount_due_cents,
        points_used=order.points_used,
        gid=order.gid,
        items=[item_pb(i) for i in order.items],
    )


# ---------------------------------------------------------------------- branch payloads


def create_orders_branch(plan: PlacePlan) -> pb.CreateOrdersBranch:
    """The payload of the order branch of a placing TCC."""
    return pb.CreateOrdersBranch(
        request_id=plan.request_id,
        orders=[
            pb.OrderInfo(
                order_id=o.order_id,
                user_id=o.user_id,
                merchant_id=o.merchant_id,
                total_cents=o.total_cents,
                points_used=o.points_used,
                items=[item_pb(i) for i in o.items],
                gid=plan.gid,
            )
            for o in plan.orders
        ],
    )


def new_orders(message: pb.CreateOrdersBranch) -> tuple[str, tuple[NewOrder, ...]]:
    """``(request_id, orders)`` of a CreateOrdersBranch payload; InvalidArgument when malformed."""
    check_id("request_id", message.request_id, MAX_REQUEST_ID_LEN)
    if not 1 <= len(message.orders) <= MAX_ORDERS_PER_BRANCH:
        raise InvalidArgument("orders", f"must hold 1..{MAX_ORDERS_PER_BRANCH} orders")
    result = []
    seen: set[str] = set()
    for index, o in enumerate(message.orders):
        check_id(f"orders[{index}].order_id", o.order_id, 32)
        if o.order_id in seen:
            raise InvalidArgument(f"orders[{index}].order_id", f"{o.order_id} is given twice")
        seen.add(o.order_id)
        check_id(f"orders[{index}].user_id", o.user_id)
        check_id(f"orders[{index}].merchant_id", o.merchant_id)
        if not o.items:
            raise InvalidArgument(f"orders[{index}].items", "at least one item is required")
        items = tuple(item(i) for i in o.items)
        if o.total_cents != sum(i.line_cents for i in items) or not 0 <= o.points_used <= o.total_cents:
            raise InvalidArgument(f"orders[{index}].total_cents", "does not match the items and points")
        result.append(
            NewOrder(
                order_id=o.order_id,
                user_id=o.user_id,
                merchant_id=o.merchant_id,
                items=items,
                total_cents=o.total_cents,
                points_used=o.points_used,
            )
        )
    return message.request_id, tuple(result)


def mark_paid_pb(payment: PointsPayment) -> pb.MarkPaidBranch:
    """The payload of the order branch of a points payment."""
    return pb.MarkPaidBranch(
        order_id=payment.order_id,
        payment_id=payment.payment_id,
        amount_cents=payment.amount_cents,
        channel=pb.PAY_CHANNEL_POINTS,
    )


def mark_paid(message: pb.MarkPaidBranch) -> MarkPaid:
    """A MarkPaidBranch payload; InvalidArgument when malformed."""
    check_id("order_id", message.order_id, 32)
    check_id("payment_id", message.payment_id, 128)
    if message.amount_cents < 0:
        raise InvalidArgument("amount_cents", "must be >= 0")
    channel = channel_of(message.channel)
    if channel is Channel.NONE:
        raise InvalidArgument("channel", "must be PAY_CHANNEL_POINTS or PAY_CHANNEL_EXTERNAL")
    return MarkPaid(
        order_id=message.order_id,
        payment_id=message.payment_id,
        amount_cents=message.amount_cents,
        channel=channel,
    )
