"""The flash work queue (JetStream) and the restock broadcast (core NATS) of order_svc.

Implements :class:`order_svc.adapters.ports.FlashQueue`. With ``order.flash_namespace = ns``:

* stream ``MESH_FLASH_<NS>``, work-queue retention, never expiring, subject ``mesh.flash.<ns>.job``; one
  message per ticket (payload ``{"ticket": ...}``, header ``Nats-Msg-Id: <ticket>``, so a re-publish
  within the stream's duplicate window is dropped by the server);
* one durable pull consumer ``order-flash-<ns>`` with explicit acks shared by every replica: each job
  goes to one worker; up to ``order.flash_workers`` jobs run at once per replica. A job that returns
  is acked; one that raises is nak'ed with a delay (``flash_retry_seconds`` doubling per delivery up to
  ``flash_max_retry_seconds``) and comes back, forever: a job is never dropped. While a job runs its
  worker tells the server every ``flash_ack_wait_seconds / 3`` that it is still in progress; a worker
  that dies stops doing so and the job is redelivered ``flash_ack_wait_seconds`` later. The consumer's
  settings apply when it is created; an existing consumer keeps its own.
* broadcast subject ``mesh.flash.<ns>.restocked`` (plain pub/sub, payload = the sale id): every replica
  subscribes without a queue group and clears its local sold-out flag of that sale.

NATS is optional at start: the connection is made in the background and retried (as the coordinator
and the pay deadlines do). Until the stream answers, :attr:`NatsFlashQueue.available` is False and
FlashBuy answers UNAVAILABLE instead of taking units it could not queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

from meshkit.errors import MeshError, TransientError
from meshkit.infra.nats import connect, create_stream_if_missing
from meshkit.runtime.clock import Clock
from meshkit.settings.config import NatsSettings
from order_svc.config import OrderSection

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
DUPLICATE_WINDOW_SECONDS = 120.0
PUBLISH_TIMEOUT_SECONDS = 2.0
FETCH_SECONDS = 1.0
DRAIN_SECONDS = 5.0
RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 30.0
MAX_ACK_PENDING = 10_000

JobHandler = Callable[[str], Awaitable[None]]
RestockHandler = Callable[[str], None]


class QueueNames:
    """The stream, subjects and consumer of one flash namespace."""

    def __init__(self, namespace: str) -> None:
        self.stream = f"MESH_FLASH_{namespace.upper()}"
        self.job_subject = f"mesh.flash.{namespace}.job"
        self.restock_subject = f"mesh.flash.{namespace}.restocked"
        self.durable = f"order-flash-{namespace}"


def job_payload(ticket: str) -> bytes:
    """The message of a ticket's job."""
    return json.dumps({"ticket": ticket}).encode()


def ticket_of_job(data: bytes) -> str:
    """The ticket of a job message; ValueError when malformed."""
    job = json.loads(data.decode())
    ticket = job.get("ticket") if isinstance(job, dict) else None
    if not isinstance(ticket, str) or not ticket:
        raise ValueError("job without a ticket")
    return ticket


def delivery_count(msg: Msg) -> int:
    """How many times JetStream delivered ``msg`` (1 on the first delivery)."""
    try:
        return int(msg.metadata.num_delivered)
    except (ValueError, TypeError, AttributeError):
        return 1


async def ensure_job_stream(js: JetStreamContext, names: QueueNames, replicas: int = 1) -> None:
    """Create the work-queue stream if it is missing (idempotent, race-safe), with ``replicas`` replicas."""
    config = StreamConfig(
        name=names.stream,
        subjects=[names.job_subject],
        retention=RetentionPolicy.WORK_QUEUE,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )
    await create_stream_if_missing(js, config, replicas)


class NatsFlashQueue:
    """Publishes flash jobs and restock broadcasts; runs this replica's workers."""

    def __init__(self, settings: NatsSettings, section: OrderSection, clock: Clock, name: str) -> None:
        self._settings = settings
        self._section = section
        self._clock = clock
        self._name = name
        self.names = QueueNames(section.flash_namespace)
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._subscriptions: list[Subscription | JetStreamContext.PullSubscription] = []
        self._connect_task: asyncio.Task[None] | None = None
        self._fetch_task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._handle: JobHandler | None = None
        self._on_restock: RestockHandler | None = None

    @property
    def available(self) -> bool:
        """True while jobs can be published (stream declared, connection up)."""
        return self._js is not None and self._client is not None and self._client.is_connected

    def start(self, handle: JobHandler, on_restock: RestockHandler) -> None:
        """Connect in the background (retrying), then run ``handle(ticket)`` per job and ``on_restock``."""
        self._handle, self._on_restock = handle, on_restock
        if self._settings.enabled:
            self._connect_task = asyncio.get_running_loop().create_task(
                self._connect_loop(), name="order-flash-queue"
            )

    async def _connect_loop(self) -> None:
        delay = RETRY_SECONDS
        while True:
            client: Client | None = None
            try:
                client = await connect(self._settings, self._name)
                js = client.jetstream()
                await ensure_job_stream(js, self.names, self._settings.stream_replicas)
                jobs = await js.pull_subscribe(
                    self.names.job_subject,
                    durable=self.names.durable,
                    stream=self.names.stream,
                    config=ConsumerConfig(
                        durable_name=self.names.durable,
                        ack_policy=AckPolicy.EXPLICIT,
                        ack_wait=self._section.flash_ack_wait_seconds,
                        max_deliver=-1,
                        max_ack_pending=MAX_ACK_PENDING,
                    ),
                )
                restocks = await client.subscribe(self.names.restock_subject, cb=self._on_restock_message)
            except Exception as exc:
                log.warning(
                    "flash work queue unavailable (%s); FlashBuy answers UNAVAILABLE; retry in %.0fs",
                    exc,
                    delay,
                )
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.close()
                await self._clock.sleep(delay)
                delay = min(MAX_RETRY_SECONDS, delay * 2)
                continue
            self._client, self._js, self._subscriptions = client, js, [jobs, restocks]
            self._fetch_task = asyncio.get_running_loop().create_task(
                self._fetch_loop(jobs), name="order-flash-workers"
            )
            log.info("flash work queue %s ready", self.names.stream)
            return

    # ------------------------------------------------------------------ publishing

    async def publish_job(self, ticket: str) -> None:
        """Queue the job of ``ticket``; TransientError (UNAVAILABLE) when the queue did not take it."""
        js = self._js
        if js is None or not self.available:
            raise TransientError("flash work queue unreachable; retry with the same request_id")
        try:
            await asyncio.wait_for(
                js.publish(self.names.job_subject, job_payload(ticket), headers={MSG_ID_HEADER: ticket}),
                PUBLISH_TIMEOUT_SECONDS,
            )
        except (NatsError, TimeoutError, OSError) as exc:
            raise TransientError(f"flash work queue did not take the job of {ticket}: {exc}") from exc

    async def broadcast_restock(self, sale_id: str) -> None:
        """Tell every replica that ``sale_id`` has units again (best effort: flags also expire)."""
        client = self._client
        if client is None or not client.is_connected:
            log.info("restock of flash sale %s not broadcast (NATS unavailable); flags expire", sale_id)
            return
        try:
            await client.publish(self.names.restock_subject, sale_id.encode())
        except (NatsError, OSError) as exc:
            log.warning("restock of flash sale %s not broadcast (%s); flags expire", sale_id, exc)

    async def _on_restock_message(self, msg: Msg) -> None:
        if self._on_restock is not None:
            self._on_restock(msg.data.decode(errors="replace"))

    # ------------------------------------------------------------------ workers

    async def _fetch_loop(self, jobs: JetStreamContext.PullSubscription) -> None:
        loop = asyncio.get_running_loop()
        while True:
            free = self._section.flash_workers - len(self._running)
            if free <= 0:
                await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                messages = await jobs.fetch(free, timeout=FETCH_SECONDS)
            except TimeoutError:
                continue
            except NatsError as exc:
                log.warning("flash work queue: fetch failed (%s); retrying", exc)
                await self._clock.sleep(FETCH_SECONDS)
                continue
            for msg in messages:
                task = loop.create_task(self._process(msg))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _process(self, msg: Msg) -> None:
        """Run one job: ack when it returns, nak with a delay when it raises, nak at once when stopped."""
        try:
            ticket = ticket_of_job(msg.data)
        except ValueError as exc:
            log.error("flash work queue: dropping a malformed job (%s): %r", exc, msg.data[:200])
            with contextlib.suppress(NatsError, OSError):
                await msg.term()
            return
        handle = self._handle
        if handle is None:  # not started: leave the job to a replica that is
            with contextlib.suppress(NatsError, OSError):
                await msg.nak()
            return
        keep_alive = asyncio.get_running_loop().create_task(self._keep_alive(msg))
        try:
            await handle(ticket)
        except asyncio.CancelledError:
            with contextlib.suppress(NatsError, OSError):
                await msg.nak()
            raise
        except Exception as exc:
            delivered = delivery_count(msg)
            delay = min(
                self._section.flash_max_retry_seconds,
                self._section.flash_retry_seconds * 2 ** max(0, delivered - 1),
            )
            if isinstance(exc, MeshError):
                log.warning(
                    "flash job %s failed on delivery %d (%s); again in %.1fs", ticket, delivered, exc, delay
                )
            else:
                log.exception("flash job %s failed on delivery %d; again in %.1fs", ticket, delivered, delay)
            with contextlib.suppress(NatsError, OSError):
                await msg.nak(delay=delay)
        else:
            with contextlib.suppress(NatsError, OSError):
                await msg.ack()
        finally:
            keep_alive.cancel()

    async def _keep_alive(self, msg: Msg) -> None:
        interval = self._section.flash_ack_wait_seconds / 3
        while True:
            await self._clock.sleep(interval)
            with contextlib.suppress(NatsError, OSError):
                await msg.in_progress()

    # ------------------------------------------------------------------ stop

    async def stop(self) -> None:
        """Stop fetching, let running jobs finish (a few seconds, then they are nak'ed), disconnect."""
        for task in (self._connect_task, self._fetch_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._connect_task = self._fetch_task = None
        if self._running:
            _, pending = await asyncio.wait(set(self._running), timeout=DRAIN_SECONDS)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for subscription in self._subscriptions:
            with contextlib.suppress(NatsError, asyncio.CancelledError):
                await subscription.unsubscribe()
        self._subscriptions = []
        if self._client is not None:
            with contextlib.suppress(NatsError, asyncio.CancelledError):
                await self._client.close()
            self._client = None
        self._js = None
