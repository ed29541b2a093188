"""Client side of ``grpc.health.v1.Health``: ask one server, or wait until several answer SERVING."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meshkit.runtime.clock import Clock, SystemClock

SERVING = "SERVING"
UNREACHABLE = "UNREACHABLE"


async def check_health(target: str, service: str = "", rpc_seconds: float = 2.0) -> str:
    """The serving status ``target`` reports for ``service`` (``""`` = the whole server).

    Returns the status name (``SERVING``, ``NOT_SERVING``, ``SERVICE_UNKNOWN``, ...), ``UNREACHABLE``
    when the server does not answer, or the status code name when the check itself fails.
    """
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=rpc_seconds)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return UNREACHABLE
            return exc.code().name
    name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return name


async def check_all(targets: Sequence[str], rpc_seconds: float = 2.0) -> dict[str, str]:
    """:func:`check_health` of every target, concurrently."""
    results = await asyncio.gather(*(check_health(t, rpc_seconds=rpc_seconds) for t in targets))
    return dict(zip(targets, results, strict=True))


class HealthTimeout(Exception):
    """Not every target answered SERVING in time; ``statuses`` holds the last answers."""

    def __init__(self, statuses: dict[str, str]) -> None:
        failing = ", ".join(f"{t}={s}" for t, s in statuses.items() if s != SERVING)
        super().__init__(f"not serving: {failing}")
        self.statuses = statuses


async def wait_serving(
    targets: Sequence[str],
    within_seconds: float,
    *,
    interval: float = 0.2,
    clock: Clock | None = None,
    give_up: Callable[[], str | None] | None = None,
) -> dict[str, str]:
    """Poll until every target answers SERVING; returns their statuses.

    Raises :class:`HealthTimeout` after ``within_seconds``, or as soon as ``give_up()`` returns a
    reason (e.g. a server process exited), with the reason recorded under the key ``"give_up"``.
    """
    clk = clock or SystemClock()
    deadline = clk.monotonic() + within_seconds
    while True:
        statuses = await check_all(targets, rpc_seconds=min(2.0, within_seconds))
        if all(s == SERVING for s in statuses.values()):
            return statuses
        reason = give_up() if give_up is not None else None
        if reason is not None:
            raise HealthTimeout({**statuses, "give_up": reason})
        if clk.monotonic() >= deadline:
            raise HealthTimeout(statuses)
        await clk.sleep(interval)
