"""The pay deadline as a JetStream scheduled message (the :class:`~order_svc.adapters.ports.DeadlineTimer`).

Stream ``MESH_ORDER_DEADLINES`` (work-queue retention, message schedules on) holds one pending schedule
per order on ``mesh.order.deadline.at.<order_id>`` targeting ``mesh.order.deadline.fire.<order_id>``.
Every order_svc replica consumes the fire subjects through one shared durable pull consumer, up to
:data:`FETCH_BATCH` fires per fetch; a batch goes to
:meth:`order_svc.service.OrderService.expire_many`, which re-reads each order and cancels it only if it
is still overdue (stale and duplicate fires are harmless), several at once. A fire that comes early is
scheduled again; a malformed one (body not an order id, bad due header) is logged, rate-limited, and
acked with its batch, so it neither blocks the others nor comes back.

NATS is optional at every moment: until it answers, schedules are dropped with a log line and the
sweeper cancels overdue orders a little later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StreamConfig

from meshkit.errors import InvalidArgument
from meshkit.infra.nats import (
    connect,
    create_stream_if_missing,
    schedule_at,
)
from meshkit.infra.nats_batches import BatchConsumer
from meshkit.observability.ratelimit import LogLimiter
from meshkit.runtime.clock import Clock
from meshkit.settings.config import NatsSettings
from order_svc.orders.tables import ORDER_ID_LEN
from order_svc.placing.rules import check_id

log = logging.getLogger(__name__)

STREAM = "MESH_ORDER_DEADLINES"
SUBJECT_PREFIX = "mesh.order.deadline"
SCHEDULE_PREFIX = f"{SUBJECT_PREFIX}.at"
FIRE_PREFIX = f"{SUBJECT_PREFIX}.fire"
DURABLE = "order-deadlines"
DUE_HEADER = "Mesh-Due-Ms"
MIN_MAX_AGE_SECONDS = 8 * 24 * 3600.0
RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 60.0
PUBLISH_TIMEOUT_SECONDS = 2.0
FETCH_BATCH = 256

MALFORMED_LOG_SECONDS = 60.0

ExpireMany = Callable[[Sequence[str]], Awaitable[int]]


def decode_fire(body: bytes, headers: Mapping[str, str] | None) -> tuple[str, int]:
    """A fire's order id (its body) and due time (header ``Mesh-Due-Ms``, 0 when absent).

    Raises ValueError naming what is wrong (not UTF-8, not an order id, a due time not an integer).
    """
    try:
        order_id = check_id("order_id", body.decode(), ORDER_ID_LEN)
    except UnicodeDecodeError as exc:
        raise ValueError("body is not UTF-8") from exc
    except InvalidArgument as exc:
        raise ValueError(f"body is not an order id ({exc})") from exc
    raw = (headers or {}).get(DUE_HEADER, "0") or "0"
    if not raw.isascii() or not raw.isdigit():
        raise ValueError(f"header {DUE_HEADER} is not a non-negative integer")
    return order_id, int(raw)


class MalformedLog:
    """Counts malformed fires; logs at most one line per :data:`MALFORMED_LOG_SECONDS` (folding the rest)."""

    def __init__(self, clock: Clock) -> None:
        self._limiter = LogLimiter(clock, MALFORMED_LOG_SECONDS)
        self.dropped = 0

    def note(self, subject: str, why: str) -> None:
        """Count one malformed fire on ``subject``; log it unless a line was written recently."""
        self.dropped += 1
        held = self._limiter.allow("malformed")
        if held is not None:
            log.warning(
                "deadline fire on %s dropped: %s (%d more held back)", ascii(subject[:200]), why, held
            )


async def ensure_deadline_stream(js: JetStreamContext, max_age_seconds: float, replicas: int = 1) -> None:
    """Create the deadline stream if it is missing (work-queue retention, message schedules on).

    ``replicas`` (``nats.stream_replicas``) also applies to an existing stream.
    """
    config = StreamConfig(
        name=STREAM,
        subjects=[f"{SUBJECT_PREFIX}.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        allow_msg_schedules=True,
        max_age=max_age_seconds,
    )
    await create_stream_if_missing(js, config, replicas)


class NatsDeadlines:
    """Schedules deadline messages and consumes their fires; connects to NATS in the background."""

    def __init__(
        self, settings: NatsSettings, clock: Clock, pay_timeout_seconds: float, name: str = "order_svc"
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._max_age = max(MIN_MAX_AGE_SECONDS, 2 * pay_timeout_seconds)
        self._name = name
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._consumer: BatchConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._expire: ExpireMany | None = None
        self.malformed = MalformedLog(clock)

    @property
    def connected(self) -> bool:
        """True once the stream is declared and fires are consumed."""
        return self._js is not None and self._consumer is not None

    def start(self, expire: ExpireMany) -> None:
        """Connect in the background (retrying) and hand every fetched batch of due fires to ``expire``."""
        self._expire = expire
        if self._settings.enabled:
            self._task = asyncio.get_running_loop().create_task(self._connect_loop(), name="order-deadlines")

    async def _connect_loop(self) -> None:
        delay = RETRY_SECONDS
        while True:
            client: Client | None = None
            try:
                client = await connect(self._settings, self._name)
                js = client.jetstream()
                await ensure_deadline_stream(js, self._max_age, self._settings.stream_replicas)
                consumer = BatchConsumer(
                    js,
                    stream=STREAM,
                    subject=f"{FIRE_PREFIX}.>",
                    durable=DURABLE,
                    handler=self._on_fires,
                    clock=self._clock,
                    batch=FETCH_BATCH,
                )
                await consumer.start()
                self._consumer = consumer
            except Exception as exc:
                log.warning(
                    "deadline messages unavailable (%s); the sweeper covers; retry in %.0fs", exc, delay
                )
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.close()
                await self._clock.sleep(delay)
                delay = min(MAX_RETRY_SECONDS, delay * 2)
                continue
            self._client, self._js = client, js
            return

    async def schedule(self, order_id: str, at_ms: int) -> None:
        """Schedule the deadline of ``order_id`` (dropped with a log line while NATS is unavailable)."""
        js = self._js
        if js is None:
            log.info("deadline of order %s not scheduled (NATS unavailable); the sweeper covers", order_id)
            return
        try:
            await asyncio.wait_for(
                schedule_at(
                    js,
                    schedule_subject=f"{SCHEDULE_PREFIX}.{order_id}",
                    target_subject=f"{FIRE_PREFIX}.{order_id}",
                    at_epoch_seconds=at_ms / 1000,
                    payload=order_id.encode(),
                    headers={DUE_HEADER: str(at_ms)},
                ),
                PUBLISH_TIMEOUT_SECONDS,
            )
        except (NatsError, TimeoutError, OSError) as exc:
            log.warning("deadline of order %s not scheduled (%s); the sweeper covers", order_id, exc)

    async def _on_fires(self, messages: Sequence[Msg]) -> None:
        now_ms = int(self._clock.now() * 1000)
        due: list[str] = []
        for message in messages:
            fire = self._decode(message)
            if fire is None:
                continue  # acked with the batch: redelivering it would fail the same way
            order_id, due_ms = fire
            if due_ms > now_ms:
                await self.schedule(order_id, due_ms)  # early (clock skew): again at the due time
            else:
                due.append(order_id)
        if due and self._expire is not None:
            await self._expire(due)

    def _decode(self, message: Msg) -> tuple[str, int] | None:
        """The fire's (order id, due ms), or None (logged, rate-limited) when it is malformed."""
        try:
            return decode_fire(message.data, message.headers)
        except ValueError as exc:
            self.malformed.note(message.subject, str(exc))
            return None

    async def stop(self) -> None:
        """Stop connecting and consuming; close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._client is not None:
            with contextlib.suppress(NatsError, asyncio.CancelledError):
                await self._client.close()
            self._client = None
        self._js = None
