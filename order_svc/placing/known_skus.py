"""The catalogue as PlaceOrder reads it: prices always fresh, a SKU's existence and merchant cached.

stock_svc's catalogue (GetSkus) answers merchant and price per SKU. A SKU is never deleted and its
merchant never changes (PutSku refuses another merchant), so once seen both are safe to keep for the
life of the process. The price is NOT: PutSku takes a new price at any time, and an order must be
checked against the price of the moment. So a call that checks prices always reads the catalogue
(one GetSkus for every SKU of the request), and one that does not (a flash sale's order, priced by
the sale) is answered from the cache when every SKU is in it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from order_svc.adapters.ports import Catalogue
from order_svc.orders.values import SkuInfo

MAX_KNOWN = 100_000  # SKUs kept; past this the cache stops growing (reads go to the catalogue)


class KnownSkus:
    """A :class:`Catalogue` front that remembers which SKUs exist and their merchant (never their price)."""

    def __init__(self, catalogue: Catalogue, max_known: int = MAX_KNOWN) -> None:
        self._catalogue = catalogue
        self._max_known = max_known
        self._known: dict[str, SkuInfo] = {}

    async def get_skus(self, skus: Collection[str], *, need_prices: bool) -> Mapping[str, SkuInfo]:
        """The known SKUs among ``skus``; with ``need_prices`` always read now (prices change).

        Without it, the answer may come from the cache: its SKUs exist, with their merchant; the
        ``price_cents`` of a cached entry is the price when it was read, not now.
        """
        if not need_prices and all(sku in self._known for sku in skus):
            return {sku: self._known[sku] for sku in skus}
        known = await self._catalogue.get_skus(skus)
        for sku, info in known.items():
            if sku in self._known or len(self._known) < self._max_known:
                self._known[sku] = info
        return known
