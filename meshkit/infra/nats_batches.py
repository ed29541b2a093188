"""Consume a JetStream subject in batches: a durable pull consumer, many messages per fetch.

Timer fires (the coordinator's transaction timeouts, order pay deadlines) come in bursts: thousands
may fall due within a second. A push consumer hands them to one callback one message at a time; a
pull consumer fetches up to ``batch`` messages per request, so the handler sees a burst as a few
lists and can claim their work with one statement each. Every process that consumes with the same
durable name shares the work (each message goes to one fetch). A handled batch is acked message by
message (explicit acks: a batch fetched by another replica is never acked by this one) when its
handler returns, so a handler that returns only once the work is done (or safely queued elsewhere)
makes an ack mean "handled"; a batch whose handler raised is nak'ed with a delay and comes back. No
fetch happens while a handler runs; one that takes longer than ``ack_wait`` sees its messages
redelivered to another fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import NotFoundError

from meshkit.runtime.clock import Clock

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Msg]], Awaitable[None]]
RETRY_SECONDS = 1.0  # pause after a failed fetch (server gone: the client reconnects meanwhile)
NAK_DELAY_SECONDS = 1.0


class BatchConsumer:
    """Fetches batches from durable pull consumer ``durable`` on ``subject`` and hands them over."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        stream: str,
        subject: str,
        durable: str,
        handler: BatchHandler,
        clock: Clock,
        batch: int = 256,
        wait_seconds: float = 1.0,
        ack_wait_seconds: float = 30.0,
    ) -> None:
        self._js = js
        self._stream = stream
        self._subject = subject
        self._durable = durable
        self._handler = handler
        self._clock = clock
        self._batch = batch
        self._wait = wait_seconds
        self._ack_wait = ack_wait_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Create (or adopt) the pull consumer and start fetching in the background.

        A push consumer of the same name (what earlier versions created) is deleted first: a
        work-queue stream allows one consumer per subject, and a durable cannot change kind.
        """
        await self._drop_push_consumer()
        config = ConsumerConfig(
            durable_name=self._durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            max_ack_pending=10_000,
            max_waiting=512,
        )
        subscription = await self._js.pull_subscribe(
            self._subject, durable=self._durable, stream=self._stream, config=config
        )
        self._task = asyncio.get_running_loop().create_task(
            self._run(subscription.fetch), name=f"consume-{self._durable}", context=contextvars.Context()
        )

    async def stop(self) -> None:
        """Stop fetching (unacked messages come back to another consumer after ``ack_wait``)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _drop_push_consumer(self) -> None:
        try:
            info = await self._js.consumer_info(self._stream, self._durable)
        except NotFoundError:
            return
        if info.config.deliver_subject:
            await self._js.delete_consumer(self._stream, self._durable)
            log.info("nats: replaced push consumer %s by a pull consumer", self._durable)

    async def _run(self, fetch: Callable[..., Awaitable[list[Msg]]]) -> None:
        while True:
            try:
                messages = await fetch(self._batch, timeout=self._wait)
            except NatsTimeoutError:
                continue  # nothing arrived within the wait
            except (NatsError, OSError) as exc:
                log.debug("nats: fetch on %s failed (%s); retrying", self._durable, exc)
                await self._clock.sleep(RETRY_SECONDS)
                continue
            await self._handle(messages)

    async def _handle(self, messages: Sequence[Msg]) -> None:
        try:
            await self._handler(messages)
        except Exception:
            log.exception(
                "nats: handler of %s failed on %d messages; redelivery later", self._durable, len(messages)
            )
            await _settle(messages, nak=True)
            return
        await _settle(messages, nak=False)


async def _settle(messages: Sequence[Msg], *, nak: bool) -> None:
    """Ack (or nak with a delay) every message; a lost connection leaves them to redelivery."""
    for msg in messages:
        try:
            if nak:
                await msg.nak(delay=NAK_DELAY_SECONDS)
            else:
                await msg.ack()
        except (NatsError, OSError):
            return
