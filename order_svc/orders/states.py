"""The order state machine (DESIGN.md section 6) as a table of allowed transitions. Pure: no I/O.

Public states (``OrderStatus`` on the wire)::

    CREATED -> PAID -> SHIPPED -> COMPLETED
    CREATED -> CANCELLED                     (user, pay deadline)
    PAID -> REFUNDING -> REFUNDED            (cancel after payment)

Two internal states hold the orders of a PlaceOrder transaction that has not finished yet; callers never
see them (GetOrder answers NOT_FOUND, lists skip them):

    PENDING -> CREATED                       (ConfirmCreate: the placing TCC committed)
    PENDING -> VOIDED                        (CancelCreate: it rolled back)

Every transition is applied as a compare-and-set on ``(status, version)`` by the repository; this module
only says which ones exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from meshkit.errors import FailedPrecondition


class OrderState(StrEnum):
    """Every state an order row can be in (the stored value is the name)."""

    PENDING = "PENDING"
    CREATED = "CREATED"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    REFUNDING = "REFUNDING"
    REFUNDED = "REFUNDED"
    VOIDED = "VOIDED"


TRANSITIONS: Mapping[OrderState, frozenset[OrderState]] = {
    OrderState.PENDING: frozenset({OrderState.CREATED, OrderState.VOIDED}),
    OrderState.CREATED: frozenset({OrderState.PAID, OrderState.CANCELLED}),
    OrderState.PAID: frozenset({OrderState.SHIPPED, OrderState.REFUNDING}),
    OrderState.SHIPPED: frozenset({OrderState.COMPLETED}),
    OrderState.REFUNDING: frozenset({OrderState.REFUNDED}),
    OrderState.COMPLETED: frozenset(),
    OrderState.CANCELLED: frozenset(),
    OrderState.REFUNDED: frozenset(),
    OrderState.VOIDED: frozenset(),
}

HIDDEN: frozenset[OrderState] = frozenset({OrderState.PENDING, OrderState.VOIDED})
FINAL: frozenset[OrderState] = frozenset(state for state, nxt in TRANSITIONS.items() if not nxt)


def is_allowed(current: OrderState, target: OrderState) -> bool:
    """True when ``current -> target`` is in the table."""
    return target in TRANSITIONS[current]


def refusal(order_id: str, current: OrderState, target: OrderState, why: str = "") -> FailedPrecondition:
    """The error for a refused transition, naming both states (and why, when it is not just the table)."""
    detail = f": {why}" if why else ""
    return FailedPrecondition(f"order {order_id} is {current.value}, cannot go to {target.value}{detail}")


def pending_external(order_id: str, payment_id: str) -> FailedPrecondition:
    """The refusal of another payment channel while the order's external payment is pending."""
    return FailedPrecondition(
        f"order {order_id} has a pending external payment {payment_id}: pay that one "
        "(Pay with the external channel answers it again), or cancel the order first"
    )


def check_transition(order_id: str, current: OrderState, target: OrderState) -> None:
    """Raise :class:`FailedPrecondition` naming both states unless ``current -> target`` is allowed."""
    if not is_allowed(current, target):
        raise refusal(order_id, current, target)


def is_visible(state: OrderState) -> bool:
    """True for the states callers may see."""
    return state not in HIDDEN
