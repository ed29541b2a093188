"""What a barrier call did, and the barrier's own business failures (all map to ``ABORTED``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from meshkit.errors import BranchFailure

T = TypeVar("T")

# The MSG initiator's local transaction is branch "00" of its gid (DESIGN.md section 4).
MSG_BRANCH = "00"
# The reason query_prepared writes when it finds no local transaction: it may now never commit.
REASON_ROLLBACK = "rollback"


class Outcome(StrEnum):
    """How a barrier call ended when it did not fail."""

    APPLIED = "applied"  # first call of this op: the business code ran and committed with the barrier row
    DUPLICATE = "duplicate"  # the op already ran: business skipped, answer OK
    EMPTY_ROLLBACK = "empty_rollback"  # cancel/compensate before its try/action: business skipped, answer OK


@dataclass(frozen=True, slots=True)
class BarrierResult(Generic[T]):
    """The outcome of a barrier call and, when the business code ran, what it returned."""

    outcome: Outcome
    value: T | None = None

    @property
    def applied(self) -> bool:
        """True when the business code ran (and committed)."""
        return self.outcome is Outcome.APPLIED


class LateTryRejected(BranchFailure):
    """A try/action arrived after its branch was already rolled back (empty rollback): abort it."""

    def __init__(self, gid: str, branch_id: str, op: str) -> None:
        super().__init__(f"gid {gid} branch {branch_id}: rolled back before {op} (late {op} rejected)")


class DuplicateMessage(BranchFailure):
    """The MSG initiator's local transaction ran before: it must not run twice."""

    def __init__(self, gid: str) -> None:
        super().__init__(f"gid {gid}: duplicate (local transaction already committed)")


class MessageRolledBack(BranchFailure):
    """The MSG local transaction never committed and now never will (query_prepared got there first)."""

    def __init__(self, gid: str) -> None:
        super().__init__(f"gid {gid}: local transaction rolled back (not committed before query_prepared)")
