"""The flash workers: one job per ticket places its order; failures give the units back once.

Every order_svc replica runs workers on the shared work queue (:mod:`order_svc.flash.queue`), which acks
a job when :meth:`FlashJobs.run` returns and redelivers it (after a delay) when it raises. A job:

1. reads its ticket; a ticket already final is acked and ignored (after finishing a give-back that a crash
   may have left owed); an unknown ticket is retried later (never dropped);
2. counts the attempt on the ticket, then places the order through the normal PlaceOrder path
   (:class:`order_svc.placing.place_order.Placement`: the same TCC over stock, points and order, idempotent on
   ``request_id`` = the ticket, so a redelivered job never places a second order): one item, the sale's
   SKU, merchant and quantity at the **sale's** unit price (the catalogue price check is skipped; SKU and
   merchant are still checked), no points;
3. placed -> the ticket becomes ``succeeded`` with the order id; a business failure (stock_svc refused the
   reservation, the order was rolled back, the request no longer valid) -> ``failed`` with the reason,
   then the give-back; any other failure (a peer, the coordinator or the database unreachable, the
   outcome unknown) propagates: the job is nak'ed and comes back later.

Give-back: the ticket is marked failed in the database first (give-back owed), then one Lua script puts
its units back into the quota and takes them off the user (once per ticket: the Redis copy marks the
ticket returned), then the database notes it done, the node clears its own sold-out flag and broadcasts
"sale has units again" to every replica. A crash anywhere in between leaves the give-back owed: the
redelivered job, or the flash sweeper, finishes it, and the script makes sure it counts once.

The flash sweeper (every ``order.flash_sweep_interval_seconds``) also queues pending tickets whose job
was never confirmed queued (FlashBuy answered UNAVAILABLE after storing the ticket, or crashed).
"""

from __future__ import annotations

import logging

from meshkit.errors import BranchFailure, InvalidArgument, MeshError, TransientError
from meshkit.runtime.clock import Clock, now_ms
from order_svc.adapters.ports import FlashQueue
from order_svc.config import OrderSection
from order_svc.flash.flags import SoldOutFlags
from order_svc.flash.hot import FlashHot
from order_svc.flash.queries import FlashRepo
from order_svc.flash.rules import FlashTicket
from order_svc.flash.sales import SaleBook
from order_svc.orders.values import Item, PlaceRequest
from order_svc.placing.place_order import Placement

log = logging.getLogger(__name__)

MS = 1000


def place_request(ticket: FlashTicket) -> PlaceRequest:
    """The PlaceOrder request of a ticket: its request id is the ticket."""
    item = Item(ticket.sku, ticket.merchant_id, ticket.quantity, ticket.unit_price_cents)
    return PlaceRequest(request_id=ticket.ticket, user_id=ticket.user_id, items=(item,), points_to_use=0)


class FlashJobs:
    """Runs flash jobs, gives back the units of failed tickets, sweeps what a crash left behind."""

    def __init__(
        self,
        *,
        repo: FlashRepo,
        sales: SaleBook,
        hot: FlashHot,
        queue: FlashQueue,
        flags: SoldOutFlags,
        placement: Placement,
        clock: Clock,
        settings: OrderSection,
    ) -> None:
        self._repo = repo
        self._sales = sales
        self._hot = hot
        self._queue = queue
        self._flags = flags
        self._placement = placement
        self._clock = clock
        self._settings = settings

    async def run(self, ticket_id: str) -> None:
        """One job (see the module docstring); raises to have it redelivered later."""
        ticket = await self._repo.get_ticket(ticket_id)
        if ticket is None:
            raise TransientError(f"flash ticket {ticket_id} not found (yet); the job comes back later")
        if ticket.state.final:
            if ticket.give_back_owed:
                await self.give_back(ticket)
            log.info("flash job %s: ticket already %s; ignored", ticket_id, ticket.state.value)
            return
        await self._repo.count_attempt(ticket_id, now_ms(self._clock))
        try:
            result = await self._placement.place(place_request(ticket), check_prices=False)
        except (BranchFailure, InvalidArgument) as exc:
            await self._fail(ticket, str(exc))
            return
        order_id = result.order_ids[0]
        if await self._repo.succeed(ticket_id, order_id, now_ms(self._clock)):
            log.info("flash ticket %s succeeded: order %s", ticket_id, order_id, extra={"order_id": order_id})

    async def _fail(self, ticket: FlashTicket, reason: str) -> None:
        if await self._repo.fail(ticket.ticket, reason, now_ms(self._clock)):
            log.info("flash ticket %s failed: %s", ticket.ticket, reason)
        current = await self._repo.get_ticket(ticket.ticket)
        if current is not None and current.give_back_owed:
            await self.give_back(current)

    async def give_back(self, ticket: FlashTicket) -> None:
        """Put a failed ticket's units back (once), clear the sold-out flags, broadcast the restock."""
        sale = await self._sales.get(ticket.sale_id)
        done = await self._sales.with_copy(
            sale,
            lambda: self._hot.give_back(sale.sale_id, ticket.ticket, ticket.entry()),
            lambda code: code < 0,
        )
        await self._repo.mark_returned(ticket.ticket, now_ms(self._clock))
        if done:
            log.info(
                "flash sale %s: %d unit(s) of ticket %s given back",
                sale.sale_id,
                ticket.quantity,
                ticket.ticket,
            )
        self._flags.clear(sale.sale_id)
        await self._queue.broadcast_restock(sale.sale_id)

    async def sweep_once(self) -> int:
        """Queue never-queued pending tickets and finish owed give-backs; how many were handled."""
        handled = 0
        batch = self._settings.sweep_batch
        if self._queue.available:
            before = now_ms(self._clock) - round(self._settings.flash_requeue_after_seconds * MS)
            for ticket in await self._repo.unqueued(before, batch):
                try:
                    await self._queue.publish_job(ticket.ticket)
                except MeshError as exc:
                    log.warning("flash sweep: job of %s not queued yet (%s)", ticket.ticket, exc)
                    break
                await self._repo.mark_queued(ticket.ticket, now_ms(self._clock))
                handled += 1
        for ticket in await self._repo.owed(batch):
            try:
                await self.give_back(ticket)
            except MeshError as exc:
                log.warning("flash sweep: give-back of %s not done yet (%s)", ticket.ticket, exc)
                continue
            handled += 1
        return handled
