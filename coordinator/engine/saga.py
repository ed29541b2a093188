"""Saga planner: run the steps, and on a business failure compensate every step that started.

Sequential (default): steps run one after the other in declared order. Concurrent
(``options.concurrent``): every step whose ``depends_on`` all succeeded runs, concurrently with the
others that are ready.

A step has *started* once its action was attempted (``attempts > 0``; the executor counts an attempt
before making the call, so a crash mid-call still counts it). When an action fails for good (business
failure, or its retry limit), the saga moves to ``ABORTING`` and compensates the started steps in
reverse order: sequentially from the last started step backwards; concurrently, a step's compensation
waits for the compensations of the started steps that depend on it. A step that never started is never
compensated. Compensations are retried until they succeed; then the saga is ``FAILED``.
"""

from __future__ import annotations

from coordinator.engine.model import BranchOp, GlobalTx, OpStatus, Status
from coordinator.engine.plan import Decision, Ops, earliest_wake, is_due
from meshkit.tx.context import Op


def _actions(ops: Ops) -> list[BranchOp]:
    return sorted((op for op in ops.values() if op.op is Op.ACTION), key=lambda o: o.position)


class SagaPlanner:
    """Decides the next step of a saga."""

    def plan(self, tx: GlobalTx, ops: Ops, now: int) -> Decision:
        """See the module docstring."""
        status, reason = tx.status, tx.reason
        actions = _actions(ops)
        if status is Status.SUBMITTED:
            failed = next((a for a in actions if a.status is OpStatus.FAILED), None)
            if failed is None:
                return self._forward(tx, actions, now)
            status, reason = Status.ABORTING, f"branch {failed.branch_id} action failed: {failed.last_error}"
        if status is Status.ABORTING:
            return self._backward(tx, ops, actions, now, reason)
        return Decision(status=status, reason=reason)

    def _forward(self, tx: GlobalTx, actions: list[BranchOp], now: int) -> Decision:
        if all(a.status is OpStatus.SUCCEEDED for a in actions):
            return Decision(status=Status.SUCCEEDED, reason=tx.reason)
        if tx.options.concurrent:
            succeeded = {a.branch_id for a in actions if a.status is OpStatus.SUCCEEDED}
            ready = [
                a
                for a in actions
                if a.status is OpStatus.PENDING and all(d in succeeded for d in a.depends_on)
            ]
        else:
            ready = [next(a for a in actions if a.status is not OpStatus.SUCCEEDED)]
        calls = tuple(a.key for a in ready if is_due(a, now))
        wake = None if calls else earliest_wake(ready)
        return Decision(status=Status.SUBMITTED, reason=tx.reason, calls=calls, wake_at=wake)

    def _backward(self, tx: GlobalTx, ops: Ops, actions: list[BranchOp], now: int, reason: str) -> Decision:
        started = [a for a in actions if a.attempts > 0]
        undo = {a.branch_id: ops.get((a.branch_id, Op.COMPENSATE)) for a in started}
        needed = {bid: op for bid, op in undo.items() if op is not None}
        if all(op.status is OpStatus.SUCCEEDED for op in needed.values()):
            return Decision(status=Status.FAILED, reason=reason)
        ready = self._compensable(tx, started, needed)
        calls = tuple(op.key for op in ready if is_due(op, now))
        wake = None if calls else earliest_wake(ready)
        return Decision(status=Status.ABORTING, reason=reason, calls=calls, wake_at=wake)

    def _compensable(
        self, tx: GlobalTx, started: list[BranchOp], needed: dict[str, BranchOp]
    ) -> list[BranchOp]:
        """Pending compensations whose turn has come (reverse order / reverse dependencies)."""

        def done(branch_id: str) -> bool:
            op = needed.get(branch_id)
            return op is None or op.status is OpStatus.SUCCEEDED

        pending = [a for a in started if a.branch_id in needed and not done(a.branch_id)]
        if not tx.options.concurrent:
            last = max(pending, key=lambda a: a.position)
            return [needed[last.branch_id]]
        dependents: dict[str, list[str]] = {a.branch_id: [] for a in started}
        for a in started:
            for dep in a.depends_on:
                if dep in dependents:
                    dependents[dep].append(a.branch_id)
        return [needed[a.branch_id] for a in pending if all(done(child) for child in dependents[a.branch_id])]
