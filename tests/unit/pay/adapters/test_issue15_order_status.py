"""Issue 15 review item 4: an order status number pay_svc does not know refuses the refund check."""

from __future__ import annotations

from meshpb.order.v1 import order_pb2
from pay_svc.adapters.grpc_clients import order_status_text
from pay_svc.payments.domain import REFUNDABLE_ORDER_STATES


def test_issue15_item4_unknown_order_status_is_named_not_raised() -> None:
    unknown = max(order_pb2.OrderStatus.values()) + 41
    text = order_status_text(unknown)
    assert text == f"UNKNOWN({unknown})"
    assert text not in REFUNDABLE_ORDER_STATES


def test_issue15_item4_known_order_status_keeps_its_name() -> None:
    assert order_status_text(order_pb2.ORDER_STATUS_CANCELLED) == "CANCELLED"
    assert "CANCELLED" in REFUNDABLE_ORDER_STATES
