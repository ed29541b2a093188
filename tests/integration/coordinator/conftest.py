"""Fixtures of the coordinator tests: a test participant and an in-process coordinator replica."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from meshkit.infra.db import create_engine
from meshkit.settings.config import DbSettings
from tests.integration.coordinator.harness import RunningCoordinator, coordinator_settings
from tests.integration.coordinator.participants import Bank


@pytest.fixture
async def bank(tmp_path: Path) -> AsyncIterator[Bank]:
    """A participant on its own SQLite database."""
    db = create_engine(DbSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'bank.db'}"))
    participant = await Bank(db).start()
    try:
        yield participant
    finally:
        await participant.stop()
        await db.dispose()


@pytest.fixture
async def coordinator(db_url: str) -> AsyncIterator[RunningCoordinator]:
    """A coordinator replica on ``db_url`` (SQLite and MariaDB), without NATS."""
    running = await RunningCoordinator.start(coordinator_settings(db_url))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def sqlite_coordinator(sqlite_url: str) -> AsyncIterator[RunningCoordinator]:
    """A coordinator replica on SQLite only (the engine's writes share one worker thread), without NATS."""
    running = await RunningCoordinator.start(coordinator_settings(sqlite_url))
    try:
        yield running
    finally:
        await running.stop()
