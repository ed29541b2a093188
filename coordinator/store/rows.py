"""Conversion between table rows and the engine's model objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coordinator.engine.model import (
    AdminRequest,
    BranchOp,
    Event,
    EventKind,
    GlobalTx,
    Mode,
    OpStatus,
    Status,
    TxOptions,
)
from coordinator.store.tables import DETAIL_LEN, ERROR_LEN, REASON_LEN
from meshkit.tx.context import Op

Row = Mapping[Any, Any]


def tx_from_row(row: Row) -> GlobalTx:
    """A ``trans_global`` row as a :class:`GlobalTx`."""
    options = row["options"]
    return GlobalTx(
        gid=row["gid"],
        mode=Mode(row["mode"]),
        status=Status(row["status"]),
        reason=row["reason"] or "",
        options=TxOptions.from_json(options if isinstance(options, dict) else {}),
        query_prepared=row["query_prepared"] or "",
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        timeout_at=row["timeout_at"],
        finished_at=row["finished_at"],
        next_run_at=row["next_run_at"],
        owner=row["owner"],
        lease_until=row["lease_until"],
        version=row["version"],
        retry_paused=bool(row["retry_paused"]),
        stuck=bool(row["stuck"]),
        admin_request=AdminRequest.from_json(row["admin_request"]),
        request_seq=int(row["request_seq"] or 0),
    )


def tx_values(tx: GlobalTx) -> dict[str, Any]:
    """All columns of ``tx`` for an insert."""
    return {
        "gid": tx.gid,
        "mode": int(tx.mode),
        "options": tx.options.to_json(),
        "query_prepared": tx.query_prepared,
        "created_at": tx.created_at,
        **tx_mutable_values(tx),
    }


def tx_mutable_values(tx: GlobalTx) -> dict[str, Any]:
    """The columns a write may change."""
    return {
        "status": int(tx.status),
        "reason": tx.reason[:REASON_LEN],
        "updated_at": tx.updated_at,
        "timeout_at": tx.timeout_at,
        "finished_at": tx.finished_at,
        "next_run_at": tx.next_run_at,
        "owner": tx.owner,
        "lease_until": tx.lease_until,
        "version": tx.version,
        "retry_paused": tx.retry_paused,
        "stuck": tx.stuck,
        "admin_request": tx.admin_request.to_json() if tx.admin_request is not None else None,
        "request_seq": tx.request_seq,
    }


def op_from_row(row: Row) -> BranchOp:
    """A ``trans_branch_op`` row as a :class:`BranchOp`."""
    depends = row["depends_on"]
    return BranchOp(
        gid=row["gid"],
        branch_id=row["branch_id"],
        op=Op(row["op"]),
        target=row["target"],
        payload=bytes(row["payload"] or b""),
        position=row["position"],
        depends_on=tuple(str(d) for d in depends) if isinstance(depends, list) else (),
        status=OpStatus(row["status"]),
        attempts=row["attempts"],
        last_error=row["last_error"] or "",
        next_attempt_at=row["next_attempt_at"],
        updated_at=row["updated_at"],
    )


def op_values(op: BranchOp) -> dict[str, Any]:
    """All columns of ``op`` for an insert."""
    return {
        "gid": op.gid,
        "branch_id": op.branch_id,
        "op": op.op.value,
        "target": op.target,
        "payload": op.payload,
        "position": op.position,
        "depends_on": list(op.depends_on) or None,
        "status": op.status.value,
        "attempts": op.attempts,
        "last_error": op.last_error[:ERROR_LEN],
        "next_attempt_at": op.next_attempt_at,
        "updated_at": op.updated_at,
    }


def op_update_values(op: BranchOp) -> dict[str, Any]:
    """The columns a write changes on an op row (in a fixed order, so equal values group together)."""
    return {
        "status": op.status.value,
        "attempts": op.attempts,
        "last_error": op.last_error[:ERROR_LEN],
        "next_attempt_at": op.next_attempt_at,
        "updated_at": op.updated_at,
    }


def event_from_row(row: Row) -> Event:
    """A ``trans_event`` row as an :class:`Event`."""
    return Event(
        id=row["id"],
        gid=row["gid"],
        at=row["at"],
        kind=EventKind(row["kind"]),
        actor=row["actor"],
        detail=row["detail"] or "",
        from_status=Status(row["from_status"]) if row["from_status"] else None,
        to_status=Status(row["to_status"]) if row["to_status"] else None,
        branch_id=row["branch_id"] or "",
        op=row["op"] or "",
    )


def event_values(event: Event) -> dict[str, Any]:
    """The columns of ``event`` for an insert (the id is generated)."""
    return {
        "gid": event.gid,
        "at": event.at,
        "kind": event.kind.value,
        "from_status": int(event.from_status) if event.from_status is not None else None,
        "to_status": int(event.to_status) if event.to_status is not None else None,
        "branch_id": event.branch_id,
        "op": event.op,
        "actor": event.actor[:200],
        "detail": event.detail[:DETAIL_LEN],
    }
