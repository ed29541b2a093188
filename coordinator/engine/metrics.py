"""The coordinator's Prometheus metrics (DESIGN.md section 7), registered on a registry passed in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from coordinator.engine.model import Mode, Status
from coordinator.engine.ports import Outcome

LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def label(value: Mode | Status) -> str:
    """The label value of a mode or status (``tcc``, ``succeeded``)."""
    return value.name.lower()


class EngineMetrics:
    """Transaction, branch-call and timer metrics of one coordinator replica.

    The store-derived gauges (``mesh_tx_inflight``, ``mesh_tx_oldest_unfinished_seconds``,
    ``mesh_tx_stuck_unfinished``) describe the shared store, not this replica: every replica exports
    the same value under its own ``replica`` label, so aggregate them with ``max`` (never ``sum``).
    """

    def __init__(self, registry: CollectorRegistry, *, replica: str = "") -> None:
        self.registry = registry
        self.replica = replica
        self.tx_total = Counter(
            "mesh_tx_total", "Transactions that entered a status.", ("mode", "status"), registry=registry
        )
        self.tx_inflight = Gauge(
            "mesh_tx_inflight",
            "Unfinished transactions by status (from the store; per replica: aggregate with max).",
            ("mode", "status", "replica"),
            registry=registry,
        )
        self.oldest_unfinished = Gauge(
            "mesh_tx_oldest_unfinished_seconds",
            "Age of the oldest unfinished transaction (from the store; per replica: aggregate with max).",
            ("replica",),
            registry=registry,
        )
        self.stuck = Gauge(
            "mesh_tx_stuck_unfinished",
            "Unfinished transactions marked stuck (from the store; per replica: aggregate with max).",
            ("replica",),
            registry=registry,
        )
        self.stuck_total = Counter(
            "mesh_tx_stuck_total",
            "Transactions that became stuck (an op past its retry limit that must still succeed).",
            ("mode", "op"),
            registry=registry,
        )
        self.branch_calls = Counter(
            "mesh_branch_calls_total",
            "Branch calls made, by result.",
            ("mode", "op", "result"),
            registry=registry,
        )
        self.branch_retries = Counter(
            "mesh_branch_retries_total",
            "Branch calls that were retries (not the first attempt).",
            registry=registry,
        )
        self.timer_lateness = Histogram(
            "mesh_timer_lateness_seconds",
            "How late due work was picked up, by what picked it up (local, jetstream, sweeper).",
            ("source",),
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )
        self.timer_hints = Counter(
            "mesh_timer_hints_total",
            "Timer fires (hints that a transaction may be due) received, by source (local, jetstream).",
            ("source",),
            registry=registry,
        )
        self.timer_claims = Counter(
            "mesh_timer_claims_total",
            "Claim statements made for timer hints; each claims a batch of hinted transactions.",
            registry=registry,
        )

    def entered(self, mode: Mode, status: Status) -> None:
        """A transaction entered ``status``."""
        self.tx_total.labels(mode=label(mode), status=label(status)).inc()

    def branch_call(self, mode: Mode, op: str, outcome: Outcome, attempt: int) -> None:
        """One branch call finished; ``attempt`` is its number (1 = first)."""
        self.branch_calls.labels(mode=label(mode), op=op, result=outcome.value).inc()
        if attempt > 1:
            self.branch_retries.inc()

    def became_stuck(self, mode: Mode, op: str) -> None:
        """A transaction became stuck because of ``op``."""
        self.stuck_total.labels(mode=label(mode), op=op).inc()

    def late(self, source: str, seconds: float) -> None:
        """Due work was picked up ``seconds`` after it was due."""
        self.timer_lateness.labels(source=source).observe(max(0.0, seconds))

    def hinted(self, source: str) -> None:
        """A timer fire for one transaction arrived from ``source``."""
        self.timer_hints.labels(source=source).inc()

    def claimed_hints(self) -> None:
        """One claim statement was made for a batch of hinted transactions."""
        self.timer_claims.inc()

    def set_gauges(self, inflight: dict[tuple[Mode, Status], int], oldest_seconds: float, stuck: int) -> None:
        """Refresh the store-derived gauges (every label pair present is set; absent ones are zeroed)."""
        for mode in Mode:
            for status in Status:
                if status.final:
                    continue
                value = inflight.get((mode, status), 0)
                self.tx_inflight.labels(mode=label(mode), status=label(status), replica=self.replica).set(
                    value
                )
        self.oldest_unfinished.labels(replica=self.replica).set(oldest_seconds)
        self.stuck.labels(replica=self.replica).set(stuck)
