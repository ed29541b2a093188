"""MSG (two-phase message) planner.

``PREPARED`` waits for the initiator's Submit until ``timeout_at``; after that it asks the
initiator's ``query_prepared`` target (the check-back op, branch ``00`` op ``msg``): OK -> the local
transaction committed, submit; ABORTED -> it did not and never will, fail; anything else -> ask again
later. ``SUBMITTED`` calls every branch action until each succeeds, concurrently, except that a branch
with ``depends_on`` is called only once every branch it depends on has succeeded (a dependency that
keeps failing transiently holds its dependents back). ``ABORTING`` (the initiator's Abort) has
nothing to undo and fails at once. An answer of the check-back decides even before the timeout: an
operator's force-abort asks it early (:meth:`coordinator.engine.admin.AdminOps.force_abort`).
"""

from __future__ import annotations

from coordinator.engine.model import CHECK_BACK_BRANCH, GlobalTx, OpStatus, Status
from coordinator.engine.plan import Decision, Ops, earliest_wake, is_due
from meshkit.tx.context import Op

CHECK_BACK_KEY = (CHECK_BACK_BRANCH, Op.MSG)
CHECK_BACK_COMMITTED = "check-back: local transaction committed"
CHECK_BACK_ROLLED_BACK = "check-back: local transaction not committed"


class MsgPlanner:
    """Decides the next step of a MSG transaction."""

    def plan(self, tx: GlobalTx, ops: Ops, now: int) -> Decision:
        """See the module docstring."""
        status, reason = tx.status, tx.reason
        if status is Status.PREPARED:
            decision = self._prepared(tx, ops, now)
            if decision is not None:
                return decision
            status, reason = Status.SUBMITTED, CHECK_BACK_COMMITTED
        if status is Status.SUBMITTED:
            return _send(ops, now, reason)
        if status is Status.ABORTING:
            return Decision(status=Status.FAILED, reason=reason)
        return Decision(status=status, reason=reason)

    def _prepared(self, tx: GlobalTx, ops: Ops, now: int) -> Decision | None:
        """The decision while PREPARED, or None when the check-back said "committed" (submit).

        An answer of the check-back decides even before the timeout (an operator's force-abort asks
        it early).
        """
        check = ops.get(CHECK_BACK_KEY)
        if check is not None and check.status is OpStatus.SUCCEEDED:
            return None
        if check is not None and check.status is OpStatus.FAILED:
            return Decision(status=Status.FAILED, reason=CHECK_BACK_ROLLED_BACK)
        if tx.timeout_at is None or now < tx.timeout_at:
            return Decision(status=tx.status, reason=tx.reason, wake_at=tx.timeout_at)
        if check is None:
            return None
        if is_due(check, now):
            return Decision(status=tx.status, reason=tx.reason, calls=(check.key,))
        return Decision(status=tx.status, reason=tx.reason, wake_at=check.next_attempt_at)


def _send(ops: Ops, now: int, reason: str) -> Decision:
    """SUBMITTED: call every due action whose dependencies all succeeded; all succeeded -> SUCCEEDED."""
    actions = [op for op in ops.values() if op.op is Op.ACTION]
    succeeded = {op.branch_id for op in actions if op.status is OpStatus.SUCCEEDED}
    if len(succeeded) == len(actions):
        return Decision(status=Status.SUCCEEDED, reason=reason)
    ready = [
        op
        for op in actions
        if op.status is OpStatus.PENDING and all(dep in succeeded for dep in op.depends_on)
    ]
    calls = tuple(op.key for op in ready if is_due(op, now))
    wake = None if calls else earliest_wake(ready)
    return Decision(status=Status.SUBMITTED, reason=reason, calls=calls, wake_at=wake)
