"""The periodic ping of a process's required stores, driving its gRPC health.

Every ``server.store_probe_interval_seconds`` each store is pinged (Redis ``PING``, SQL ``SELECT 1``)
within ``server.store_probe_timeout_seconds``; while one fails the process reports NOT_SERVING (load
balancers and the coordinator's health checks move away), once all answer again SERVING.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from meshkit.runtime.clock import Clock
from meshkit.runtime.periodic import Periodic
from meshkit.settings.config import MeshSettings, ServerSettings

log = logging.getLogger(__name__)

SetServing = Callable[[bool], Awaitable[None]]
StopHook = Callable[[], Awaitable[None]]


class Watched(Protocol):
    """What the probe needs of a server (a :class:`~meshkit.rpc.server.MeshServer`)."""

    @property
    def settings(self) -> MeshSettings:
        """The process's settings (``server.store_probe_*``)."""
        ...

    async def set_serving(self, serving: bool) -> None:
        """Mark every service SERVING or NOT_SERVING."""

    def add_stop_hook(self, hook: StopHook) -> None:
        """Run ``hook`` once the server stopped."""


@dataclass(frozen=True)
class StoreCheck:
    """One required store: its name (for the log) and a ping that raises while it is down."""

    name: str
    ping: Callable[[], Awaitable[object]]


def redis_check(redis: Redis, name: str = "redis") -> StoreCheck:
    """A Redis ``PING``."""
    return StoreCheck(name, redis.ping)


def sql_check(engine: AsyncEngine, name: str = "db") -> StoreCheck:
    """An SQL ``SELECT 1`` on a pooled connection."""

    async def ping() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return StoreCheck(name, ping)


class StoreProbe:
    """Pings ``checks`` on an interval and reports every round's verdict to ``set_serving``."""

    def __init__(
        self,
        checks: Sequence[StoreCheck],
        set_serving: SetServing,
        clock: Clock,
        *,
        interval_seconds: float,
        timeout_seconds: float,
    ) -> None:
        self._checks = list(checks)
        self._set_serving = set_serving
        self._interval = interval_seconds
        self._timeout = timeout_seconds
        self._down: set[str] = set()
        self._rounds = Periodic(self._round, clock, interval_seconds, "store-probe")

    @classmethod
    def of(
        cls, checks: Sequence[StoreCheck], set_serving: SetServing, clock: Clock, settings: ServerSettings
    ) -> StoreProbe:
        """A probe with the interval and timeout of ``settings``."""
        return cls(
            checks,
            set_serving,
            clock,
            interval_seconds=settings.store_probe_interval_seconds,
            timeout_seconds=settings.store_probe_timeout_seconds,
        )

    @property
    def down(self) -> frozenset[str]:
        """The stores that failed the last round."""
        return frozenset(self._down)

    async def _fails(self, check: StoreCheck) -> str | None:
        try:
            await asyncio.wait_for(check.ping(), self._timeout)
        except Exception as exc:  # whatever the driver raises, the store is not usable
            return f"{type(exc).__name__}: {exc}"
        return None

    async def round_once(self) -> bool:
        """Ping every store once, report the verdict; True when all answered."""
        reasons = await asyncio.gather(*(self._fails(check) for check in self._checks))
        down = {check.name: reason for check, reason in zip(self._checks, reasons, strict=True) if reason}
        for name, reason in down.items():
            if name not in self._down:
                log.warning("store %s is down (%s): health NOT_SERVING", name, reason, extra={"store": name})
        for name in self._down - down.keys():
            log.info("store %s answers again", name, extra={"store": name})
        self._down = set(down)
        # Every round, not only on a change: the server's own start sets SERVING, and this corrects it.
        await self._set_serving(not down)
        return not down

    async def _round(self) -> int:
        await self.round_once()
        return 0  # the verdict is logged by round_once, on a change only

    def start(self) -> None:
        """Start the rounds in the background, the first one an interval from now (off at interval 0)."""
        if self._interval > 0 and self._checks:
            self._rounds.start()

    async def stop(self) -> None:
        """Stop the rounds (a running one is cancelled)."""
        await self._rounds.stop()


def watch_stores(server: Watched, checks: Sequence[StoreCheck], clock: Clock) -> StoreProbe:
    """Start probing ``checks`` for ``server``'s health; the probe stops with the server."""
    probe = StoreProbe.of(checks, server.set_serving, clock, server.settings.server)
    server.add_stop_hook(probe.stop)
    probe.start()
    return probe
