"""``mesh_barrier_outcomes_total{service, outcome}``: what the barrier did with each branch call.

Outcomes: ``applied`` (business ran), ``duplicate`` (already done, skipped), ``empty_rollback``
(cancel/compensate before its try/action) and ``late_try_rejected`` (a try/action after its rollback,
refused). Made once per process registry and handed to each barrier (SQL, runner or Redis).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter

from meshkit.barrier.outcome import BarrierResult, LateTryRejected, Outcome

T = TypeVar("T")

LATE_TRY_REJECTED = "late_try_rejected"


class BarrierMetrics:
    """The barrier-outcome counter of one service, its children bound once."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        counter = Counter(
            "mesh_barrier_outcomes_total",
            "Barrier calls by outcome (applied, duplicate, empty_rollback, late_try_rejected).",
            ("service", "outcome"),
            registry=registry,
        )
        names = [o.value for o in Outcome] + [LATE_TRY_REJECTED]
        self._inc: dict[str, Callable[[], None]] = {
            name: counter.labels(service=service, outcome=name).inc for name in names
        }

    def outcome(self, outcome: Outcome) -> None:
        """Count one barrier call that ended with ``outcome``."""
        self._inc[outcome.value]()

    def late_try_rejected(self) -> None:
        """Count one try/action refused because its rollback came first."""
        self._inc[LATE_TRY_REJECTED]()

    async def observe(self, call: Awaitable[BarrierResult[T]]) -> BarrierResult[T]:
        """Await a barrier call and count its outcome (a refused late try too); re-raises its error."""
        try:
            result = await call
        except LateTryRejected:
            self.late_try_rejected()
            raise
        self.outcome(result.outcome)
        return result
