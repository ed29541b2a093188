"""The subtransaction barrier: exactly-once branch operations, empty rollback and late-try rejection.

* :class:`SqlBarrier` - the barrier table ``tx_barrier`` in the participant's own SQL database,
  written in the same local transaction as the business change.
* :class:`RedisBarrier` - the same rules in one Lua script for resources kept in Redis.
* :class:`BarrierCleaner` - deletes rows past the retention period in batches.

Run ``await meshkit.migrate.upgrade(engine, "barrier", BARRIER_VERSIONS)`` before using the SQL barrier.
"""

from meshkit.barrier.cleanup import BarrierCleaner
from meshkit.barrier.outcome import (
    BarrierResult,
    DuplicateMessage,
    LateTryRejected,
    MessageRolledBack,
    Outcome,
)
from meshkit.barrier.redis import RedisBarrier, RedisBarrierScript
from meshkit.barrier.sql import SqlBarrier
from meshkit.barrier.table import BARRIER_VERSIONS, tx_barrier

__all__ = [
    "BARRIER_VERSIONS",
    "BarrierCleaner",
    "BarrierResult",
    "DuplicateMessage",
    "LateTryRejected",
    "MessageRolledBack",
    "Outcome",
    "RedisBarrier",
    "RedisBarrierScript",
    "SqlBarrier",
    "tx_barrier",
]
