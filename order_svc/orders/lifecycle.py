"""Applying the state machine: a checked, compare-and-set transition with its history row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from meshkit.errors import NotFound
from meshkit.store import Conn
from order_svc.orders.queries import Condition, OrderRepo, cas_transition, read_order
from order_svc.orders.states import OrderState, check_transition, is_visible, refusal
from order_svc.orders.values import Order


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a transition and under which global transaction (empty gid: none)."""

    name: str
    gid: str = ""


def not_found(order_id: str) -> NotFound:
    """The error for an order that does not exist (or is not visible)."""
    return NotFound(f"order {order_id} not found")


async def visible_order(repo: OrderRepo, session: AsyncSession, order_id: str) -> Order:
    """The visible order ``order_id`` read in ``session``; NotFound for missing or hidden ones."""
    order = await repo.get(session, order_id)
    if order is None or not is_visible(order.status):
        raise not_found(order_id)
    return order


async def transition(
    repo: OrderRepo,
    session: AsyncSession,
    order: Order,
    target: OrderState,
    *,
    reason: str,
    actor: Actor,
    now_ms: int,
    values: Mapping[str, Any] | None = None,
    where: Sequence[ColumnElement[bool]] = (),
    why_refused: str = "",
) -> None:
    """Move ``order`` to ``target`` if the table allows it and nobody changed it meanwhile.

    Raises :class:`FailedPrecondition` naming both states when the table refuses it, or naming the state
    the order is in now when the compare-and-set lost (``why_refused`` explains extra conditions).
    """
    check_transition(order.order_id, order.status, target)
    won = await repo.transition(
        session,
        order,
        target,
        reason=reason,
        actor=actor.name,
        gid=actor.gid,
        now_ms=now_ms,
        values=values,
        where=where,
    )
    if won:
        return
    current = await repo.get(session, order.order_id, with_items=False)
    if current is None:
        raise not_found(order.order_id)
    changed = "changed concurrently" if current.version != order.version else why_refused
    raise refusal(order.order_id, current.status, target, changed)


def transition_in(
    conn: Conn,
    order: Order,
    target: OrderState,
    *,
    reason: str,
    actor: Actor,
    now_ms: int,
    values: Mapping[str, Any] | None = None,
    where: Sequence[Condition] = (),
    why_refused: str = "",
) -> None:
    """:func:`transition` as part of a unit of work on the store runner (same checks and refusals)."""
    check_transition(order.order_id, order.status, target)
    won = cas_transition(
        conn,
        order,
        target,
        reason=reason,
        actor=actor.name,
        gid=actor.gid,
        now_ms=now_ms,
        values=values,
        where=where,
    )
    if won:
        return
    current = read_order(conn, order.order_id)
    if current is None:
        raise not_found(order.order_id)
    changed = "changed concurrently" if current.version != order.version else why_refused
    raise refusal(order.order_id, current.status, target, changed)
