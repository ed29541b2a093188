"""Fixtures of the store runner tests: a runner on the test database (SQLite and MariaDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from meshkit.settings.config import StoreSettings
from meshkit.store import StoreRunner
from tests.integration.meshkit.barrier.test_barrier_sql import engine

__all__ = ["engine", "runner"]


@pytest.fixture
async def runner(engine: AsyncEngine) -> AsyncIterator[StoreRunner]:
    """A store runner on the test database (barrier and account tables created), closed afterwards."""
    store = StoreRunner.for_engine(engine, StoreSettings(pool_size=4))
    try:
        yield store
    finally:
        await store.close()
