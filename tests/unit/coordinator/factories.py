"""Small builders of engine model objects for the unit tests."""

from __future__ import annotations

from dataclasses import replace

from coordinator.engine.model import BranchOp, GlobalTx, Mode, OpKey, OpStatus, Status, TxOptions
from meshkit.tx.context import Op

NOW = 1_800_000_000_000
OPTIONS = TxOptions(timeout_ms=10_000, retry_interval_ms=100, retry_limit=3, request_timeout_ms=1_000)


def tx(mode: Mode, status: Status, **changes: object) -> GlobalTx:
    base = GlobalTx(
        gid="g1",
        mode=mode,
        status=status,
        options=OPTIONS,
        created_at=NOW - 1_000,
        updated_at=NOW - 1_000,
        timeout_at=NOW + 5_000,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def op(
    branch_id: str,
    kind: Op,
    status: OpStatus = OpStatus.PENDING,
    attempts: int = 0,
    *,
    position: int = 1,
    depends_on: tuple[str, ...] = (),
    next_attempt_at: int | None = None,
) -> BranchOp:
    return BranchOp(
        gid="g1",
        branch_id=branch_id,
        op=kind,
        target=f"127.0.0.1:1/t.S/{kind.value}",
        position=position,
        depends_on=depends_on,
        status=status,
        attempts=attempts,
        next_attempt_at=next_attempt_at,
    )


def ops(*items: BranchOp) -> dict[OpKey, BranchOp]:
    return {o.key: o for o in items}
