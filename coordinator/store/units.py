"""The engine's store operations as units of work of :class:`meshkit.store.StoreRunner`: plain SQL.

Each function here runs inside one runner transaction (a SAVEPOINT of a group commit on SQLite, its
own transaction on MySQL/MariaDB) with the fewest statements: rows are written with prepared ``?``
statements, op and event rows in one ``executemany`` each, and nothing written is read back. The
``trans_global`` row is always written with plain INSERT/UPDATE/DELETE, so the triggers of migration
``coordinator_0004`` keep ``trans_count`` exact in the same commit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from coordinator.engine.model import BranchOp, Event, GlobalTx, OpStatus
from coordinator.engine.ports import Claimed, TxWrite
from coordinator.store.rows import (
    event_from_row,
    event_values,
    op_from_row,
    op_update_values,
    op_values,
    tx_from_row,
    tx_mutable_values,
    tx_values,
)
from meshkit.store import Conn

TX_COLUMNS = (
    "gid",
    "mode",
    "status",
    "reason",
    "options",
    "query_prepared",
    "created_at",
    "updated_at",
    "timeout_at",
    "finished_at",
    "next_run_at",
    "owner",
    "lease_until",
    "version",
    "retry_paused",
    "stuck",
    "admin_request",
    "request_seq",
)
OP_COLUMNS = (
    "gid",
    "branch_id",
    "op",
    "target",
    "payload",
    "position",
    "depends_on",
    "status",
    "attempts",
    "last_error",
    "next_attempt_at",
    "updated_at",
)
EVENT_COLUMNS = ("gid", "at", "kind", "from_status", "to_status", "branch_id", "op", "actor", "detail")
_MUTABLE = (  # the keys of rows.tx_mutable_values
    "status",
    "reason",
    "updated_at",
    "timeout_at",
    "finished_at",
    "next_run_at",
    "owner",
    "lease_until",
    "version",
    "retry_paused",
    "stuck",
    "admin_request",
    "request_seq",
)
_OP_MUTABLE = ("status", "attempts", "last_error", "next_attempt_at", "updated_at")

_TX = ", ".join(TX_COLUMNS)
_OP = ", ".join(OP_COLUMNS)
SELECT_TX = f"SELECT {_TX} FROM trans_global WHERE gid = ?"
SELECT_OPS = f"SELECT {_OP} FROM trans_branch_op WHERE gid = ? ORDER BY position, branch_id, op"
SELECT_EVENTS = (
    "SELECT id, gid, at, kind, from_status, to_status, branch_id, op, actor, detail"
    " FROM trans_event WHERE gid = ? ORDER BY id"
)
INSERT_OPS = f"INSERT INTO trans_branch_op ({_OP}) VALUES ({', '.join('?' for _ in OP_COLUMNS)})"
INSERT_EVENTS = (
    f"INSERT INTO trans_event ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
)
UPDATE_TX = f"UPDATE trans_global SET {', '.join(f'{c} = ?' for c in _MUTABLE)} WHERE gid = ? AND version = ?"
SKIP_PENDING = "UPDATE trans_branch_op SET status = ?, updated_at = ? WHERE gid = ? AND status = ?"
CLAIMABLE = "finished_at IS NULL AND (owner IS NULL OR lease_until IS NULL OR lease_until < ?)"


def _json(value: object) -> str | None:
    return None if value is None else json.dumps(value)


def _unjson(value: object) -> object:
    if isinstance(value, bytes | bytearray):
        value = value.decode()
    return json.loads(value) if isinstance(value, str) else value


def _in(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


# ---------------------------------------------------------------------- rows


def tx_row(row: Sequence[Any]) -> GlobalTx:
    """A ``SELECT_TX``-ordered row as a :class:`GlobalTx`."""
    mapping = dict(zip(TX_COLUMNS, row, strict=True))
    mapping["options"] = _unjson(mapping["options"])
    mapping["admin_request"] = _unjson(mapping["admin_request"])
    return tx_from_row(mapping)


def op_row(row: Sequence[Any]) -> BranchOp:
    """A ``SELECT_OPS``-ordered row as a :class:`BranchOp`."""
    mapping = dict(zip(OP_COLUMNS, row, strict=True))
    mapping["depends_on"] = _unjson(mapping["depends_on"])
    return op_from_row(mapping)


def event_row(row: Sequence[Any]) -> Event:
    """A ``SELECT_EVENTS``-ordered row as an :class:`Event`."""
    return event_from_row(dict(zip(("id", *EVENT_COLUMNS), row, strict=True)))


def tx_params(tx: GlobalTx) -> tuple[Any, ...]:
    """Every column of ``tx`` in ``TX_COLUMNS`` order, for an insert."""
    values = tx_values(tx)
    values["options"] = _json(values["options"])
    values["admin_request"] = _json(values["admin_request"])
    return tuple(values[c] for c in TX_COLUMNS)


def op_params(op: BranchOp) -> tuple[Any, ...]:
    """Every column of ``op`` in ``OP_COLUMNS`` order, for an insert."""
    values = op_values(op)
    values["depends_on"] = _json(values["depends_on"])
    return tuple(values[c] for c in OP_COLUMNS)


def event_params(event: Event) -> tuple[Any, ...]:
    """The columns of ``event`` in ``EVENT_COLUMNS`` order (the id is generated)."""
    values = event_values(event)
    return tuple(values[c] for c in EVENT_COLUMNS)


# ---------------------------------------------------------------------- reads


def get(conn: Conn, gid: str, lock: str = "") -> GlobalTx | None:
    """The transaction row (``lock``: the dialect's row-lock suffix), or None."""
    row = conn.fetchone(SELECT_TX + lock, (gid,))
    return tx_row(row) if row is not None else None


def ops(conn: Conn, gid: str) -> list[BranchOp]:
    """The transaction's ops in position order."""
    return [op_row(r) for r in conn.fetchall(SELECT_OPS, (gid,))]


def history(conn: Conn, gid: str) -> list[Event]:
    """The transaction's events, oldest first."""
    return [event_row(r) for r in conn.fetchall(SELECT_EVENTS, (gid,))]


# ---------------------------------------------------------------------- writes


def insert_ops(conn: Conn, rows: Iterable[BranchOp]) -> None:
    """Insert op rows in one ``executemany``."""
    params = [op_params(op) for op in rows]
    if params:
        conn.executemany(INSERT_OPS, params)


def insert_events(conn: Conn, events: Iterable[Event]) -> None:
    """Append event rows in one ``executemany``."""
    params = [event_params(e) for e in events]
    if params:
        conn.executemany(INSERT_EVENTS, params)


def create(conn: Conn, tx: GlobalTx, new_ops: Sequence[BranchOp], events: Sequence[Event]) -> bool:
    """Insert a new transaction, its ops and events; False (nothing written) when the gid exists."""
    if conn.execute(conn.dialect.insert_ignore("trans_global", TX_COLUMNS), tx_params(tx)) != 1:
        return False
    insert_ops(conn, new_ops)
    insert_events(conn, events)
    return True


def apply(conn: Conn, write: TxWrite) -> bool:
    """The statements of a compare-and-set write; False (nothing changed) when the compare failed."""
    tx = write.tx
    values = tx_mutable_values(tx)
    values["admin_request"] = _json(values["admin_request"])
    sql = UPDATE_TX
    params: list[Any] = [*(values[c] for c in _MUTABLE), tx.gid, write.expect_version]
    if write.expect_status is not None:
        sql += " AND status = ?"
        params.append(int(write.expect_status))
    if write.guard_requests:
        sql += " AND request_seq = ? AND retry_paused = ?"
        params += [tx.request_seq, tx.retry_paused]
    if conn.execute(sql, params) != 1:
        return False
    if write.ops:
        update_ops(conn, tx.gid, write.ops)
    if write.skip_pending:
        conn.execute(SKIP_PENDING, (OpStatus.SKIPPED.value, tx.updated_at, tx.gid, OpStatus.PENDING.value))
    insert_events(conn, write.events)
    return True


def update_ops(conn: Conn, gid: str, changed: Sequence[BranchOp]) -> None:
    """Write op rows; ops that get identical values share one statement (e.g. all confirms)."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for op in changed:
        values = op_update_values(op)
        groups.setdefault((op.op.value, *(values[c] for c in _OP_MUTABLE)), []).append(op.branch_id)
    for (op_name, *new_values), branch_ids in groups.items():
        sql = (
            f"UPDATE trans_branch_op SET {', '.join(f'{c} = ?' for c in _OP_MUTABLE)}"
            f" WHERE gid = ? AND op = ? AND branch_id IN ({_in(branch_ids)})"
        )
        conn.execute(sql, [*new_values, gid, op_name, *branch_ids])


def claim(conn: Conn, where: str, params: Sequence[Any], owner: str, lease_until: int) -> list[Claimed]:
    """Claim the unfinished rows ``where`` selects (already row-locked by its suffix on MySQL)."""
    txs = [tx_row(r) for r in conn.fetchall(f"SELECT {_TX} FROM trans_global WHERE {where}", params)]
    if not txs:
        return []
    gids = [tx.gid for tx in txs]
    # The rows are locked (FOR UPDATE / SQLite's write lock): bumping every version at once is a CAS.
    conn.execute(
        "UPDATE trans_global SET owner = ?, lease_until = ?, next_run_at = ?, version = version + 1"
        f" WHERE gid IN ({_in(gids)})",
        [owner, lease_until, lease_until, *gids],
    )
    found: dict[str, list[BranchOp]] = {gid: [] for gid in gids}
    rows = conn.fetchall(
        f"SELECT {_OP} FROM trans_branch_op WHERE gid IN ({_in(gids)}) ORDER BY position, branch_id, op", gids
    )
    for r in rows:
        op = op_row(r)
        found[op.gid].append(op)
    return [
        Claimed(
            tx=replace(
                tx, owner=owner, lease_until=lease_until, next_run_at=lease_until, version=tx.version + 1
            ),
            ops=found[tx.gid],
            due_at=tx.next_run_at,
        )
        for tx in txs
    ]
