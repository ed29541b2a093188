"""The flash sale (DESIGN.md section 6): PutFlashSale, GetFlashSale, FlashBuy, GetFlashResult.

No grpc here. The pieces: :mod:`order_svc.flash.rules` (pure rules), :mod:`order_svc.flash.sales` (sales
and their Redis copies), :mod:`order_svc.flash.hot` (Redis scripts), :mod:`order_svc.flash.flags` (the
local sold-out flags), :mod:`order_svc.flash.queue` (JetStream work queue, restock broadcast),
:mod:`order_svc.flash.jobs` (the workers), :mod:`order_svc.flash.queries` (tables).

Sales. ``PutFlashSale`` (an admin RPC, like stock_svc's PutSku) checks the request, checks that the SKU
exists in stock_svc and belongs to the merchant, stores the sale durably and loads its quota into Redis
(set-if-absent). A sale's terms never change; the same terms again answer the sale (idempotent), other
terms are refused with ALREADY_EXISTS naming them. ``GetFlashSale`` answers the sale with the units left
and its tickets per state.

FlashBuy, in this order:

1. Input checks (INVALID_ARGUMENT naming the field): ids, quantity (0 = 1, at most the per-user limit),
   the SKU of the sale. NOT_FOUND for an unknown sale. Nothing is written before this point.
2. The window ``[starts_at, ends_at)``: outside it FAILED_PRECONDITION naming the window. (After the end,
   and while the work queue is unreachable, a retry whose ticket exists is answered from its ticket.)
3. The work queue must be reachable, else UNAVAILABLE: no units are taken that could not be queued.
4. Per-user rate limit in Redis: more than ``order.flash_rate_limit_per_second`` calls of one user in one
   second -> RESOURCE_EXHAUSTED.
5. The node's local sold-out flag: set -> FAILED_PRECONDITION "sold out" at once, without Redis (a retry
   whose ticket the flag knows goes on, see :mod:`order_svc.flash.flags`).
6. One Lua script, all-or-nothing: the ticket's idempotency check, the user's units against the per-user
   limit, the quota. Outcomes:

   * taken -> the ticket (derived from ``sale_id`` + ``request_id``) is stored ``pending``, its job is
     published to the work queue, and FlashBuy answers ``{ticket, PENDING}``;
   * the ticket exists (a retry with the same ``request_id``) -> its current state ``{ticket, state}``
     (INVALID_ARGUMENT on ``request_id`` when the retry asks for another user or quantity); a ticket
     whose row or job was lost in a crash of the first call is stored / queued now;
   * the user holds the limit already -> FAILED_PRECONDITION (the user bought already);
   * not enough units -> FAILED_PRECONDITION "sold out" (and, when none is left, the local flag is set).

   Refusals are errors rather than a FAILED ticket: a refused call leaves nothing behind to look up.

A ticket stored but not queued (the queue failed right then: FlashBuy answered UNAVAILABLE) is queued by
the flash sweeper later, so a job is never lost; a retry with the same ``request_id`` answers its ticket.
A crash between the script and the ticket row leaves units taken without a ticket until a retry of the
same request writes it (or the sale's Redis copy is reloaded): the sale may undersell, never oversell.

Workers place the order (:mod:`order_svc.flash.jobs`); ``GetFlashResult(ticket)`` answers PENDING,
SUCCEEDED with the order id, or FAILED with the reason; NOT_FOUND for an unknown ticket.

The order a flash ticket makes is an ordinary order from then on (pay deadline, cancel): cancelling it
gives its stock back to stock_svc, not its units to the flash sale, which stays sold as it was.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace

from meshkit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    MeshError,
    NotFound,
    TransientError,
)
from meshkit.runtime.clock import Clock, now_ms
from order_svc.adapters.ports import Catalogue, FlashQueue
from order_svc.config import OrderSection
from order_svc.flash.flags import SoldOutFlags
from order_svc.flash.hot import BuyKind, BuyOutcome, FlashHot
from order_svc.flash.queries import FlashRepo
from order_svc.flash.rules import (
    BuyAnswer,
    BuyRequest,
    FlashSale,
    FlashState,
    FlashTicket,
    SaleView,
    TicketEntry,
    check_buy,
    check_buy_against,
    check_sale,
    check_sale_id,
    check_ticket,
    new_ticket,
    ticket_of,
)
from order_svc.flash.sales import SaleBook

log = logging.getLogger(__name__)


class SoldOut(FailedPrecondition):
    """Not enough units left in the sale (FAILED_PRECONDITION)."""


def sold_out(sale: FlashSale, left: int = 0) -> SoldOut:
    """The refusal of a sale with ``left`` units (too few for the request)."""
    if left <= 0:
        return SoldOut(f"flash sale {sale.sale_id} is sold out")
    return SoldOut(f"flash sale {sale.sale_id} is sold out: only {left} unit(s) left")


class FlashService:
    """The flash sale RPCs' domain side (see the module docstring)."""

    def __init__(
        self,
        *,
        repo: FlashRepo,
        sales: SaleBook,
        hot: FlashHot,
        queue: FlashQueue,
        flags: SoldOutFlags,
        catalogue: Catalogue,
        clock: Clock,
        settings: OrderSection,
    ) -> None:
        self.repo = repo
        self.sales = sales
        self.hot = hot
        self.flags = flags
        self._queue = queue
        self._catalogue = catalogue
        self._clock = clock
        self._settings = settings

    # ------------------------------------------------------------------ sales

    async def put_sale(self, sale: FlashSale) -> SaleView:
        """Create the sale (or answer it again when it exists with the same terms) and load its quota."""
        sale = check_sale(sale)
        existing = await self.repo.get_sale(sale.sale_id)
        if existing is None:
            await self._check_catalogue(sale)
            created = replace(sale, created_at_ms=now_ms(self._clock))
            existing = (
                created if await self.repo.insert_sale(created) else await self.repo.get_sale(sale.sale_id)
            )
            if existing is None:
                raise TransientError(f"flash sale {sale.sale_id}: row vanished; retry")
        differences = existing.differences(sale)
        if differences:
            raise AlreadyExists(
                f"flash sale {sale.sale_id} exists with other terms ({', '.join(differences)}); "
                "a sale's terms never change"
            )
        self.sales.remember(existing)
        return await self._view(existing)

    async def get_sale(self, sale_id: str) -> SaleView:
        """The sale with its live counters."""
        check_sale_id(sale_id)
        return await self._view(await self.sales.get(sale_id))

    async def _view(self, sale: FlashSale) -> SaleView:
        remaining = await self.sales.ensure_loaded(sale)
        counts = await self.repo.counts(sale.sale_id)
        return SaleView(
            sale=sale,
            remaining=remaining,
            pending=counts[FlashState.PENDING],
            succeeded=counts[FlashState.SUCCEEDED],
            failed=counts[FlashState.FAILED],
        )

    async def _check_catalogue(self, sale: FlashSale) -> None:
        known = await self._catalogue.get_skus({sale.sku})
        info = known.get(sale.sku)
        if info is None:
            raise InvalidArgument("sku", f"unknown SKU {sale.sku!r}")
        if info.merchant_id != sale.merchant_id:
            raise InvalidArgument(
                "merchant_id",
                f"SKU {sale.sku!r} belongs to merchant {info.merchant_id!r}, not {sale.merchant_id!r}",
            )

    # ------------------------------------------------------------------ buying

    async def buy(self, request: BuyRequest) -> BuyAnswer:
        """FlashBuy (see the module docstring for the order of the checks)."""
        request = check_buy(request)
        sale = await self.sales.get(request.sale_id)
        check_buy_against(request, sale)
        ticket = ticket_of(sale.sale_id, request.request_id)
        now = now_ms(self._clock)
        if now >= sale.ends_at_ms or not self._queue.available:
            found = await self.repo.get_ticket(ticket)
            if found is not None:
                return self._answer_retry(found, request)
        sale.check_open(now)
        if not self._queue.available:
            raise TransientError("flash work queue unreachable; nothing was taken; retry later")
        await self.hot.admit(request.user_id, self._clock.now(), self._settings.flash_rate_limit_per_second)
        known = self.flags.tickets(sale.sale_id)
        if known is not None and ticket not in known:
            raise sold_out(sale)
        entry = TicketEntry(held=True, quantity=request.quantity, user_id=request.user_id)
        outcome = await self.sales.with_copy(
            sale,
            lambda: self.hot.buy(sale.sale_id, ticket, entry),
            lambda found: found.kind is BuyKind.NOT_LOADED,
        )
        return await self._settle(sale, request, ticket, outcome)

    async def _settle(
        self, sale: FlashSale, request: BuyRequest, ticket: str, outcome: BuyOutcome
    ) -> BuyAnswer:
        """Turn the script's outcome into FlashBuy's answer."""
        if outcome.kind is BuyKind.TAKEN:
            await self.repo.insert_ticket(new_ticket(sale, request, ticket, now_ms(self._clock)))
            await self._queue_job(ticket)
            return BuyAnswer(ticket, FlashState.PENDING)
        if outcome.kind is BuyKind.DUPLICATE and outcome.entry is not None:
            return await self._duplicate(sale, request, ticket, outcome.entry)
        if outcome.kind is BuyKind.USER_LIMIT:
            raise FailedPrecondition(
                f"user {request.user_id} already holds {outcome.count} of the {sale.per_user_limit} unit(s) "
                f"allowed per user in flash sale {sale.sale_id}"
            )
        if outcome.count <= 0:
            with contextlib.suppress(MeshError):  # the flag is an optimisation; the refusal stands anyway
                self.flags.set(sale.sale_id, await self.hot.ticket_ids(sale.sale_id))
        raise sold_out(sale, outcome.count)

    async def _duplicate(
        self, sale: FlashSale, request: BuyRequest, ticket: str, entry: TicketEntry
    ) -> BuyAnswer:
        """A retry of a FlashBuy that got ``ticket``: its state (storing / queueing what a crash lost)."""
        if not entry.matches(request):
            raise InvalidArgument("request_id", "already used for a different FlashBuy in this sale")
        found = await self.repo.get_ticket(ticket)
        if found is None:
            if not entry.held:
                raise TransientError(f"ticket {ticket} is being settled; retry")
            log.warning("flash ticket %s had no row (its first FlashBuy was lost); storing it now", ticket)
            await self.repo.insert_ticket(new_ticket(sale, request, ticket, now_ms(self._clock)))
            found = await self.repo.get_ticket(ticket)
            if found is None:
                raise TransientError(f"ticket {ticket}: row vanished; retry")
        if found.state is FlashState.PENDING and not found.queued:
            await self._queue_job(ticket)
        return self._answer_retry(found, request)

    @staticmethod
    def _answer_retry(found: FlashTicket, request: BuyRequest) -> BuyAnswer:
        if found.user_id != request.user_id or found.quantity != request.quantity:
            raise InvalidArgument("request_id", "already used for a different FlashBuy in this sale")
        return BuyAnswer(found.ticket, found.state)

    async def _queue_job(self, ticket: str) -> None:
        """Publish the ticket's job and note it; UNAVAILABLE when the queue failed (the sweeper queues it)."""
        try:
            await self._queue.publish_job(ticket)
        except TransientError as exc:
            raise TransientError(
                f"ticket {ticket} is stored but its job is not queued yet ({exc}); "
                "it will be; retry with the same request_id to see it"
            ) from exc
        await self.repo.mark_queued(ticket, now_ms(self._clock))

    # ------------------------------------------------------------------ results, broadcasts

    async def result(self, ticket: str) -> FlashTicket:
        """GetFlashResult: the ticket; NotFound when unknown."""
        check_ticket(ticket)
        found = await self.repo.get_ticket(ticket)
        if found is None:
            raise NotFound(f"flash ticket {ticket} not found")
        return found

    def on_restocked(self, sale_id: str) -> None:
        """A give-back somewhere put units back into ``sale_id``: drop this node's sold-out flag."""
        if self.flags.clear(sale_id):
            log.info("flash sale %s has units again: local sold-out flag cleared", sale_id)
