"""Fixtures of the order_svc tests: an in-process coordinator and order_svc (SQLite and MariaDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from meshctl.stack.embedded import free_port
from tests.integration.coordinator.harness import RunningCoordinator, coordinator_settings
from tests.integration.order.harness import RunningOrder, order_settings
from tests.integration.pay.harness import RunningPay, pay_settings


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


@pytest.fixture
async def paying_order(
    db_url: str, tmp_path: Path, coordinator: RunningCoordinator
) -> AsyncIterator[RunningOrder]:
    """order_svc on ``db_url`` next to a real pay_svc (its own SQLite file) that order_svc pays through."""
    port = free_port()
    pay = await RunningPay.start(
        pay_settings(f"sqlite+aiosqlite:///{tmp_path / 'pay.db'}", f"127.0.0.1:{port}"), background=False
    )
    try:
        running = await RunningOrder.start(
            order_settings(db_url, coordinator.address, port=port, pay=pay.address)
        )
        try:
            yield running
        finally:
            await running.stop()
    finally:
        await pay.stop()
