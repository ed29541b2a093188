"""TCC planner: confirm every branch after Submit, cancel every branch after Abort or timeout.

The coordinator never calls a try (the initiator does). ``PREPARED`` waits for the initiator until
``timeout_at``, then aborts with reason ``"timeout"``. ``SUBMITTED`` confirms all registered branches
concurrently, ``ABORTING`` cancels all of them (a cancel whose try never ran is an empty rollback in the
participant's barrier), each retried until it succeeds.
"""

from __future__ import annotations

from coordinator.engine.model import BranchOp, BranchSpec, GlobalTx, Status
from coordinator.engine.plan import Decision, Ops, drive_all
from meshkit.tx.context import Op

TIMEOUT_REASON = "timeout"


class TccPlanner:
    """Decides the next step of a TCC transaction."""

    def plan(self, tx: GlobalTx, ops: Ops, now: int) -> Decision:
        """See the module docstring."""
        status, reason = tx.status, tx.reason
        if status is Status.PREPARED:
            if tx.timeout_at is None or now < tx.timeout_at:
                return Decision(status=status, reason=reason, wake_at=tx.timeout_at)
            status, reason = Status.ABORTING, TIMEOUT_REASON
        if status is Status.SUBMITTED:
            confirms = [op for op in ops.values() if op.op is Op.CONFIRM]
            return drive_all(status, confirms, Status.SUCCEEDED, now, reason)
        if status is Status.ABORTING:
            cancels = [op for op in ops.values() if op.op is Op.CANCEL]
            return drive_all(status, cancels, Status.FAILED, now, reason)
        return Decision(status=status, reason=reason)


def tcc_ops(gid: str, branch: BranchSpec, now: int, position: int = 0) -> list[BranchOp]:
    """The try, confirm and cancel ops of a registered TCC branch."""
    return [
        BranchOp(
            gid=gid,
            branch_id=branch.branch_id,
            op=op,
            target=target,
            payload=branch.payload,
            position=position,
            updated_at=now,
        )
        for op, target in ((Op.TRY, branch.action), (Op.CONFIRM, branch.confirm), (Op.CANCEL, branch.cancel))
    ]
