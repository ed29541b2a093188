"""Background deletion of the Redis barrier entries of final global transactions past retention.

The same rule as :mod:`meshkit.barrier.cleanup` (read its docstring for why age alone is never enough
and why gids unknown to the coordinator may go): a gid's hash ``mesh:barrier:{gid}`` is deleted only
when its LATEST entry (the index score, see :mod:`meshkit.barrier.redis`) is older than
``barrier.retention_days`` and the coordinator reports the gid finished or unknown. The whole hash goes
at once: the gid is final, so no later op of it can come.
"""

from __future__ import annotations

import logging
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from meshkit.barrier.finality import FinalityOracle, FinalityUnavailable
from meshkit.barrier.redis import INDEX_KEY, barrier_key
from meshkit.infra.redisutil import as_text
from meshkit.runtime.clock import Clock, days_to_ms, now_ms
from meshkit.settings.config import BarrierSettings

log = logging.getLogger(__name__)

_FORGET = (Path(__file__).resolve().parent / "forget.lua").read_text()


class RedisBarrierCleaner:
    """Deletes the barrier hashes of final gids older than the retention period, batch by batch.

    One round reads the old gids from the index (``ZRANGEBYSCORE``, oldest first, ``cleanup_batch`` at
    a time), asks ``oracle`` once per batch, and deletes each final gid's hash and index member in one
    script. Unfinished gids stay; the next batch starts past them (an offset of the gids kept so far,
    which stays exact because only this cleaner removes old members), so a round always ends. When the
    coordinator cannot answer, the round stops; the next one tries again.
    """

    def __init__(
        self, client: Redis, settings: BarrierSettings, clock: Clock, oracle: FinalityOracle
    ) -> None:
        self._client = client
        self._settings = settings
        self._clock = clock
        self._oracle = oracle
        self._forget = client.register_script(_FORGET)
        self.rounds = 0  # rounds finished (deleted, or gave up on an unreachable coordinator)

    async def run_once(self) -> int:
        """One round as of the clock's now: the number of gids whose entries were deleted.

        Raises :class:`FinalityUnavailable` when the coordinator cannot answer.
        """
        cutoff = now_ms(self._clock) - days_to_ms(self._settings.retention_days)
        batch = self._settings.cleanup_batch
        kept = 0
        total = 0
        while True:
            raw = await self._client.zrangebyscore(INDEX_KEY, "-inf", f"({cutoff}", start=kept, num=batch)
            gids = [as_text(gid) for gid in raw]  # members only (no scores asked)
            if not gids:
                return total
            answer = await self._oracle.final(gids)
            final = [gid for gid in gids if gid in answer]
            if final:
                keys = [INDEX_KEY, *(barrier_key(gid) for gid in final)]
                total += int(await self._forget(keys=keys, args=final))
            kept += len(gids) - len(final)
            if len(gids) < batch:
                return total

    async def run_forever(self) -> None:
        """Run :meth:`run_once` every ``cleanup_interval_seconds`` (clock time) until cancelled.

        Redis errors and an unreachable coordinator are logged and the next round tries again.
        """
        while True:
            try:
                deleted = await self.run_once()
            except FinalityUnavailable as exc:
                log.warning("redis barrier cleanup skipped, finality unknown; retrying next round: %s", exc)
            except (RedisError, OSError):
                log.exception("redis barrier cleanup failed; retrying next round")
            else:
                log.info("redis barrier cleanup deleted %d gids", deleted, extra={"deleted": deleted})
            self.rounds += 1
            await self._clock.sleep(self._settings.cleanup_interval_seconds)
