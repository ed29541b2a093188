"""Fixtures of the stock_svc tests: a running stock service on ``db_url`` (SQLite and MariaDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.stock.harness import RunningStock, stock_settings


@pytest.fixture
async def stock(db_url: str, redis_url: str) -> AsyncIterator[RunningStock]:
    """stock_svc on its own database and Redis namespace."""
    running = await RunningStock.start(stock_settings(db_url, redis_url))
    try:
        yield running
    finally:
        await running.stop()
