"""order_svc deadline fires on a real nats-server: a malformed fire is dropped, its batch handled.

A fire whose body is not an order id or whose due header is not an integer would fail the same way on
every redelivery; it is logged (rate-limited) and acked with its batch, and the good fires fetched with
it are expired once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from meshkit.infra.nats import connect
from meshkit.runtime.clock import SystemClock
from meshkit.settings.config import NatsSettings
from order_svc.adapters.deadline_timer import DUE_HEADER, FIRE_PREFIX, STREAM, NatsDeadlines


class Expired:
    """The order ids handed to ``expire_many``, in order."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.changed = asyncio.Event()

    async def expire_many(self, order_ids: Sequence[str]) -> int:
        self.ids.extend(order_ids)
        self.changed.set()
        return len(order_ids)

    async def until(self, wanted: set[str]) -> None:
        while not wanted <= set(self.ids):
            self.changed.clear()
            await self.changed.wait()


@pytest.fixture
async def deadlines(nats_url: str) -> AsyncIterator[tuple[NatsDeadlines, Expired]]:
    timer = NatsDeadlines(NatsSettings(url=nats_url), SystemClock(), pay_timeout_seconds=60.0)
    expired = Expired()
    timer.start(expired.expire_many)
    try:
        async with asyncio.timeout(10):
            while not timer.connected:  # noqa: ASYNC110 - connects in the background
                await asyncio.sleep(0.05)
        yield timer, expired
    finally:
        await timer.stop()


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    client: Client = await connect(NatsSettings(url=nats_url), "test-deadline-fires")
    try:
        yield client.jetstream()
    finally:
        await client.close()


async def still_stored(js: JetStreamContext, subject: str) -> bool:
    """Whether a fire on ``subject`` is still in the work queue (acked ones are removed)."""
    try:
        await js.get_last_msg(STREAM, subject)
    except NotFoundError:
        return False
    return True


async def test_malformed_fires_are_dropped_and_the_rest_of_the_batch_expired(
    deadlines: tuple[NatsDeadlines, Expired], js: JetStreamContext, gid: str
) -> None:
    _timer, expired = deadlines
    past = str(int(time.time() * 1000) - 1000)
    good = [f"o{gid[-20:]}{i}" for i in range(3)]
    bad = {
        f"{FIRE_PREFIX}.{gid}-utf8": (b"\xff\xfe", {DUE_HEADER: past}),
        f"{FIRE_PREFIX}.{gid}-space": (b"not an id", {DUE_HEADER: past}),
        f"{FIRE_PREFIX}.{gid}-header": (good[0].encode(), {DUE_HEADER: "soon"}),
    }
    subjects = [*bad, *(f"{FIRE_PREFIX}.{order_id}" for order_id in good)]
    for subject, (body, headers) in bad.items():
        await js.publish(subject, body, headers=headers)
    for order_id in good:
        await js.publish(f"{FIRE_PREFIX}.{order_id}", order_id.encode(), headers={DUE_HEADER: past})
    async with asyncio.timeout(10):
        await expired.until(set(good))
        while any([await still_stored(js, s) for s in subjects]):  # noqa: ASYNC110 - server-side removal
            await asyncio.sleep(0.05)
    mine = [order_id for order_id in expired.ids if order_id in good]
    assert sorted(mine) == sorted(good)  # each once: the batch was acked, not nak'ed and redelivered
    assert deadlines[0].malformed.dropped >= len(bad)
