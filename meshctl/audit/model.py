"""What ``meshctl audit`` works on: the gathered reports of every service and the coordinator's view.

Plain data, no I/O: :mod:`meshctl.audit.gather` fills it over gRPC, tests build it by hand, and
:mod:`meshctl.audit.checks` judges it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from meshpb.coordinator.v1 import coordinator_pb2
from meshpb.order.v1 import order_pb2
from meshpb.pay.v1 import pay_pb2
from meshpb.points.v1 import points_pb2
from meshpb.stock.v1 import stock_pb2

UNFINISHED_STATUSES = (
    coordinator_pb2.STATUS_PREPARED,
    coordinator_pb2.STATUS_SUBMITTED,
    coordinator_pb2.STATUS_ABORTING,
)


@dataclass(frozen=True, slots=True)
class CoordinatorView:
    """The coordinator's side of the audit.

    ``unfinished``: every non-final transaction seen while the reports were gathered (the view taken
    before and the one taken after, merged). ``stuck_gids``: what ``meshctl tx stuck`` lists.
    ``activity``: transactions started or ended while the reports were gathered (their figures may be
    mid-change). ``complete`` is False when the Admin API was not usable and only the transactions of
    the orders were queried one by one (``note`` says why).
    """

    now_ms: int
    unfinished: tuple[coordinator_pb2.Transaction, ...] = ()
    stuck_gids: frozenset[str] = frozenset()
    activity: bool = False
    complete: bool = True
    note: str = ""

    @property
    def at_rest(self) -> bool:
        """True when no transaction was in flight while the reports were gathered."""
        return not self.unfinished and not self.activity


@dataclass(frozen=True, slots=True)
class MeshReport:
    """One audit snapshot: each service's Audit answer plus the coordinator's view."""

    stock: stock_pb2.StockAudit
    points: points_pb2.PointsAudit
    orders: order_pb2.OrderAudit
    pay: pay_pb2.PayAudit
    coordinator: CoordinatorView


class Verdict(StrEnum):
    """The result of one invariant check."""

    PASS = "PASS"
    FAIL = "FAIL"
    # Only figures that may legitimately be mid-change disagree, and transactions are in flight.
    SKIP = "SKIP"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One invariant: its verdict, the numbers behind it and every violation found."""

    key: str
    title: str
    verdict: Verdict
    numbers: dict[str, int] = field(default_factory=dict)
    violations: tuple[str, ...] = ()
    note: str = ""

    @property
    def ok(self) -> bool:
        """True unless the invariant is violated (a SKIP is not a violation)."""
        return self.verdict is not Verdict.FAIL
