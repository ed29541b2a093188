"""Fixtures of the pay_svc tests: the order stand-in and an in-process pay_svc on ``db_url``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.pay.harness import FakeOrder, RunningPay, pay_settings


@pytest.fixture
async def fake_order() -> AsyncIterator[FakeOrder]:
    """order_svc's PaymentSucceeded on a real gRPC server."""
    order = await FakeOrder().start()  # type: ignore[abstract]
    try:
        yield order
    finally:
        await order.stop()


@pytest.fixture
async def pay(db_url: str, fake_order: FakeOrder) -> AsyncIterator[RunningPay]:
    """pay_svc on ``db_url`` (SQLite and MariaDB), told of orders at ``fake_order``."""
    running = await RunningPay.start(pay_settings(db_url, fake_order.address))
    try:
        yield running
    finally:
        await running.stop()
