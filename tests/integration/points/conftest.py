"""Fixtures of the points_svc tests: a points_svc on the test database (SQLite and MariaDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.points.harness import RunningPoints, points_settings


@pytest.fixture
async def points(db_url: str) -> AsyncIterator[RunningPoints]:
    """A points_svc on ``db_url`` (once on SQLite, once on MariaDB)."""
    running = await RunningPoints.start(points_settings(db_url))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
def user(gid: str) -> str:
    """A user id of this test."""
    return f"u-{gid[:12]}"
