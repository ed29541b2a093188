"""What a planner decides for a transaction at one moment, and helpers shared by the mode planners.

A planner is a pure function ``(tx, ops, now) -> Decision``: the status the transaction should have,
the ops to call now, and when to look again if nothing can be called yet. The executor turns a
decision into one compare-and-set write and a batch of concurrent calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from coordinator.engine.model import BranchOp, GlobalTx, OpKey, OpStatus, Status

Ops = Mapping[OpKey, BranchOp]


@dataclass(frozen=True, slots=True)
class Decision:
    """The next step of one transaction."""

    status: Status
    reason: str = ""
    calls: tuple[OpKey, ...] = ()
    wake_at: int | None = None  # not final, nothing due: look again then (None = wait for the initiator)

    @property
    def final(self) -> bool:
        """True when the transaction ends with this decision."""
        return self.status.final


class Planner(Protocol):
    """Decides the next step of a transaction of one mode."""

    def plan(self, tx: GlobalTx, ops: Ops, now: int) -> Decision:
        """The decision for ``tx`` with ``ops`` at ``now`` (epoch ms); pure."""
        ...


def is_due(op: BranchOp, now: int) -> bool:
    """A pending op whose next attempt time (if any) has come."""
    return op.status is OpStatus.PENDING and (op.next_attempt_at is None or op.next_attempt_at <= now)


def earliest_wake(ops: Iterable[BranchOp]) -> int | None:
    """The soonest next attempt among pending ops that are waiting, or None."""
    times = [op.next_attempt_at for op in ops if op.status is OpStatus.PENDING and op.next_attempt_at]
    return min(times) if times else None


def drive_all(status: Status, ops: list[BranchOp], done: Status, now: int, reason: str = "") -> Decision:
    """Call every due op of ``ops`` (concurrently); all succeeded -> ``done``."""
    if all(op.status is OpStatus.SUCCEEDED for op in ops):
        return Decision(status=done, reason=reason)
    calls = tuple(op.key for op in ops if is_due(op, now))
    wake = None if calls else earliest_wake(ops)
    return Decision(status=status, reason=reason, calls=calls, wake_at=wake)


def min_time(*times: int | None) -> int | None:
    """The smallest of the given times, ignoring None."""
    present = [t for t in times if t is not None]
    return min(present) if present else None
