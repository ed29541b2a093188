"""PlaceOrder's catalogue front (order_svc.placing.known_skus) against a real stock_svc.

Prices are read on every call that checks them (PutSku may change a price at any time); a SKU's
existence and merchant, which never change, are answered from the cache when prices are not needed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from meshkit.errors import MeshError
from order_svc.adapters.peers import GrpcCatalogue
from order_svc.placing.known_skus import KnownSkus
from tests.integration.creds import trusted_channel
from tests.integration.stock.harness import RunningStock, stock_settings

CALL_SECONDS = 2.0


@pytest.fixture
async def stock(db_url: str, redis_url: str) -> AsyncIterator[RunningStock]:
    """A real stock_svc (the catalogue) on ``db_url``."""
    running = await RunningStock.start(stock_settings(db_url, redis_url))
    try:
        yield running
    finally:
        await running.stop()


async def test_price_checked_reads_see_a_new_price_at_once(stock: RunningStock) -> None:
    sku = f"sku-{uuid.uuid4().hex[:8]}"
    await stock.put(sku, 5, merchant="m-tea", price=1200)
    channel = trusted_channel(stock.address)
    try:
        known = KnownSkus(GrpcCatalogue(channel, CALL_SECONDS))
        assert (await known.get_skus({sku}, need_prices=True))[sku].price_cents == 1200
        await stock.put(sku, 1, merchant="m-tea", price=1500)
        assert (await known.get_skus({sku}, need_prices=True))[sku].price_cents == 1500
    finally:
        await channel.close()


async def test_merchant_only_reads_come_from_the_cache_once_seen(stock: RunningStock) -> None:
    seen, unseen = f"sku-{uuid.uuid4().hex[:8]}", f"sku-{uuid.uuid4().hex[:8]}"
    await stock.put(seen, 5, merchant="m-books", price=900)
    await stock.put(unseen, 5, merchant="m-books", price=900)
    channel = trusted_channel(stock.address)
    try:
        known = KnownSkus(GrpcCatalogue(channel, CALL_SECONDS))
        assert (await known.get_skus({seen}, need_prices=False))[seen].merchant_id == "m-books"
        await stock.stop()
        # The catalogue is gone: a SKU seen before still answers without prices, nothing else does.
        cached = await known.get_skus({seen}, need_prices=False)
        assert cached[seen].merchant_id == "m-books"
        with pytest.raises(MeshError):
            await known.get_skus({seen}, need_prices=True)
        with pytest.raises(MeshError):
            await known.get_skus({seen, unseen}, need_prices=False)
    finally:
        await channel.close()
