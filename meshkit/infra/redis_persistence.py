"""The start-up check of the Redis durability a hot path relies on: AOF on, ``noeviction``.

stock_svc keeps the sellable stock in Redis: without the append-only file a restart loses the
reservations made since the last snapshot, and an evicting ``maxmemory-policy`` drops SKUs silently.
``redis.persistence_check`` decides what a shortfall does: ``warn`` (log), ``refuse`` (do not start) or
``off``. A server that refuses ``CONFIG GET`` (managed Redis often does) or does not answer cannot be
checked: that is always only a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from meshkit.infra.redisutil import as_text
from meshkit.settings.failfast import StartupRefused

log = logging.getLogger(__name__)

REQUIRED = {"appendonly": "yes", "maxmemory-policy": "noeviction"}


@dataclass(frozen=True)
class Persistence:
    """What the server said: the value of each required parameter, or ``unknown`` with the reason."""

    values: dict[str, str]
    unknown: str = ""

    @property
    def shortfalls(self) -> list[str]:
        """``name=value (need required)`` for every parameter that is not as required."""
        return [
            f"{name}={self.values.get(name, '?')} (need {need})"
            for name, need in REQUIRED.items()
            if self.values.get(name) != need
        ]


async def read_persistence(redis: Redis) -> Persistence:
    """``CONFIG GET`` of the required parameters; ``unknown`` set when the server will not tell."""
    values: dict[str, str] = {}
    try:
        for name in REQUIRED:
            reply = await redis.config_get(name)
            for key, value in reply.items():
                values[as_text(key).lower()] = as_text(value).lower()
    except RedisError as exc:
        return Persistence(values, unknown=f"{type(exc).__name__}: {exc}")
    return Persistence(values)


async def check_persistence(redis: Redis, mode: str) -> Persistence | None:
    """Check ``redis`` as ``mode`` (``warn``/``refuse``/``off``) says; :class:`StartupRefused` on refuse."""
    if mode == "off":
        return None
    found = await read_persistence(redis)
    if found.unknown:
        log.warning("Redis persistence not checked (%s); it needs appendonly yes, noeviction", found.unknown)
        return found
    shortfalls = found.shortfalls
    if not shortfalls:
        return found
    problem = f"Redis persistence: {', '.join(shortfalls)}; a restart or eviction loses hot stock"
    if mode == "refuse":
        raise StartupRefused(f"refusing to start: {problem} (redis.persistence_check=refuse)")
    log.warning("%s (redis.persistence_check=warn)", problem)
    return found
