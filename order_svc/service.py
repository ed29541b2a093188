"""The order service's rules behind the servicer: one facade over placing, paying, cancelling, branches.

No grpc here: peers are reached through the protocols of :mod:`order_svc.adapters.ports`. Input is validated
(INVALID_ARGUMENT naming the field) before anything is read or changed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Sequence

from meshkit.errors import InvalidArgument, MeshError
from meshkit.runtime.clock import Clock, now_ms
from order_svc.cancelling import Canceller
from order_svc.config import OrderSection
from order_svc.orders.branches import OrderBranches
from order_svc.orders.lifecycle import Actor, transition, visible_order
from order_svc.orders.queries import OrderRepo
from order_svc.orders.states import OrderState
from order_svc.orders.values import (
    Channel,
    Order,
    Page,
    PaymentVerdict,
    PayOutcome,
    PlaceRequest,
    PlaceResult,
)
from order_svc.paying import Payer
from order_svc.placing.place_order import Placement
from order_svc.placing.rules import MAX_ID_LEN, check_id

log = logging.getLogger(__name__)

MAX_ORDER_ID_LEN = 32
MAX_PAYMENT_ID_LEN = 128
MAX_REASON_LEN = 256
DEFAULT_PAGE = 50
MAX_PAGE = 500
MAX_CURSOR_LEN = 128
API = "api"
EXPIRE_CONCURRENCY = 32  # cancels at once (one write each on the store runner: no lock queue)
MAX_SWEEP_ROUNDS = 20  # batches of overdue orders per sweep


def check_order_id(order_id: str, field: str = "order_id") -> str:
    """An order id: 1..32 printable characters without whitespace."""
    return check_id(field, order_id, MAX_ORDER_ID_LEN)


def encode_cursor(order: Order) -> str:
    """The opaque cursor continuing after ``order``."""
    return base64.urlsafe_b64encode(f"{order.created_at_ms}:{order.order_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, str] | None:
    """``(created_at_ms, order_id)`` of a cursor; None for the empty cursor; InvalidArgument if malformed."""
    if not cursor:
        return None
    if len(cursor) > MAX_CURSOR_LEN:
        raise InvalidArgument("page.cursor", "malformed cursor")
    try:
        created, _, order_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        return int(created), check_order_id(order_id, "page.cursor")
    except (ValueError, UnicodeDecodeError, binascii.Error, InvalidArgument):
        raise InvalidArgument("page.cursor", "malformed cursor") from None


def page_limit(limit: int) -> int:
    """The page size asked for: 1..500, 0 = the default 50."""
    if limit == 0:
        return DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument("page.limit", f"must be 0..{MAX_PAGE}, got {limit}")
    return limit


def check_reason(reason: str) -> str:
    """A cancel reason: at most 256 printable characters (may be empty)."""
    if len(reason) > MAX_REASON_LEN:
        raise InvalidArgument("reason", f"longer than {MAX_REASON_LEN} characters")
    if not reason.isprintable():
        raise InvalidArgument("reason", "must be printable")
    return reason


class OrderService:
    """Every order RPC's domain side."""

    def __init__(
        self,
        *,
        repo: OrderRepo,
        placement: Placement,
        payer: Payer,
        canceller: Canceller,
        branches: OrderBranches,
        clock: Clock,
        settings: OrderSection,
    ) -> None:
        self.repo = repo
        self.placement = placement
        self.payer = payer
        self.canceller = canceller
        self.branches = branches
        self._clock = clock
        self._settings = settings

    # ------------------------------------------------------------------ public RPCs

    async def place_order(self, request: PlaceRequest) -> PlaceResult:
        """PlaceOrder (see :mod:`order_svc.placing.place_order`)."""
        return await self.placement.place(request)

    async def get_order(self, order_id: str) -> Order:
        """The visible order ``order_id``, cancelled first when it is overdue (passive close)."""
        check_order_id(order_id)
        async with self.repo.transaction() as session:
            order = await visible_order(self.repo, session, order_id)
        return await self.canceller.close_if_overdue(order)

    async def list_orders(self, user_id: str, cursor: str, limit: int) -> Page:
        """A page of ``user_id``'s orders, newest first."""
        check_id("user_id", user_id, MAX_ID_LEN)
        size = page_limit(limit)
        after = decode_cursor(cursor)
        found = await self.repo.list_for_user(user_id, size + 1, after)
        page = tuple(found[:size])
        next_cursor = encode_cursor(page[-1]) if len(found) > size else ""
        return Page(orders=page, next_cursor=next_cursor)

    async def pay(self, order_id: str, channel: Channel) -> PayOutcome:
        """Pay ``order_id`` with points or through the external gateway."""
        check_order_id(order_id)
        if channel not in (Channel.POINTS, Channel.EXTERNAL):
            raise InvalidArgument("channel", "must be PAY_CHANNEL_POINTS or PAY_CHANNEL_EXTERNAL")
        return await self.payer.pay(order_id, channel)

    async def payment_succeeded(self, order_id: str, payment_id: str, amount_cents: int) -> PaymentVerdict:
        """pay_svc reports a verified external payment."""
        check_order_id(order_id)
        check_id("payment_id", payment_id, MAX_PAYMENT_ID_LEN)
        if amount_cents < 0:
            raise InvalidArgument("amount_cents", "must be >= 0")
        return await self.payer.payment_succeeded(order_id, payment_id, amount_cents)

    async def cancel(self, order_id: str, reason: str) -> Order:
        """Cancel ``order_id`` (CREATED -> CANCELLED, PAID -> REFUNDING -> REFUNDED)."""
        check_order_id(order_id)
        check_reason(reason)
        return await self.canceller.cancel(order_id, reason, API)

    async def ship(self, order_id: str) -> Order:
        """PAID -> SHIPPED."""
        return await self._advance(order_id, OrderState.SHIPPED, "shipped")

    async def complete(self, order_id: str) -> Order:
        """SHIPPED -> COMPLETED."""
        return await self._advance(order_id, OrderState.COMPLETED, "completed")

    async def _advance(self, order_id: str, target: OrderState, reason: str) -> Order:
        check_order_id(order_id)
        async with self.repo.transaction() as session:
            order = await visible_order(self.repo, session, order_id)
            await transition(
                self.repo, session, order, target, reason=reason, actor=Actor(API), now_ms=now_ms(self._clock)
            )
            return await visible_order(self.repo, session, order_id)

    async def audit(self) -> list[Order]:
        """Every visible order (the audit's view)."""
        return await self.repo.visible()

    # ------------------------------------------------------------------ background

    async def expire(self, order_id: str) -> bool:
        """The pay deadline of ``order_id`` fired: cancel it if still overdue."""
        return await self.canceller.expire(order_id)

    async def expire_many(self, order_ids: Sequence[str]) -> int:
        """Pay deadlines fired: cancel those still overdue, :data:`EXPIRE_CONCURRENCY` at a time.

        Returns how many were cancelled; one that cannot be cancelled now (the mesh unreachable) is
        logged and left to the next fire or sweep.
        """
        limit = asyncio.Semaphore(EXPIRE_CONCURRENCY)

        async def one(order_id: str) -> bool:
            async with limit:
                try:
                    return await self.canceller.expire(order_id)
                except MeshError as exc:
                    log.warning("order %s not cancelled yet (%s)", order_id, exc)
                    return False

        return sum(await asyncio.gather(*(one(order_id) for order_id in order_ids)))

    async def sweep_once(self) -> int:
        """One sweep: cancel overdue orders, settle lost PlaceOrder requests; how many were handled.

        Overdue orders are taken most overdue first, ``sweep_batch`` at a time, until a batch comes
        back short (at most :data:`MAX_SWEEP_ROUNDS` batches per sweep).
        """
        batch = self._settings.sweep_batch
        handled = 0
        for _ in range(MAX_SWEEP_ROUNDS):
            due = await self.repo.overdue(now_ms(self._clock), batch)
            handled += await self.expire_many(due)
            if len(due) < batch:
                break
        return handled + await self.placement.sweep(batch)
