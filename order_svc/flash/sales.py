"""Flash sales by id (cached per node: their terms never change) and the Redis copies of their quotas.

A sale's Redis copy is loaded from the database when it is missing (never created yet, expired, or lost
with Redis): the snapshot counts every ticket that still holds units (pending or succeeded) against the
sale's quantity, and the copy is created with the atomic set-if-absent script of
:mod:`order_svc.flash.hot`. A script that finds no copy answers "not loaded" before writing anything; the
caller loads and runs it again (:meth:`SaleBook.with_copy`).

The snapshot cannot see a ticket whose units were taken in a copy that was lost before its row was
written (a crash in that instant): such units are simply available again, and the ticket row written
later holds units the copy does not count. The flash quota then admits one ticket too many; the order
itself still cannot oversell (stock_svc reserves the real stock), that ticket would fail and give back.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TypeVar

from meshkit.errors import NotFound, TransientError
from meshkit.runtime.clock import Clock, now_ms
from order_svc.config import OrderSection
from order_svc.flash.hot import FlashHot
from order_svc.flash.queries import FlashRepo
from order_svc.flash.rules import FlashSale, snapshot

T = TypeVar("T")

CACHE_SIZE = 1024
LOAD_ATTEMPTS = 3
MS = 1000


class SaleBook:
    """Reads sales (through a small LRU cache) and loads their Redis copies."""

    def __init__(self, repo: FlashRepo, hot: FlashHot, clock: Clock, settings: OrderSection) -> None:
        self._repo = repo
        self._hot = hot
        self._clock = clock
        self._retention_ms = round(settings.flash_redis_retention_seconds * MS)
        self._cache: OrderedDict[str, FlashSale] = OrderedDict()

    async def get(self, sale_id: str) -> FlashSale:
        """The sale ``sale_id``; NotFound when there is none."""
        sale = self._cache.get(sale_id)
        if sale is not None:
            self._cache.move_to_end(sale_id)
            return sale
        found = await self._repo.get_sale(sale_id)
        if found is None:
            raise NotFound(f"flash sale {sale_id} not found")
        self.remember(found)
        return found

    def remember(self, sale: FlashSale) -> None:
        """Cache ``sale`` (the least recently used one goes when the cache is full)."""
        self._cache[sale.sale_id] = sale
        self._cache.move_to_end(sale.sale_id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    async def load(self, sale: FlashSale) -> bool:
        """Create the sale's Redis copy from the database unless one exists; True when this call did."""
        tickets = await self._repo.sale_tickets(sale.sale_id)
        expire_at = max(sale.ends_at_ms, now_ms(self._clock)) + self._retention_ms
        return await self._hot.load(sale, snapshot(sale, tickets), expire_at)

    async def ensure_loaded(self, sale: FlashSale) -> int:
        """Load the sale's copy if it is missing; the units left in it."""
        for _ in range(LOAD_ATTEMPTS):
            remaining = await self._hot.remaining(sale.sale_id)
            if remaining is not None:
                return remaining
            await self.load(sale)
        raise TransientError(f"flash sale {sale.sale_id}: its Redis copy keeps vanishing; retry")

    async def with_copy(
        self, sale: FlashSale, run: Callable[[], Awaitable[T]], missing: Callable[[T], bool]
    ) -> T:
        """``run()`` again after loading the copy, as long as ``missing(result)`` says it was not loaded."""
        for _ in range(LOAD_ATTEMPTS):
            result = await run()
            if not missing(result):
                return result
            await self.load(sale)
        raise TransientError(f"flash sale {sale.sale_id}: its Redis copy keeps vanishing; retry")
