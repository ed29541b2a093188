"""Fixtures of the order_svc tests: an in-process coordinator and order_svc (SQLite and MariaDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.coordinator.harness import RunningCoordinator, coordinator_settings
from tests.integration.order.harness import RunningOrder, order_settings


@pytest.fixture
async def coordinator(tmp_path: Path) -> AsyncIterator[RunningCoordinator]:
    """A coordinator replica on its own SQLite file, without NATS."""
    running = await RunningCoordinator.start(
        coordinator_settings(f"sqlite+aiosqlite:///{tmp_path / 'coordinator.db'}")
    )
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def order(db_url: str, coordinator: RunningCoordinator) -> AsyncIterator[RunningOrder]:
    """order_svc on ``db_url`` (SQLite and MariaDB), NATS off, sweeper idle."""
    running = await RunningOrder.start(order_settings(db_url, coordinator.address))
    try:
        yield running
    finally:
        await running.stop()
