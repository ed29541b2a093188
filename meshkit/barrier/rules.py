"""The barrier's decisions, shared by every SQL barrier (AsyncSession- and runner-based).

The I/O differs (awaited SQLAlchemy statements vs a runner's synchronous connection); what a given
insert-ignore result means does not, and lives here once. The rules are those of
:mod:`meshkit.barrier.sql` (DESIGN.md section 5).
"""

from __future__ import annotations

from typing import Any

from meshkit.barrier import outcome as oc
from meshkit.tx.context import ORIGIN_OF, Op, TxContext

ROLLBACK_REASONS = frozenset(op.value for op in ORIGIN_OF)


def forward_not_inserted(ctx: TxContext, reason: str | None) -> oc.BarrierResult[Any]:
    """A try/action/confirm/msg whose own row was already there (with ``reason``): skip, or refuse.

    Raises MessageRolledBack / DuplicateMessage for msg, LateTryRejected when the branch was rolled
    back first; otherwise the op is a duplicate.
    """
    if ctx.op is Op.MSG:
        if reason == oc.REASON_ROLLBACK:
            raise oc.MessageRolledBack(ctx.gid)
        raise oc.DuplicateMessage(ctx.gid)
    if reason in ROLLBACK_REASONS:
        raise oc.LateTryRejected(ctx.gid, ctx.branch_id, ctx.op.value)
    return oc.BarrierResult(oc.Outcome.DUPLICATE)


def rollback_skip(origin_inserted: bool, own_inserted: bool) -> oc.BarrierResult[Any] | None:
    """A cancel/compensate after its two insert-ignores: the result when business is skipped, else None.

    The origin row inserted now means the try/action never ran (empty rollback); the own row already
    there means this rollback ran before (duplicate).
    """
    if origin_inserted:
        return oc.BarrierResult(oc.Outcome.EMPTY_ROLLBACK)
    if not own_inserted:
        return oc.BarrierResult(oc.Outcome.DUPLICATE)
    return None


def check_prepared(gid: str, inserted: bool, reason: str | None) -> None:
    """query_prepared after its insert-ignore of the ``rollback`` row: return when the msg committed.

    Raises MessageRolledBack when this call wrote the rollback row or one was there before.
    """
    if inserted or reason == oc.REASON_ROLLBACK:
        raise oc.MessageRolledBack(gid)
