"""Fixtures of the in-process flash tests: a coordinator, a stock_svc and order_svc nodes, all real, on the
session's Redis and NATS; each test has its own flash namespace, stock namespace and databases.

The ``coordinator`` fixture is the order tests' own (tests/integration/order/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from meshctl.stack.embedded import free_port
from order_svc.config import OrderSettings
from tests.integration.coordinator.harness import RunningCoordinator
from tests.integration.order.flash.harness import JobQueue, new_namespace, node_settings, start_node
from tests.integration.order.harness import RunningOrder
from tests.integration.stock.harness import RunningStock, stock_settings

NodeSettings = Callable[..., OrderSettings]


@pytest.fixture
async def stock(tmp_path: Path, redis_url: str) -> AsyncIterator[RunningStock]:
    """stock_svc on its own SQLite file and a fixed port (a test may stop and start it again)."""
    settings = stock_settings(f"sqlite+aiosqlite:///{tmp_path / 'stock.db'}", redis_url)
    settings = settings.model_copy(
        update={"server": settings.server.model_copy(update={"port": free_port()})}
    )
    running = await RunningStock.start(settings)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
def namespace() -> str:
    """This test's flash namespace."""
    return new_namespace()


@pytest.fixture
def settings_for(
    coordinator: RunningCoordinator, stock: RunningStock, redis_url: str, nats_url: str, namespace: str
) -> NodeSettings:
    """Settings of a node of this test's mesh: ``settings_for(db_url, [nats_url=...], **order_section)``."""

    def build(db_url: str, *, nats_url: str = nats_url, **section: Any) -> OrderSettings:
        return node_settings(
            db_url,
            coordinator=coordinator.address,
            stock=stock.address,
            redis_url=redis_url,
            nats_url=nats_url,
            namespace=namespace,
            **section,
        )

    return build


@pytest.fixture
async def start(settings_for: NodeSettings) -> AsyncIterator[Callable[..., Awaitable[RunningOrder]]]:
    """Start nodes (``await start(db_url, **section)``); all are stopped afterwards."""
    nodes: list[RunningOrder] = []

    async def launch(db_url: str, *, wait_queue: bool = True, **section: Any) -> RunningOrder:
        node = await start_node(settings_for(db_url, **section), wait_queue=wait_queue)
        nodes.append(node)
        return node

    try:
        yield launch
    finally:
        for node in reversed(nodes):
            await node.stop()


@pytest.fixture
async def node(start: Callable[..., Awaitable[RunningOrder]], db_url: str) -> RunningOrder:
    """One node on ``db_url`` (SQLite and MariaDB)."""
    return await start(db_url, worker_id=1)


@pytest.fixture
async def jobs(nats_url: str, namespace: str) -> AsyncIterator[JobQueue]:
    """A client of this test's work queue."""
    queue = await JobQueue.connect(nats_url, namespace)
    try:
        yield queue
    finally:
        await queue.close()
