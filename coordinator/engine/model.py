"""The coordinator's domain model: global transactions, branch operations and history events.

Pure data (no I/O). Times are epoch milliseconds from the injected clock. The enums mirror
``meshpb.coordinator.v1`` (same numbers), so converting is ``Mode(pb_value)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from meshkit.tx.context import Op, TxMode


class Mode(IntEnum):
    """Transaction mode (values of ``meshpb.coordinator.v1.Mode``)."""

    TCC = 1
    SAGA = 2
    MSG = 3

    @property
    def wire(self) -> TxMode:
        """The ``x-mesh-mode`` value of this mode."""
        return TxMode[self.name]


class Status(IntEnum):
    """Global transaction status (values of ``meshpb.coordinator.v1.Status``)."""

    PREPARED = 1
    SUBMITTED = 2
    SUCCEEDED = 3
    ABORTING = 4
    FAILED = 5

    @property
    def final(self) -> bool:
        """True for SUCCEEDED and FAILED: nothing more happens."""
        return self in (Status.SUCCEEDED, Status.FAILED)


FINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED)


class OpStatus(StrEnum):
    """Status of one branch operation (the strings of ``BranchOp.status``)."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class EventKind(StrEnum):
    """Kinds of history entries."""

    STATE = "state"  # the global status changed
    BRANCH = "branch"  # a branch call did not succeed (error, not yet, business failure)
    STUCK = "stuck"  # an operation passed its retry limit and keeps being retried
    ADMIN = "admin"  # an operator acted (Admin service)


# The MSG check-back is recorded as an operation of this pseudo-branch (DESIGN.md section 4).
CHECK_BACK_BRANCH = "00"


@dataclass(frozen=True, slots=True)
class TxOptions:
    """Per-transaction options after defaults were applied (all positive)."""

    timeout_ms: int
    retry_interval_ms: int
    retry_limit: int
    request_timeout_ms: int
    concurrent: bool = False
    headers: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, object]:
        """The options as a JSON-able dict (the ``options`` column)."""
        return {
            "timeout_ms": self.timeout_ms,
            "retry_interval_ms": self.retry_interval_ms,
            "retry_limit": self.retry_limit,
            "request_timeout_ms": self.request_timeout_ms,
            "concurrent": self.concurrent,
            "headers": dict(self.headers),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> TxOptions:
        """Read the ``options`` column back."""
        headers = data.get("headers") or {}
        if not isinstance(headers, dict):
            headers = {}
        return cls(
            timeout_ms=_as_int(data.get("timeout_ms")),
            retry_interval_ms=_as_int(data.get("retry_interval_ms")),
            retry_limit=_as_int(data.get("retry_limit")),
            request_timeout_ms=_as_int(data.get("request_timeout_ms")),
            concurrent=bool(data.get("concurrent", False)),
            headers=tuple(sorted((str(k), str(v)) for k, v in headers.items())),
        )


def _as_int(value: object) -> int:
    return int(value) if isinstance(value, int | float | str) else 0


@dataclass(frozen=True, slots=True)
class BranchSpec:
    """A branch as the caller declared it (``meshpb.coordinator.v1.Branch``), validated."""

    branch_id: str
    action: str = ""
    confirm: str = ""
    cancel: str = ""
    payload: bytes = b""
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GlobalTx:
    """One global transaction (a ``trans_global`` row)."""

    gid: str
    mode: Mode
    status: Status
    options: TxOptions
    created_at: int
    updated_at: int
    reason: str = ""
    query_prepared: str = ""
    timeout_at: int | None = None
    finished_at: int | None = None
    next_run_at: int | None = None
    owner: str | None = None
    lease_until: int | None = None
    version: int = 1
    retry_paused: bool = False
    stuck: bool = False
    admin_request: AdminRequest | None = None  # waiting for the lease holder (or the next claimer)
    request_seq: int = 0  # bumped by every recorded request and pause flip (not by claims)


class AdminAction(StrEnum):
    """Operator actions that can be recorded for the replica holding a transaction's lease."""

    RETRY = "retry"
    FORCE_ABORT = "force_abort"
    FORCE_FAIL = "force_fail"


# A later request replaces a pending one only when it is at least as strong.
REQUEST_STRENGTH = {AdminAction.RETRY: 0, AdminAction.FORCE_ABORT: 1, AdminAction.FORCE_FAIL: 2}


@dataclass(frozen=True, slots=True)
class AdminRequest:
    """An operator's action recorded while another driver held the lease (DESIGN.md section 4)."""

    action: AdminAction
    actor: str
    reason: str = ""

    def to_json(self) -> dict[str, str]:
        """The ``admin_request`` column."""
        return {"action": self.action.value, "actor": self.actor, "reason": self.reason}

    @classmethod
    def from_json(cls, data: object) -> AdminRequest | None:
        """Read the ``admin_request`` column back (None when empty or unreadable)."""
        if not isinstance(data, dict):
            return None
        try:
            action = AdminAction(str(data.get("action")))
        except ValueError:
            return None
        return cls(action, str(data.get("actor", "")), str(data.get("reason", "")))


@dataclass(frozen=True, slots=True)
class BranchOp:
    """One operation of one branch (a ``trans_branch_op`` row)."""

    gid: str
    branch_id: str
    op: Op
    target: str
    payload: bytes = b""
    position: int = 0
    depends_on: tuple[str, ...] = ()
    status: OpStatus = OpStatus.PENDING
    attempts: int = 0
    last_error: str = ""
    next_attempt_at: int | None = None
    updated_at: int = 0

    @property
    def key(self) -> OpKey:
        """The primary key ``(branch_id, op)`` within the transaction."""
        return (self.branch_id, self.op)


OpKey = tuple[str, Op]


@dataclass(frozen=True, slots=True)
class Event:
    """One history entry (a ``trans_event`` row)."""

    gid: str
    at: int
    kind: EventKind
    actor: str
    detail: str = ""
    from_status: Status | None = None
    to_status: Status | None = None
    branch_id: str = ""
    op: str = ""
    id: int | None = field(default=None, compare=False)


def branches_of(mode: Mode, ops: list[BranchOp] | tuple[BranchOp, ...]) -> list[BranchSpec]:
    """Rebuild the declared branches from a transaction's operations (in position order)."""
    by_branch: dict[str, dict[Op, BranchOp]] = {}
    for op in sorted(ops, key=lambda o: o.position):
        if op.branch_id == CHECK_BACK_BRANCH and op.op is Op.MSG:
            continue
        by_branch.setdefault(op.branch_id, {})[op.op] = op
    specs: list[BranchSpec] = []
    for branch_id, kinds in by_branch.items():
        first = next(iter(kinds.values()))
        if mode is Mode.TCC:
            action, undo = kinds.get(Op.TRY), kinds.get(Op.CANCEL)
        else:
            action, undo = kinds.get(Op.ACTION), kinds.get(Op.COMPENSATE)
        confirm = kinds.get(Op.CONFIRM)
        specs.append(
            BranchSpec(
                branch_id=branch_id,
                action=action.target if action else "",
                confirm=confirm.target if confirm else "",
                cancel=undo.target if undo else "",
                payload=first.payload,
                depends_on=first.depends_on,
            )
        )
    return specs
