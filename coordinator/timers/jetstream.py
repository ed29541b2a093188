"""JetStream timers: a scheduled message per waiting transaction, fired back to the engine as a hint.

Stream ``MESH_COORD_TIMERS`` (work-queue retention, message schedules on) holds, per gid, at most one
pending schedule on ``mesh.coord.timer.at.<token>`` targeting ``mesh.coord.timer.fire.<token>``
(``token`` = the gid in unpadded base64url, since gids may contain dots). Re-scheduling replaces the
pending schedule. Every replica consumes the fire subjects through one shared durable *pull* consumer,
fetching up to :data:`FETCH_BATCH` fires at a time; each fire is a hint handed to the engine's batch
claimer (:meth:`~coordinator.engine.service.TxEngine.claim_hinted`), which claims the due ones of a
burst with one statement and drops the rest (stale and duplicate fires are harmless). A batch is acked
(and so leaves the work-queue stream) only once the claims of its gids returned - each claimed and its
drive started, or found not due - so a replica that stops before then leaves the fires to another
(nak'ed, or redelivered after the consumer's ack wait); while the database fails the claims are
retried and the batch stays unacked. A fire that arrives early (clock skew) is acked at once and
becomes a local wake-up at the due time: if this replica stops before then, the store sweeper does it.

Publishing happens in the background, coalesced per gid; when NATS is unreachable, schedules are
dropped (a summary log line every :data:`WARN_EVERY_SECONDS`) and the store sweeper does the work.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import logging
from collections.abc import Sequence

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StreamConfig

from coordinator.engine.service import TxEngine
from meshkit.infra.nats import create_stream_if_missing, schedule_at
from meshkit.infra.nats_batches import BatchConsumer
from meshkit.runtime.clock import Clock, now_ms

log = logging.getLogger(__name__)

STREAM = "MESH_COORD_TIMERS"
SUBJECT_PREFIX = "mesh.coord.timer"
SCHEDULE_PREFIX = f"{SUBJECT_PREFIX}.at"
FIRE_PREFIX = f"{SUBJECT_PREFIX}.fire"
DURABLE = "coordinator-timers"
DUE_HEADER = "Mesh-Due-Ms"
MAX_AGE_SECONDS = 8 * 24 * 3600.0  # above the longest timeout (7 days) plus backoff
PUBLISH_BATCH = 64
FETCH_BATCH = 256
MAX_PENDING = 100_000
WARN_EVERY_SECONDS = 10.0  # failed publishes are summarised at most this often


def subject_token(gid: str) -> str:
    """A NATS subject token for ``gid`` (unpadded base64url: no dots, no wildcards)."""
    return base64.urlsafe_b64encode(gid.encode()).decode().rstrip("=")


async def ensure_timer_stream(js: JetStreamContext, replicas: int = 1) -> None:
    """Create the timers stream if it is missing (work-queue retention, message schedules on).

    ``replicas`` (``nats.stream_replicas``) also applies to an existing stream.
    """
    config = StreamConfig(
        name=STREAM,
        subjects=[f"{SUBJECT_PREFIX}.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        allow_msg_schedules=True,
        max_age=MAX_AGE_SECONDS,
    )
    await create_stream_if_missing(js, config, replicas)


class JetStreamTimers:
    """A :class:`~coordinator.engine.ports.TimerSink` on JetStream, plus the consumer of its fires."""

    def __init__(self, client: Client, engine: TxEngine, clock: Clock, *, replicas: int = 1) -> None:
        self._client = client
        self._replicas = replicas
        self._js = client.jetstream()
        self._engine = engine
        self._clock = clock
        self._pending: dict[str, int] = {}
        self._wakeup = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None
        self._consumer = BatchConsumer(
            self._js,
            stream=STREAM,
            subject=f"{FIRE_PREFIX}.>",
            durable=DURABLE,
            handler=self._on_fires,
            clock=clock,
            batch=FETCH_BATCH,
        )
        self._dropped = 0
        self._last_warning = -WARN_EVERY_SECONDS

    async def start(self) -> None:
        """Declare the stream, subscribe to fires, start the publisher, and register with the engine."""
        await ensure_timer_stream(self._js, self._replicas)
        await self._consumer.start()
        self._publisher = asyncio.get_running_loop().create_task(
            self._publish_loop(), name="timer-publisher", context=contextvars.Context()
        )
        self._engine.add_timer(self)

    async def stop(self) -> None:
        """Unregister, stop publishing and consuming (the client is the caller's to close)."""
        self._engine.remove_timer(self)
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            self._publisher = None
        await self._consumer.stop()

    # ------------------------------------------------------------------ TimerSink

    def schedule(self, gid: str, at_ms: int) -> None:
        """Queue a schedule for ``gid`` at ``at_ms`` (coalesced: the latest request per gid wins)."""
        if len(self._pending) >= MAX_PENDING and gid not in self._pending:
            log.warning("timer backlog full (%d); %s relies on the sweeper", MAX_PENDING, gid)
            return
        self._pending[gid] = at_ms
        self._wakeup.set()

    def cancel(self, gid: str) -> None:
        """Drop a not yet published schedule (a published one fires and is ignored)."""
        self._pending.pop(gid, None)

    def backlog(self) -> int:
        """Schedules waiting to be published."""
        return len(self._pending)

    # ------------------------------------------------------------------ publishing

    async def _publish_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = [self._pending.popitem() for _ in range(min(PUBLISH_BATCH, len(self._pending)))]
                if not self._client.is_connected:
                    self._drop(len(batch), "NATS is not connected")
                    continue
                await asyncio.gather(*(self._publish(gid, at_ms) for gid, at_ms in batch))

    def _drop(self, count: int, why: str) -> None:
        """Count schedules not published; say so at most every :data:`WARN_EVERY_SECONDS`."""
        self._dropped += count
        now = self._clock.monotonic()
        if now - self._last_warning >= WARN_EVERY_SECONDS:
            log.warning("%d timers not scheduled (%s); the sweeper will pick them up", self._dropped, why)
            self._dropped, self._last_warning = 0, now

    async def _publish(self, gid: str, at_ms: int) -> None:
        token = subject_token(gid)
        try:
            await schedule_at(
                self._js,
                schedule_subject=f"{SCHEDULE_PREFIX}.{token}",
                target_subject=f"{FIRE_PREFIX}.{token}",
                at_epoch_seconds=at_ms / 1000,
                payload=gid.encode(),
                headers={DUE_HEADER: str(at_ms)},
            )
        except (TimeoutError, NatsError) as exc:
            self._drop(1, str(exc) or type(exc).__name__)

    # ------------------------------------------------------------------ fires

    async def _on_fires(self, messages: Sequence[Msg]) -> None:
        """A fetched batch of fires: returns once the due ones were claimed (or found not due)."""
        now = now_ms(self._clock)
        due_gids: list[str] = []
        for msg in messages:
            gid = msg.data.decode(errors="replace")
            due = _due_ms(msg)
            if due is not None and due > now:
                self._engine.remind(gid, due)  # early (clock skew): wake locally at the due time
            else:
                due_gids.append(gid)
        await self._engine.claim_hinted(due_gids, "jetstream")


def _due_ms(msg: Msg) -> int | None:
    try:
        return int((msg.headers or {}).get(DUE_HEADER, ""))
    except ValueError:
        return None
