"""The order domain's values: items, orders, placing plans and requests (plain dataclasses, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from order_svc.orders.states import OrderState


class Channel(IntEnum):
    """How an order was (or is being) paid; the values are those of ``order.v1.PayChannel``."""

    NONE = 0
    POINTS = 1
    EXTERNAL = 2


@dataclass(frozen=True, slots=True)
class Item:
    """One line of an order: ``quantity`` units of ``sku`` at ``unit_price_cents`` each."""

    sku: str
    merchant_id: str
    quantity: int
    unit_price_cents: int

    @property
    def line_cents(self) -> int:
        """What the line costs."""
        return self.quantity * self.unit_price_cents


@dataclass(frozen=True, slots=True)
class SkuInfo:
    """A SKU as the stock catalogue knows it."""

    sku: str
    merchant_id: str
    price_cents: int


@dataclass(frozen=True, slots=True)
class PlaceRequest:
    """What PlaceOrder was asked."""

    request_id: str
    user_id: str
    items: tuple[Item, ...]
    points_to_use: int


@dataclass(frozen=True, slots=True)
class NewOrder:
    """An order a PlaceOrder transaction creates (one per merchant)."""

    order_id: str
    user_id: str
    merchant_id: str
    items: tuple[Item, ...]
    total_cents: int
    points_used: int

    @property
    def amount_due_cents(self) -> int:
        """What Pay charges: the total minus the points used."""
        return self.total_cents - self.points_used


@dataclass(frozen=True, slots=True)
class PlacePlan:
    """One PlaceOrder transaction: its gid, its orders and the points it freezes."""

    request_id: str
    user_id: str
    gid: str
    orders: tuple[NewOrder, ...]
    points_to_use: int

    @property
    def order_ids(self) -> tuple[str, ...]:
        """The ids of the orders, in plan order."""
        return tuple(order.order_id for order in self.orders)

    def stock_items(self) -> tuple[tuple[str, int], ...]:
        """Every SKU of every order with its total quantity, in first-seen order."""
        return aggregate_items(item for order in self.orders for item in order.items)


def aggregate_items(items: Iterable[Item]) -> tuple[tuple[str, int], ...]:
    """``(sku, quantity)`` pairs summed per SKU, in first-seen order."""
    totals: dict[str, int] = {}
    for item in items:
        totals[item.sku] = totals.get(item.sku, 0) + item.quantity
    return tuple(totals.items())


@dataclass(frozen=True, slots=True)
class PlaceResult:
    """What PlaceOrder answers."""

    order_ids: tuple[str, ...]
    gid: str


@dataclass(frozen=True, slots=True)
class Order:
    """An order as stored."""

    order_id: str
    request_id: str
    gid: str
    user_id: str
    merchant_id: str
    status: OrderState
    version: int
    total_cents: int
    points_used: int
    amount_due_cents: int
    channel: Channel
    payment_id: str | None
    paying_gid: str | None
    created_at_ms: int
    updated_at_ms: int
    pay_deadline_ms: int | None
    paid_at_ms: int | None
    reason: str
    items: tuple[Item, ...] = field(default=())

    @property
    def external_attempt(self) -> str | None:
        """The id of the external payment Pay started for this still-CREATED order, if any.

        One live payment attempt per order: while it is set, another channel is refused.
        """
        if self.status is OrderState.CREATED and self.channel is Channel.EXTERNAL:
            return self.payment_id
        return None

    def overdue(self, now_ms: int) -> bool:
        """True for a CREATED order, not being paid, whose pay deadline has passed."""
        return (
            self.status is OrderState.CREATED
            and self.paying_gid is None
            and self.pay_deadline_ms is not None
            and self.pay_deadline_ms <= now_ms
        )


class RequestState(StrEnum):
    """Where a PlaceOrder request (idempotency key) stands."""

    PENDING = "pending"  # its transaction is running (or its initiator was lost)
    PLACED = "placed"  # the orders exist
    FAILED = "failed"  # rolled back; a retry answers the same failure


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """The idempotency record of one ``request_id``."""

    request_id: str
    user_id: str
    fingerprint: str
    gid: str
    order_ids: tuple[str, ...]
    state: RequestState
    reason: str
    lease_until_ms: int
    created_at_ms: int


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One row of an order's history: a transition, who made it, why, under which transaction."""

    order_id: str
    from_status: OrderState | None
    to_status: OrderState
    reason: str
    actor: str
    gid: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a user's orders, newest first; ``next_cursor`` is empty on the last page."""

    orders: tuple[Order, ...]
    next_cursor: str


@dataclass(frozen=True, slots=True)
class PaymentTicket:
    """An external payment as pay_svc created it (``live``: PENDING or SUCCEEDED, not FAILED/REFUNDED)."""

    payment_id: str
    token: str
    live: bool = True


@dataclass(frozen=True, slots=True)
class PayOutcome:
    """What Pay answers."""

    payment_id: str
    token: str
    status: OrderState


@dataclass(frozen=True, slots=True)
class PaymentVerdict:
    """What PaymentSucceeded answers: whether the order took the payment, and its state."""

    accepted: bool
    status: OrderState
