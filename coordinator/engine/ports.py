"""What the engine needs from the outside world, as protocols: branch calls, storage, timers.

The engine is pure domain code; the gRPC invoker (:mod:`coordinator.invoker`), the SQL store
(:mod:`coordinator.store`) and the JetStream timers (:mod:`coordinator.timers`) implement these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from coordinator.engine.model import BranchOp, Event, GlobalTx, Status
from meshkit.tx.context import Op, TxMode


class Outcome(StrEnum):
    """How a branch call ended (DESIGN.md section 3)."""

    OK = "ok"  # success
    FAILURE = "failure"  # ABORTED: business failure, roll back, never retried
    ONGOING = "ongoing"  # FAILED_PRECONDITION: not yet, retry keeping the interval
    TRANSIENT = "transient"  # anything else: retry with backoff


@dataclass(frozen=True, slots=True)
class BranchResult:
    """The result of one branch call; ``detail`` is the error text (status code name and details)."""

    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class BranchCall:
    """One call the engine wants made: target, payload and the transaction context to send."""

    target: str
    payload: bytes
    gid: str
    branch_id: str
    op: Op
    mode: TxMode
    timeout_ms: int
    headers: tuple[tuple[str, str], ...] = ()


class BranchInvoker(Protocol):
    """Calls a branch operation and classifies the answer; never raises for a failed call."""

    async def invoke(self, call: BranchCall) -> BranchResult:
        """Make the call; every failure is reported as a :class:`BranchResult`."""
        ...


@dataclass(frozen=True, slots=True)
class TxWrite:
    """A compare-and-set write of one transaction made by the engine.

    The global row is updated to ``tx`` only when it still has ``expect_version`` (and, when given,
    ``expect_status``); then ``ops`` rows are updated and ``events`` appended, all in one database
    transaction. Nothing is written when the compare fails. Every claim and every write bumps the
    version, so a replica whose lease lapsed and was taken over can no longer write.
    """

    tx: GlobalTx
    expect_version: int
    expect_status: Status | None = None
    ops: Sequence[BranchOp] = ()
    events: Sequence[Event] = ()
    skip_pending: bool = False  # also mark every still-pending op "skipped" (final transitions)
    # A driver's write: also refused when an operator recorded a request or flipped the pause since
    # the driver read the row (``request_seq`` / ``retry_paused`` differ from ``tx``'s).
    guard_requests: bool = False


class RegisterOutcome(StrEnum):
    """What :meth:`TxRepository.add_branch` did."""

    ADDED = "added"
    SAME = "same"  # the branch was registered before with the same targets and payload
    DIFFERENT = "different"  # the branch id exists with other targets or payload
    NOT_FOUND = "not_found"
    WRONG_STATE = "wrong_state"  # not a PREPARED TCC transaction


@dataclass(frozen=True, slots=True)
class RegisterResult:
    """The answer of :meth:`TxRepository.add_branch` (``tx`` is set for WRONG_STATE)."""

    outcome: RegisterOutcome
    tx: GlobalTx | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A transaction this replica now owns, its ops, and when it was due (for lateness)."""

    tx: GlobalTx
    ops: list[BranchOp]
    due_at: int | None


class TxRepository(Protocol):
    """Durable storage of transactions (implemented by :class:`coordinator.store.sql.SqlTxStore`)."""

    async def create(self, tx: GlobalTx, ops: Sequence[BranchOp], events: Sequence[Event]) -> bool:
        """Insert a new transaction with its ops and events; False (nothing written) if the gid exists."""
        ...

    async def get(self, gid: str) -> GlobalTx | None:
        """The transaction row alone, or None."""
        ...

    async def load(self, gid: str) -> tuple[GlobalTx, list[BranchOp]] | None:
        """The transaction and its ops (position order), or None."""
        ...

    async def add_branch(self, gid: str, ops: Sequence[BranchOp], now: int) -> RegisterResult:
        """Add one TCC branch's ops if the transaction is a PREPARED TCC one (atomically with the check)."""
        ...

    async def write(self, write: TxWrite) -> bool:
        """Apply a compare-and-set write; False when the compare failed (nothing written)."""
        ...

    async def transition(
        self, gid: str, decide: Callable[[GlobalTx, list[BranchOp]], TxWrite | None]
    ) -> tuple[GlobalTx, TxWrite | None] | None:
        """Read ``gid`` and its ops, let ``decide`` compute a write, apply it, in one database transaction.

        The row lock is held throughout, so ``decide`` must be pure and fast. Returns None for an
        unknown gid, else the transaction as read and the write applied (None when ``decide``
        returned None). Whatever ``decide`` raises propagates; nothing is written then.
        """
        ...

    async def claim(
        self,
        gid: str,
        owner: str,
        now: int,
        lease_until: int,
        *,
        force: bool = False,
        include_paused: bool = False,
    ) -> Claimed | None:
        """Take ownership of ``gid`` if it is due, unfinished, not paused and not leased by another.

        ``force`` ignores ``next_run_at`` (run now); ``include_paused`` also takes a paused one.
        Returns the claimed transaction (version bumped, owner and lease set) with its ops, or None when
        it is not claimable.
        """
        ...

    async def claim_due(self, owner: str, now: int, lease_until: int, limit: int) -> list[Claimed]:
        """Claim up to ``limit`` due transactions at once (the sweeper), most overdue first."""
        ...

    async def claim_many(self, gids: Sequence[str], owner: str, now: int, lease_until: int) -> list[Claimed]:
        """Claim those of ``gids`` that are due, unfinished, unpaused and unleased, in one statement.

        The timer hints' batch claim: a gid that is not claimable (final, leased by another replica,
        paused, or its due time moved later) is left as it is.
        """
        ...

    async def history(self, gid: str) -> list[Event]:
        """The transaction's events, oldest first."""
        ...


class TimerSink(Protocol):
    """Something that will wake the engine for ``gid`` at ``at_ms`` (a hint; stale fires are harmless)."""

    def schedule(self, gid: str, at_ms: int) -> None:
        """Arrange a wake-up; must not block (do any I/O in the background)."""
        ...

    def cancel(self, gid: str) -> None:
        """Forget a pending wake-up of ``gid`` if that is cheap (best effort)."""
        ...
