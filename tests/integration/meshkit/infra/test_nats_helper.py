"""meshkit.infra.nats against a real JetStream nats-server: streams, message schedules, explicit acks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StreamConfig
from nats.js.errors import BadRequestError

from meshctl.stack.embedded import NatsServer
from meshkit.infra.nats import (
    SCHEDULER_HEADER,
    connect,
    create_stream_if_missing,
    ensure_stream,
    schedule_at,
    subscribe_explicit_ack,
)
from meshkit.settings.config import NatsSettings

# Fired messages may come a few ms either side of the requested time (server and test share a clock,
# the server's timer and our timestamps are taken at slightly different points).
EARLY_TOLERANCE = 0.05


@dataclass
class Inbox:
    """What a consumer received, with wall-clock arrival times."""

    messages: list[tuple[float, Msg]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, msg: Msg) -> None:
        self.messages.append((time.time(), msg))
        self.arrived.set()

    async def until(self, count: int) -> None:
        """Wait until ``count`` messages arrived (callers bound it with asyncio.timeout)."""
        while len(self.messages) < count:
            self.arrived.clear()
            await self.arrived.wait()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await connect(NatsSettings(url=nats_url), "test-nats-helper")
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def js(nc: Client) -> JetStreamContext:
    return nc.jetstream()


async def _timer_stream(js: JetStreamContext, gid: str) -> tuple[str, str]:
    """A stream of this test's own: (schedule prefix, fire prefix)."""
    await ensure_stream(js, f"T_{gid}", [f"sched.{gid}.>", f"fire.{gid}.>"])
    return f"sched.{gid}", f"fire.{gid}"


async def test_connect_reaches_the_server(nats_url: str) -> None:
    client = await connect(NatsSettings(url=nats_url), "connect-check")
    assert client.is_connected
    assert client.connected_url is not None
    assert client.connected_url.port == int(nats_url.rsplit(":", 1)[1])
    await client.close()


async def test_scheduled_message_arrives_on_target_after_its_time_not_before(
    js: JetStreamContext, gid: str
) -> None:
    sched, fire = await _timer_stream(js, gid)
    inbox = Inbox()
    await subscribe_explicit_ack(js, f"{fire}.>", f"w_{gid}", inbox.handle)
    at = time.time() + 1.5
    await schedule_at(
        js,
        schedule_subject=f"{sched}.tx",
        target_subject=f"{fire}.tx",
        at_epoch_seconds=at,
        payload=b"timeout",
        headers={"X-Mesh-Gid": gid},
    )
    await asyncio.sleep(1.0)
    assert inbox.messages == []  # not before its time
    async with asyncio.timeout(5):
        await inbox.until(1)
    arrived, msg = inbox.messages[0]
    assert arrived >= at - EARLY_TOLERANCE
    assert arrived < at + 1.0
    assert msg.subject == f"{fire}.tx"
    assert msg.data == b"timeout"
    assert msg.headers is not None
    assert msg.headers["X-Mesh-Gid"] == gid
    assert msg.headers[SCHEDULER_HEADER] == f"{sched}.tx"


async def test_rescheduling_on_same_subject_replaces_pending_schedule(js: JetStreamContext, gid: str) -> None:
    sched, fire = await _timer_stream(js, gid)
    inbox = Inbox()
    await subscribe_explicit_ack(js, f"{fire}.>", f"w_{gid}", inbox.handle)
    now = time.time()
    await schedule_at(
        js,
        schedule_subject=f"{sched}.tx",
        target_subject=f"{fire}.tx",
        at_epoch_seconds=now + 0.5,
        payload=b"old",
    )
    await schedule_at(
        js,
        schedule_subject=f"{sched}.tx",
        target_subject=f"{fire}.tx",
        at_epoch_seconds=now + 1.2,
        payload=b"new",
    )
    async with asyncio.timeout(5):
        await inbox.until(1)
    await asyncio.sleep(0.5)  # room for a (wrong) second fire
    assert [msg.data for _, msg in inbox.messages] == [b"new"]
    assert inbox.messages[0][0] >= now + 1.2 - EARLY_TOLERANCE


async def test_plain_message_on_schedule_subject_cancels_pending_schedule(
    js: JetStreamContext, gid: str
) -> None:
    sched, fire = await _timer_stream(js, gid)
    inbox = Inbox()
    await subscribe_explicit_ack(js, f"{fire}.>", f"w_{gid}", inbox.handle)
    await schedule_at(
        js,
        schedule_subject=f"{sched}.tx",
        target_subject=f"{fire}.tx",
        at_epoch_seconds=time.time() + 0.5,
        payload=b"cancelled",
    )
    await js.publish(f"{sched}.tx", b"cancel")
    await asyncio.sleep(1.2)
    assert inbox.messages == []


async def test_schedule_in_the_past_fires_at_once(js: JetStreamContext, gid: str) -> None:
    sched, fire = await _timer_stream(js, gid)
    inbox = Inbox()
    await subscribe_explicit_ack(js, f"{fire}.>", f"w_{gid}", inbox.handle)
    started = time.time()
    await schedule_at(
        js,
        schedule_subject=f"{sched}.tx",
        target_subject=f"{fire}.tx",
        at_epoch_seconds=started - 60,
        payload=b"late",
    )
    async with asyncio.timeout(3):
        await inbox.until(1)
    assert inbox.messages[0][1].data == b"late"
    assert inbox.messages[0][0] - started < 1.5


async def test_fired_message_reaches_jetstream_consumers_only(
    nc: Client, js: JetStreamContext, gid: str
) -> None:
    sched, fire = await _timer_stream(js, gid)
    core: list[Msg] = []

    async def on_core(msg: Msg) -> None:
        core.append(msg)

    await nc.subscribe(f"{fire}.>", cb=on_core)
    inbox = Inbox()
    await subscribe_explicit_ack(js, f"{fire}.>", f"w_{gid}", inbox.handle)
    await schedule_at(
        js,
        schedule_subject=f"{sched}.tx",
        target_subject=f"{fire}.tx",
        at_epoch_seconds=time.time(),
        payload=b"x",
    )
    async with asyncio.timeout(3):
        await inbox.until(1)
    await nc.flush()
    assert core == []


async def test_schedule_subject_equal_to_target_is_refused(js: JetStreamContext, gid: str) -> None:
    sched, _ = await _timer_stream(js, gid)
    with pytest.raises(ValueError, match="must differ"):
        await schedule_at(
            js,
            schedule_subject=f"{sched}.a",
            target_subject=f"{sched}.a",
            at_epoch_seconds=time.time(),
            payload=b"",
        )


async def test_schedule_target_outside_the_stream_is_refused(js: JetStreamContext, gid: str) -> None:
    sched, _ = await _timer_stream(js, gid)
    with pytest.raises(BadRequestError, match="target is invalid"):
        await schedule_at(
            js,
            schedule_subject=f"{sched}.a",
            target_subject=f"elsewhere.{gid}",
            at_epoch_seconds=time.time() + 1,
            payload=b"",
        )


async def test_handler_exception_naks_and_message_is_redelivered(js: JetStreamContext, gid: str) -> None:
    _, fire = await _timer_stream(js, gid)
    deliveries: list[int] = []
    done = asyncio.Event()

    async def flaky(msg: Msg) -> None:
        deliveries.append(msg.metadata.num_delivered)
        if len(deliveries) == 1:
            raise RuntimeError("first attempt fails")
        done.set()

    await subscribe_explicit_ack(js, f"{fire}.>", f"w_{gid}", flaky, retry_delay_seconds=0.2)
    await js.publish(f"{fire}.job", b"job")
    async with asyncio.timeout(5):
        await done.wait()
    await asyncio.sleep(0.6)  # acked: no further delivery
    assert deliveries == [1, 2]
    info = await js.consumer_info(f"T_{gid}", f"w_{gid}")
    assert info.num_ack_pending == 0
    assert info.num_pending == 0


async def test_max_deliver_stops_redelivery(js: JetStreamContext, gid: str) -> None:
    _, fire = await _timer_stream(js, gid)
    inbox = Inbox()

    async def always_fails(msg: Msg) -> None:
        await inbox.handle(msg)
        raise RuntimeError("never works")

    await subscribe_explicit_ack(
        js, f"{fire}.>", f"w_{gid}", always_fails, max_deliver=2, retry_delay_seconds=0.1
    )
    await js.publish(f"{fire}.job", b"job")
    async with asyncio.timeout(5):
        await inbox.until(2)
    await asyncio.sleep(0.6)  # room for a (wrong) third delivery
    assert [msg.metadata.num_delivered for _, msg in inbox.messages] == [1, 2]


async def test_ensure_stream_is_idempotent_and_updates(js: JetStreamContext, gid: str) -> None:
    name = f"S_{gid}"
    await ensure_stream(js, name, [f"a.{gid}.>"], max_age_seconds=3600)
    first = await js.stream_info(name)
    await ensure_stream(js, name, [f"a.{gid}.>"], max_age_seconds=3600)
    again = await js.stream_info(name)
    assert again.config == first.config
    assert again.state.messages == 0
    assert first.config.allow_msg_schedules is True
    assert first.config.max_age == 3600

    await js.publish(f"a.{gid}.x", b"kept")
    await ensure_stream(js, name, [f"a.{gid}.>", f"b.{gid}.>"], allow_msg_schedules=False)
    updated = await js.stream_info(name)
    assert sorted(updated.config.subjects or []) == sorted([f"a.{gid}.>", f"b.{gid}.>"])
    assert updated.config.allow_msg_schedules is True  # schedules cannot be switched off again
    assert not updated.config.max_age
    assert updated.state.messages == 1


async def test_concurrent_ensure_stream_calls_all_succeed(js: JetStreamContext, gid: str) -> None:
    name = f"C_{gid}"
    await asyncio.gather(*(ensure_stream(js, name, [f"c.{gid}.>"]) for _ in range(5)))
    info = await js.stream_info(name)
    assert info.config.subjects == [f"c.{gid}.>"]


async def test_create_stream_if_missing_creates_once_and_keeps_an_existing_stream(
    js: JetStreamContext, gid: str
) -> None:
    config = StreamConfig(name=f"W_{gid}", subjects=[f"w.{gid}.>"], retention=RetentionPolicy.WORK_QUEUE)
    await asyncio.gather(*(create_stream_if_missing(js, config) for _ in range(4)))
    other = StreamConfig(name=f"W_{gid}", subjects=[f"other.{gid}.>"])
    await create_stream_if_missing(js, other)
    info = await js.stream_info(f"W_{gid}")
    assert info.config.subjects == [f"w.{gid}.>"]
    assert info.config.retention == RetentionPolicy.WORK_QUEUE


async def test_pending_schedule_survives_server_restart(tmp_path: Path, gid: str) -> None:
    server = NatsServer(tmp_path)
    server.start()
    try:
        client = await connect(NatsSettings(url=server.url), "restart-check")
        js = client.jetstream()
        sched, fire = await _timer_stream(js, gid)
        due = time.time() + 1.0
        await schedule_at(
            js,
            schedule_subject=f"{sched}.tx",
            target_subject=f"{fire}.tx",
            at_epoch_seconds=due,
            payload=b"kept",
        )
        await client.close()
        server.stop()
        await asyncio.sleep(max(0.0, due - time.time()) + 0.3)  # falls due while the server is down
        server.start()
        client = await connect(NatsSettings(url=server.url), "restart-check")
        js = client.jetstream()
        inbox = Inbox()
        await subscribe_explicit_ack(js, f"{fire}.>", f"w_{gid}", inbox.handle)
        async with asyncio.timeout(5):
            await inbox.until(1)
        assert inbox.messages[0][1].data == b"kept"
        await client.close()
    finally:
        server.stop()
