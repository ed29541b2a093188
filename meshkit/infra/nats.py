"""NATS JetStream helpers: connect, declare streams, schedule messages, consume with explicit acks.

Message schedules (nats-server >= 2.12, ADR-51) as used for the coordinator timers and the pay deadline.
What follows was established by experiment against nats-server 2.15.1 with nats-py 2.16 (see
``tests/integration/meshkit/infra/test_nats_helper.py``):

* The stream must have ``allow_msg_schedules`` (nats-py 2.16's ``StreamConfig`` has the field, so no raw
  ``$JS.API`` call is needed). It can be switched on by a stream update, but never off again (the
  server answers "message schedules can not be disabled"); :func:`ensure_stream` therefore never tries.
* A schedule is a message published (through JetStream) on a *schedule subject* with the headers
  ``Nats-Schedule: @at <RFC3339>`` and ``Nats-Schedule-Target: <subject>``. Both subjects must belong to
  the same stream and must differ; a target outside the stream, a missing target or the target equal to
  the schedule subject is refused with "message schedules target is invalid" (err 10190), a bad time with
  "message schedules pattern is invalid" (err 10189). RFC3339 with fractional seconds and with a UTC
  offset is accepted; we send UTC with microseconds.
* At the time, the server stores the schedule message's payload on the target subject, with the
  schedule's other headers copied plus ``Nats-Scheduler: <schedule subject>`` and
  ``Nats-Schedule-Next: purge``, and removes the schedule message. Fire time is accurate to a few ms.
* The fired message is written straight into the stream: a plain core-NATS subscriber on the target
  subject does NOT see it; only JetStream consumers do.
* One pending schedule per schedule subject: publishing a new schedule on the same subject replaces the
  pending one (later or earlier time, even another target); only the newest fires. Publishing a message
  without schedule headers there cancels the pending schedule (that message just stays in the stream).
  So a timer per transaction is ``schedule_subject = <prefix>.<gid>`` and re-arming is a re-publish.
* A time in the past fires at once (within the server's scheduler tick, ~0.25 s).
* Schedules are stored in the stream: they survive a server restart, and those that fell due while the
  server was down fire right after it comes back.
* A stream ``max_age`` applies to pending schedule messages too: a schedule further ahead than
  ``max_age`` is silently lost. Keep ``max_age_seconds`` above the longest delay you schedule.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from meshkit.observability.redact import redact_urls
from meshkit.settings.config import NatsSettings

log = logging.getLogger(__name__)

SCHEDULE_HEADER = "Nats-Schedule"
SCHEDULE_TARGET_HEADER = "Nats-Schedule-Target"
SCHEDULER_HEADER = "Nats-Scheduler"
STREAM_NAME_IN_USE = 10058
RECONNECT_WAIT_SECONDS = 2
CONNECT_TIMEOUT_SECONDS = 5

Handler = Callable[[Msg], Awaitable[None]]


def auth_options(settings: NatsSettings) -> dict[str, Any]:
    """The credential and TLS keyword arguments of ``nats.connect`` that ``settings`` ask for.

    Raises :class:`OSError` (or :class:`ssl.SSLError`) when a TLS file cannot be read.
    """
    options: dict[str, Any] = {}
    if settings.creds_file:
        options["user_credentials"] = settings.creds_file
    if settings.user:
        options["user"] = settings.user
        options["password"] = settings.password.get_secret_value()
    if settings.token.get_secret_value():
        options["token"] = settings.token.get_secret_value()
    if settings.uses_tls:
        context = ssl.create_default_context(cafile=settings.tls_ca_file or None)
        if settings.tls_cert_file:
            context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
        options["tls"] = context
        if settings.tls_hostname:
            options["tls_hostname"] = settings.tls_hostname
    return options


async def connect(settings: NatsSettings, name: str) -> Client:
    """Connect to ``settings.url`` (comma-separated for a cluster) as client ``name``.

    Credentials (a creds file, user and password, or a token) and TLS come from ``settings``
    (:func:`auth_options`). Once connected, the client reconnects forever and logs every disconnect and
    reconnect, URL passwords hidden. The first connection attempt is not retried: it raises
    (``nats.errors.NoServersError``) so the caller decides.
    """
    servers = settings.servers
    shown = redact_urls(",".join(servers))

    async def on_disconnect() -> None:
        log.warning("nats: disconnected from %s (%s), reconnecting", shown, name)

    async def on_reconnect() -> None:
        log.info("nats: reconnected to %s (%s)", shown, name)

    async def on_error(exc: Exception) -> None:
        log.warning("nats: %s (%s): %s", shown, name, redact_urls(str(exc)))

    async def on_closed() -> None:
        log.info("nats: connection to %s closed (%s)", shown, name)

    client = await nats.connect(
        servers=servers,
        name=name,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=RECONNECT_WAIT_SECONDS,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
        closed_cb=on_closed,
        **auth_options(settings),
    )
    log.info("nats: connected to %s (%s)", shown, name)
    return client


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    subjects: list[str],
    *,
    allow_msg_schedules: bool = True,
    max_age_seconds: float | None = None,
    replicas: int = 1,
) -> None:
    """Create stream ``name`` over ``subjects``, or update it to them; idempotent and race-safe.

    An existing stream keeps its other settings; message schedules, once on, stay on.
    ``max_age_seconds=None`` means messages never expire by age. ``replicas`` (``nats.stream_replicas``)
    above 1 needs a JetStream cluster of at least that many servers.
    """
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        config = StreamConfig(
            name=name,
            subjects=list(subjects),
            allow_msg_schedules=allow_msg_schedules or None,
            max_age=max_age_seconds or 0,
            num_replicas=replicas,
        )
        try:
            await js.add_stream(config)
            log.info("nats: created stream %s on %s", name, subjects)
            return
        except BadRequestError as exc:
            if exc.err_code != STREAM_NAME_IN_USE:
                raise
            info = await js.stream_info(name)  # someone else created it meanwhile
    current = info.config
    wanted = dataclasses.replace(
        current,
        subjects=list(subjects),
        allow_msg_schedules=bool(current.allow_msg_schedules) or allow_msg_schedules or None,
        max_age=max_age_seconds or 0,
        num_replicas=replicas,
    )
    if _stream_differs(current, wanted):
        await js.update_stream(wanted)
        log.info("nats: updated stream %s to %s", name, subjects)


async def create_stream_if_missing(js: JetStreamContext, config: StreamConfig, replicas: int = 1) -> None:
    """Create the stream ``config`` describes, with ``replicas`` replicas, unless one of that name exists.

    An existing stream is left as it is (retention, for one, cannot change after creation) except for
    its replica count, which is raised or lowered to ``replicas`` (``nats.stream_replicas``: going to
    R3 on a cluster needs no new stream). A concurrent creation by another process is not an error.
    """
    config = dataclasses.replace(config, num_replicas=replicas)
    try:
        info = await js.stream_info(config.name or "")
    except NotFoundError:
        pass
    else:
        await _set_replicas(js, info.config, replicas)
        return
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != STREAM_NAME_IN_USE:
            raise
        return
    log.info("nats: created stream %s on %s", config.name, config.subjects)


async def _set_replicas(js: JetStreamContext, current: StreamConfig, replicas: int) -> None:
    if (current.num_replicas or 1) == replicas:
        return
    await js.update_stream(dataclasses.replace(current, num_replicas=replicas))
    log.info(
        "nats: stream %s now has %d replicas (was %d)", current.name, replicas, current.num_replicas or 1
    )


def _stream_differs(current: StreamConfig, wanted: StreamConfig) -> bool:
    return (
        (current.num_replicas or 1) != (wanted.num_replicas or 1)
        or sorted(current.subjects or []) != sorted(wanted.subjects or [])
        or bool(current.allow_msg_schedules) != bool(wanted.allow_msg_schedules)
        or float(current.max_age or 0) != float(wanted.max_age or 0)
    )


def rfc3339_utc(epoch_seconds: float) -> str:
    """``epoch_seconds`` as RFC3339 in UTC with microseconds (``2026-01-02T03:04:05.123456Z``)."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def schedule_at(
    js: JetStreamContext,
    *,
    schedule_subject: str,
    target_subject: str,
    at_epoch_seconds: float,
    payload: bytes,
    headers: dict[str, str] | None = None,
) -> None:
    """Have the server publish ``payload`` (and ``headers``) on ``target_subject`` at the given time.

    Replaces any schedule pending on ``schedule_subject``; a time in the past fires at once. Both
    subjects must be in one stream with message schedules on. Raises ``nats.js.errors.APIError`` when
    the server refuses the schedule and ``nats.errors.TimeoutError`` when it does not answer.
    """
    if schedule_subject == target_subject:
        raise ValueError("schedule_subject and target_subject must differ")
    all_headers = dict(headers or {})
    all_headers[SCHEDULE_HEADER] = f"@at {rfc3339_utc(at_epoch_seconds)}"
    all_headers[SCHEDULE_TARGET_HEADER] = target_subject
    await js.publish(schedule_subject, payload, headers=all_headers)


async def subscribe_explicit_ack(
    js: JetStreamContext,
    subject: str,
    durable: str,
    handler: Handler,
    *,
    ack_wait_seconds: float = 30,
    max_deliver: int = -1,
    retry_delay_seconds: float = 1.0,
    max_retry_delay_seconds: float = 60.0,
) -> Subscription:
    """Consume ``subject`` through durable consumer ``durable``, acking each message once handled.

    The consumer is a push consumer with deliver group ``durable``, so every process that subscribes
    with the same ``durable`` shares the work and each message goes to one of them. When ``handler``
    returns, the message is acked; when it raises, it is logged and nak'ed with a delay that doubles per
    delivery (``retry_delay_seconds`` up to ``max_retry_delay_seconds``) so it comes back later, up to
    ``max_deliver`` deliveries (-1 = forever). A handler that runs longer than ``ack_wait_seconds`` gets
    the message redelivered. The settings apply when the consumer is created; an existing durable
    consumer keeps its own.
    """

    async def on_message(msg: Msg) -> None:
        try:
            await handler(msg)
        except Exception:
            delivered = _delivery_count(msg)
            delay = min(max_retry_delay_seconds, retry_delay_seconds * 2 ** max(0, delivered - 1))
            final = max_deliver > 0 and delivered >= max_deliver
            log.exception(
                "nats: handler for %s (consumer %s) failed on delivery %d; %s",
                msg.subject,
                durable,
                delivered,
                "giving up (max_deliver reached)" if final else f"redelivery in {delay:.1f} s",
            )
            await msg.nak(delay=delay)
            return
        await msg.ack()

    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_seconds,
        max_deliver=max_deliver,
    )
    return await js.subscribe(
        subject, queue=durable, durable=durable, cb=on_message, manual_ack=True, config=config
    )


def _delivery_count(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered)
    except (ValueError, TypeError, AttributeError):
        return 1
