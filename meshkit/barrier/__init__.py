"""The subtransaction barrier: exactly-once branch operations, empty rollback and late-try rejection.

* :class:`SqlBarrier` - the barrier table ``tx_barrier`` in the participant's own SQL database,
  written in the same local transaction as the business change.
* :class:`RunnerBarrier` - the same rules and table as units of work on a
  :class:`meshkit.store.StoreRunner` (the hot path: barrier, business SQL and commit in one hop).
* :class:`RedisBarrier` - the same rules in one Lua script for resources kept in Redis.
* :class:`BarrierCleaner` / :class:`RedisBarrierCleaner` - delete the entries of final transactions
  past the retention period, in batches; finality comes from a :class:`FinalityOracle` (the
  coordinator, through :class:`meshkit.tx.finality.CoordinatorFinality`).
* :class:`BarrierMetrics` - ``mesh_barrier_outcomes_total`` of a service; pass it to each barrier.

Run ``await meshkit.infra.migrate.upgrade(engine, "barrier", BARRIER_VERSIONS)`` before using the SQL barrier.
"""

from meshkit.barrier.cleanup import BarrierCleaner
from meshkit.barrier.finality import FinalityOracle, FinalityUnavailable
from meshkit.barrier.metrics import BarrierMetrics
from meshkit.barrier.outcome import (
    BarrierResult,
    DuplicateMessage,
    LateTryRejected,
    MessageRolledBack,
    Outcome,
)
from meshkit.barrier.redis import RedisBarrier, RedisBarrierScript
from meshkit.barrier.redis_cleanup import RedisBarrierCleaner
from meshkit.barrier.runner import RunnerBarrier
from meshkit.barrier.sql import SqlBarrier
from meshkit.barrier.table import BARRIER_VERSIONS, tx_barrier

__all__ = [
    "BARRIER_VERSIONS",
    "BarrierCleaner",
    "BarrierMetrics",
    "BarrierResult",
    "DuplicateMessage",
    "FinalityOracle",
    "FinalityUnavailable",
    "LateTryRejected",
    "MessageRolledBack",
    "Outcome",
    "RedisBarrier",
    "RedisBarrierCleaner",
    "RedisBarrierScript",
    "RunnerBarrier",
    "SqlBarrier",
    "tx_barrier",
]
