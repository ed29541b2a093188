"""meshkit.infra.nats_batches against a real JetStream nats-server: fires come in batches, are acked once.

A burst of due schedules (times in the past fire at once) is fetched in a few batches, not one message
at a time; handled batches are acked (the work-queue stream empties); a batch whose handler raised is
redelivered; a push consumer of the same durable name (what earlier versions created) is replaced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StreamConfig

from meshkit.infra.nats import connect, create_stream_if_missing, schedule_at, subscribe_explicit_ack
from meshkit.infra.nats_batches import BatchConsumer
from meshkit.runtime.clock import SystemClock
from meshkit.settings.config import NatsSettings

BURST = 200


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    client: Client = await connect(NatsSettings(url=nats_url), "test-nats-batches")
    try:
        yield client.jetstream()
    finally:
        await client.close()


async def work_queue(js: JetStreamContext, gid: str) -> str:
    """A work-queue stream with schedules of this test's own; returns its name."""
    name = f"B_{gid}"
    config = StreamConfig(
        name=name,
        subjects=[f"b.{gid}.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        allow_msg_schedules=True,
    )
    await create_stream_if_missing(js, config)
    return name


async def burst(js: JetStreamContext, gid: str, count: int) -> None:
    """``count`` schedules already due: they all fire within the server's next tick."""
    past = time.time() - 1
    await asyncio.gather(
        *(
            schedule_at(
                js,
                schedule_subject=f"b.{gid}.at.{i}",
                target_subject=f"b.{gid}.fire.{i}",
                at_epoch_seconds=past,
                payload=str(i).encode(),
            )
            for i in range(count)
        )
    )


class Batches:
    """What the handler received, batch by batch; it raises on the first ``fail_first`` batches."""

    def __init__(self, fail_first: int = 0) -> None:
        self.batches: list[list[bytes]] = []
        self.fail_first = fail_first
        self.changed = asyncio.Event()

    async def handle(self, messages: Sequence[Msg]) -> None:
        self.batches.append([m.data for m in messages])
        self.changed.set()
        if len(self.batches) <= self.fail_first:
            raise RuntimeError("handler failed")

    def handled(self) -> set[bytes]:
        return {data for batch in self.batches[self.fail_first :] for data in batch}

    async def until_handled(self, count: int) -> None:
        while len(self.handled()) < count:
            self.changed.clear()
            await self.changed.wait()


def consumer(js: JetStreamContext, stream: str, gid: str, batches: Batches) -> BatchConsumer:
    return BatchConsumer(
        js,
        stream=stream,
        subject=f"b.{gid}.fire.>",
        durable=f"d_{gid}",
        handler=batches.handle,
        clock=SystemClock(),
        batch=64,
        wait_seconds=0.2,
    )


async def pending(js: JetStreamContext, stream: str) -> int:
    """Messages left in the stream (work queue: acked ones are removed)."""
    return int((await js.stream_info(stream)).state.messages)


async def test_a_burst_of_fires_is_fetched_in_batches_and_acked(js: JetStreamContext, gid: str) -> None:
    stream = await work_queue(js, gid)
    batches = Batches()
    fires = consumer(js, stream, gid, batches)
    await fires.start()
    try:
        await burst(js, gid, BURST)
        async with asyncio.timeout(10):
            await batches.until_handled(BURST)
        assert batches.handled() == {str(i).encode() for i in range(BURST)}
        assert len(batches.batches) <= BURST // 10
        assert max(len(b) for b in batches.batches) > 1
        async with asyncio.timeout(5):
            while await pending(js, stream):  # noqa: ASYNC110 - the server removes acked messages itself
                await asyncio.sleep(0.05)
    finally:
        await fires.stop()


async def test_a_batch_whose_handler_raised_comes_back(js: JetStreamContext, gid: str) -> None:
    stream = await work_queue(js, gid)
    batches = Batches(fail_first=1)
    fires = consumer(js, stream, gid, batches)
    await fires.start()
    try:
        await burst(js, gid, 5)
        async with asyncio.timeout(15):
            await batches.until_handled(5)
        assert set(batches.batches[0]) <= batches.handled()
    finally:
        await fires.stop()


async def test_a_push_consumer_of_the_same_name_is_replaced(js: JetStreamContext, gid: str) -> None:
    stream = await work_queue(js, gid)

    async def ignore(_msg: Msg) -> None:
        return None

    old = await subscribe_explicit_ack(js, f"b.{gid}.fire.>", f"d_{gid}", ignore)
    await old.unsubscribe()
    batches = Batches()
    fires = consumer(js, stream, gid, batches)
    await fires.start()
    try:
        info = await js.consumer_info(stream, f"d_{gid}")
        assert not info.config.deliver_subject
        await burst(js, gid, 3)
        async with asyncio.timeout(10):
            await batches.until_handled(3)
    finally:
        await fires.stop()
