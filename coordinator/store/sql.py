"""The engine's store on SQLAlchemy 2 Core, for SQLite and MySQL/MariaDB.

Every method is one short database transaction (see :mod:`coordinator.store.runner` for how it runs).
Writes, and the reads the engine decides on, go through :meth:`SqlTxStore.run`; reads of committed
state for callers off the engine's path (:meth:`~SqlTxStore.load`, :meth:`~SqlTxStore.history`, the
operators' queries) go through :meth:`SqlTxStore.read`, which never waits for the engine's writes.
Writes by a driver are compare-and-set on ``(gid, version)``: a claim bumps the version, so a replica
whose lease lapsed and was taken over finds its next write refused. Claiming due work takes row locks
with ``FOR UPDATE SKIP LOCKED`` on MySQL (replicas sweeping at the same time take disjoint rows); on
SQLite the write lock of ``BEGIN IMMEDIATE`` serialises sweepers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar, cast

from sqlalchemy import Select, or_, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import Insert

from coordinator.engine.model import BranchOp, Event, GlobalTx, Mode, OpStatus, Status
from coordinator.engine.ports import Claimed, RegisterOutcome, RegisterResult, TxWrite
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
from coordinator.store.runner import Body, TxRunner
from coordinator.store.tables import COMPONENT, VERSIONS, trans_branch_op, trans_event, trans_global
from meshkit.infra.db import is_mysql, rowcount
from meshkit.infra.migrate import upgrade

T = TypeVar("T")
g = trans_global.c
o = trans_branch_op.c
Decide = Callable[[GlobalTx, list[BranchOp]], TxWrite | None]


async def migrate(engine: AsyncEngine) -> None:
    """Create or upgrade the coordinator tables (idempotent; safe with replicas starting together)."""
    await upgrade(engine, COMPONENT, VERSIONS)


class _Rollback(Exception):
    """Raised inside a transaction body to roll it back and hand ``result`` to the caller."""

    def __init__(self, result: object) -> None:
        super().__init__("rollback")
        self.result = result


class SqlTxStore:
    """:class:`coordinator.engine.ports.TxRepository` on a SQL database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.mysql = is_mysql(engine)
        self._runner = TxRunner(engine)

    async def run(self, body: Body[T]) -> T:
        """Run ``body(connection)`` as one transaction (also for read-only query functions)."""
        return await self._runner.run(body)

    async def read(self, body: Body[T]) -> T:
        """Run the read-only ``body(connection)`` off the engine's path; it sees committed state only."""
        return await self._runner.read(body)

    async def close(self) -> None:
        """Release the store's own resources (the async engine stays the caller's to dispose)."""
        await self._runner.close()

    # ------------------------------------------------------------------ reads

    async def get(self, gid: str) -> GlobalTx | None:
        """The transaction row alone, or None."""
        return await self.run(lambda conn: _get(conn, gid))

    async def load(self, gid: str) -> tuple[GlobalTx, list[BranchOp]] | None:
        """The transaction and its ops (position order), or None; one consistent read of committed state."""

        def body(conn: Connection) -> tuple[GlobalTx, list[BranchOp]] | None:
            tx = _get(conn, gid)
            return None if tx is None else (tx, _ops(conn, gid))

        return await self.read(body)

    async def history(self, gid: str) -> list[Event]:
        """The transaction's events, oldest first."""
        stmt = select(trans_event).where(trans_event.c.gid == gid).order_by(trans_event.c.id)
        return await self.read(lambda conn: [event_from_row(r) for r in conn.execute(stmt).mappings().all()])

    # ------------------------------------------------------------------ writes

    async def create(self, tx: GlobalTx, ops: Sequence[BranchOp], events: Sequence[Event]) -> bool:
        """Insert a new transaction with its ops and events; False (nothing written) if the gid exists."""
        insert_tx: Insert
        if self.mysql:
            insert_tx = mysql_insert(trans_global).values(tx_values(tx)).prefix_with("IGNORE")
        else:
            insert_tx = sqlite_insert(trans_global).values(tx_values(tx)).on_conflict_do_nothing()

        def body(conn: Connection) -> bool:
            if rowcount(conn.execute(insert_tx)) != 1:
                return False
            _insert_ops(conn, ops)
            _insert_events(conn, events)
            return True

        return await self.run(body)

    async def add_branch(self, gid: str, ops: Sequence[BranchOp], now: int) -> RegisterResult:
        """Add one TCC branch's ops while the transaction is a PREPARED TCC one.

        The version is bumped with the check (which also locks the row), so a Submit that read the ops
        before this insert fails its compare-and-set and reads again: no registered branch is missed.
        """
        branch_id = ops[0].branch_id
        lock = (
            update(trans_global)
            .where(g.gid == gid, g.status == int(Status.PREPARED), g.mode == int(Mode.TCC))
            .values(version=g.version + 1, updated_at=now)
        )

        def body(conn: Connection) -> RegisterResult:
            if rowcount(conn.execute(lock)) != 1:
                tx = _get(conn, gid)
                if tx is None:
                    return RegisterResult(RegisterOutcome.NOT_FOUND)
                return RegisterResult(RegisterOutcome.WRONG_STATE, tx)
            existing = _ops(conn, gid)
            mine = {op.op: op for op in existing if op.branch_id == branch_id}
            if mine:
                same = all(
                    op.op in mine and mine[op.op].target == op.target and mine[op.op].payload == op.payload
                    for op in ops
                )
                raise _Rollback(RegisterResult(RegisterOutcome.SAME if same else RegisterOutcome.DIFFERENT))
            position = max((op.position for op in existing), default=0) + 1
            _insert_ops(conn, [replace(op, position=position) for op in ops])
            return RegisterResult(RegisterOutcome.ADDED)

        try:
            return await self.run(body)
        except _Rollback as rollback:
            return cast(RegisterResult, rollback.result)

    async def write(self, write: TxWrite) -> bool:
        """Apply a compare-and-set write; False when the compare failed (nothing written)."""
        return await self.run(lambda conn: _apply(conn, write))

    async def transition(self, gid: str, decide: Decide) -> tuple[GlobalTx, TxWrite | None] | None:
        """Read ``gid`` (row-locked) and its ops, apply what ``decide`` returns, in one transaction."""
        read = self._locked(select(trans_global).where(g.gid == gid))

        def body(conn: Connection) -> tuple[GlobalTx, TxWrite | None] | None:
            row = conn.execute(read).mappings().first()
            if row is None:
                return None
            tx = tx_from_row(row)
            write = decide(tx, _ops(conn, gid))
            if write is not None and not _apply(conn, write):
                raise RuntimeError(f"transaction {gid}: compare failed under the row lock")
            return tx, write

        return await self.run(body)

    # ------------------------------------------------------------------ claims

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
        """Own ``gid`` if due (or ``force``), unfinished, unpaused (or ``include_paused``) and unleased."""
        conditions = [g.gid == gid, *_claimable(now, include_paused=include_paused)]
        if not force:
            conditions.append(g.next_run_at <= now)
        stmt = self._locked(select(trans_global).where(*conditions))
        claimed = await self.run(lambda conn: _claim(conn, stmt, owner, lease_until))
        return claimed[0] if claimed else None

    async def claim_due(self, owner: str, now: int, lease_until: int, limit: int) -> list[Claimed]:
        """Claim up to ``limit`` due transactions at once (the sweeper), most overdue first."""
        stmt = (
            select(trans_global)
            .where(g.next_run_at <= now, *_claimable(now))
            .order_by(g.next_run_at)
            .limit(limit)
        )
        locked = self._locked(stmt, skip_locked=True)
        return await self.run(lambda conn: _claim(conn, locked, owner, lease_until))

    async def take_over(self, owner: str, now: int) -> int:
        """At start: release the leases a previous process with this replica id held, due now.

        The process that held them is gone (replica ids are unique among live replicas), so its work
        need not wait for the leases to lapse; the version bump fences any write it might still make.
        Returns how many transactions were released.
        """
        stmt = (
            update(trans_global)
            # next_run_at is set on every owned unfinished row: the due-work index finds them.
            .where(g.next_run_at.is_not(None), g.owner == owner, g.finished_at.is_(None))
            .values(owner=None, lease_until=None, next_run_at=now, version=g.version + 1)
        )
        return await self.run(lambda conn: rowcount(conn.execute(stmt)))

    def _locked(self, stmt: Select[Any], *, skip_locked: bool = False) -> Select[Any]:
        if not self.mysql:
            return stmt  # SQLite: the BEGIN IMMEDIATE write lock already excludes other writers
        return stmt.with_for_update(skip_locked=skip_locked)


# ---------------------------------------------------------------------- transaction bodies


def _get(conn: Connection, gid: str) -> GlobalTx | None:
    row = conn.execute(select(trans_global).where(g.gid == gid)).mappings().first()
    return tx_from_row(row) if row is not None else None


def _ops(conn: Connection, gid: str) -> list[BranchOp]:
    stmt = select(trans_branch_op).where(o.gid == gid).order_by(o.position, o.branch_id, o.op)
    return [op_from_row(r) for r in conn.execute(stmt).mappings().all()]


def _apply(conn: Connection, write: TxWrite) -> bool:
    """The statements of a write; False (nothing changed) when the compare failed."""
    tx = write.tx
    conditions = [g.gid == tx.gid, g.version == write.expect_version]
    if write.expect_status is not None:
        conditions.append(g.status == int(write.expect_status))
    if write.guard_requests:
        conditions += [g.request_seq == tx.request_seq, g.retry_paused.is_(tx.retry_paused)]
    if rowcount(conn.execute(update(trans_global).where(*conditions).values(tx_mutable_values(tx)))) != 1:
        return False
    if write.ops:
        _update_ops(conn, tx.gid, write.ops)
    if write.skip_pending:
        skip = (
            update(trans_branch_op)
            .where(o.gid == tx.gid, o.status == OpStatus.PENDING.value)
            .values(status=OpStatus.SKIPPED.value, updated_at=tx.updated_at)
        )
        conn.execute(skip)
    _insert_events(conn, write.events)
    return True


def _update_ops(conn: Connection, gid: str, ops: Sequence[BranchOp]) -> None:
    """Write op rows; ops that get identical values share one statement (e.g. all confirms)."""
    groups: dict[tuple[Any, ...], list[BranchOp]] = {}
    for op in ops:
        groups.setdefault((op.op.value, *op_update_values(op).values()), []).append(op)
    for members in groups.values():
        first = members[0]
        stmt = (
            update(trans_branch_op)
            .where(o.gid == gid, o.op == first.op.value, o.branch_id.in_([m.branch_id for m in members]))
            .values(op_update_values(first))
        )
        conn.execute(stmt)


def _claimable(now: int, *, include_paused: bool = False) -> list[Any]:
    conditions = [
        g.finished_at.is_(None),
        or_(g.owner.is_(None), g.lease_until.is_(None), g.lease_until < now),
    ]
    if not include_paused:
        conditions.append(g.retry_paused.is_(False))
    return conditions


def _claim(conn: Connection, stmt: Select[Any], owner: str, lease_until: int) -> list[Claimed]:
    rows = conn.execute(stmt).mappings().all()
    if not rows:
        return []
    txs = [tx_from_row(r) for r in rows]
    gids = [tx.gid for tx in txs]
    # The rows are locked (FOR UPDATE / SQLite's write lock): bumping every version at once is a CAS.
    conn.execute(
        update(trans_global)
        .where(g.gid.in_(gids))
        .values(owner=owner, lease_until=lease_until, next_run_at=lease_until, version=g.version + 1)
    )
    op_rows = conn.execute(
        select(trans_branch_op).where(o.gid.in_(gids)).order_by(o.position, o.branch_id, o.op)
    ).mappings()
    ops: dict[str, list[BranchOp]] = {gid: [] for gid in gids}
    for r in op_rows:
        ops[r["gid"]].append(op_from_row(r))
    return [
        Claimed(
            tx=replace(
                tx, owner=owner, lease_until=lease_until, next_run_at=lease_until, version=tx.version + 1
            ),
            ops=ops[tx.gid],
            due_at=tx.next_run_at,
        )
        for tx in txs
    ]


def _insert_ops(conn: Connection, ops: Sequence[BranchOp]) -> None:
    if ops:
        conn.execute(trans_branch_op.insert(), [op_values(op) for op in ops])


def _insert_events(conn: Connection, events: Sequence[Event]) -> None:
    if events:
        conn.execute(trans_event.insert(), [event_values(e) for e in events])
