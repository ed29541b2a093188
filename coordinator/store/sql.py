"""The engine's store, for SQLite and MySQL/MariaDB.

The engine's reads and writes are plain-SQL units of work (:mod:`coordinator.store.units`) on ONE
:class:`meshkit.store.StoreRunner` per store: on SQLite a single writer thread group-commits
concurrent units (many API calls, one COMMIT) and reader threads serve :meth:`~SqlTxStore.get`,
:meth:`~SqlTxStore.load` and :meth:`~SqlTxStore.history` without waiting for writes; on MySQL/MariaDB
a pool of connections, one COMMIT per unit. Every method is at most one transaction. Operators'
queries and retention stay on SQLAlchemy Core (:meth:`SqlTxStore.read` / :meth:`SqlTxStore.run`, see
:mod:`coordinator.store.runner`). Writes by a driver are compare-and-set on ``(gid, version)``: a
claim bumps the version, so a replica whose lease lapsed and was taken over finds its next write
refused. Claiming due work takes row locks with ``FOR UPDATE SKIP LOCKED`` on MySQL (replicas sweeping
at the same time take disjoint rows); on SQLite the single writer serialises sweepers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncEngine

from coordinator.engine.model import BranchOp, Event, GlobalTx, Mode, Status
from coordinator.engine.ports import Claimed, RegisterOutcome, RegisterResult, TxWrite
from coordinator.store import units
from coordinator.store.runner import Body, TxRunner
from coordinator.store.tables import COMPONENT, VERSIONS
from meshkit.infra.db import is_mysql
from meshkit.infra.migrate import upgrade
from meshkit.settings.config import StoreSettings
from meshkit.store import Conn, StoreRunner

T = TypeVar("T")
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

    def __init__(self, engine: AsyncEngine, settings: StoreSettings | None = None) -> None:
        self.engine = engine
        self.mysql = is_mysql(engine)
        # The engine's reads and writes: raw SQL units, group-committed on SQLite.
        self.runner = StoreRunner.for_engine(engine, settings)
        # Operators' queries, retention and other off-path SQLAlchemy Core bodies.
        self._runner = TxRunner(engine)

    async def run(self, body: Body[T]) -> T:
        """Run the SQLAlchemy Core ``body(connection)`` as one transaction (off the engine's path)."""
        return await self._runner.run(body)

    async def read(self, body: Body[T]) -> T:
        """Run the read-only ``body(connection)`` off the engine's path; it sees committed state only."""
        return await self._runner.read(body)

    async def close(self) -> None:
        """Release the store's own resources (the async engine stays the caller's to dispose)."""
        await self.runner.close()
        await self._runner.close()

    # ------------------------------------------------------------------ reads

    async def get(self, gid: str) -> GlobalTx | None:
        """The transaction row alone (committed state), or None."""
        return await self.runner.read(lambda conn: units.get(conn, gid))

    async def load(self, gid: str) -> tuple[GlobalTx, list[BranchOp]] | None:
        """The transaction and its ops (position order), or None; one consistent read of committed state."""

        def unit(conn: Conn) -> tuple[GlobalTx, list[BranchOp]] | None:
            tx = units.get(conn, gid)
            return None if tx is None else (tx, units.ops(conn, gid))

        return await self.runner.read(unit)

    async def history(self, gid: str) -> list[Event]:
        """The transaction's events, oldest first."""
        return await self.runner.read(lambda conn: units.history(conn, gid))

    # ------------------------------------------------------------------ writes

    async def create(self, tx: GlobalTx, ops: Sequence[BranchOp], events: Sequence[Event]) -> bool:
        """Insert a new transaction with its ops and events; False (nothing written) if the gid exists."""
        return await self.runner.run(lambda conn: units.create(conn, tx, ops, events))

    async def add_branch(self, gid: str, ops: Sequence[BranchOp], now: int) -> RegisterResult:
        """Add one TCC branch's ops while the transaction is a PREPARED TCC one.

        The version is bumped with the check (which also locks the row), so a Submit that read the ops
        before this insert fails its compare-and-set and reads again: no registered branch is missed.
        """

        def unit(conn: Conn) -> RegisterResult:
            if conn.execute(_LOCK_PREPARED_TCC, (now, gid, int(Status.PREPARED), int(Mode.TCC))) != 1:
                tx = units.get(conn, gid)
                if tx is None:
                    return RegisterResult(RegisterOutcome.NOT_FOUND)
                return RegisterResult(RegisterOutcome.WRONG_STATE, tx)
            existing = units.ops(conn, gid)
            mine = {op.op: op for op in existing if op.branch_id == ops[0].branch_id}
            if mine:
                same = all(
                    op.op in mine and mine[op.op].target == op.target and mine[op.op].payload == op.payload
                    for op in ops
                )
                raise _Rollback(RegisterResult(RegisterOutcome.SAME if same else RegisterOutcome.DIFFERENT))
            position = max((op.position for op in existing), default=0) + 1
            units.insert_ops(conn, [replace(op, position=position) for op in ops])
            return RegisterResult(RegisterOutcome.ADDED)

        try:
            return await self.runner.run(unit)
        except _Rollback as rollback:
            return cast(RegisterResult, rollback.result)

    async def write(self, write: TxWrite) -> bool:
        """Apply a compare-and-set write; False when the compare failed (nothing written)."""
        return await self.runner.run(lambda conn: units.apply(conn, write))

    async def transition(self, gid: str, decide: Decide) -> tuple[GlobalTx, TxWrite | None] | None:
        """Read ``gid`` (row-locked) and its ops, apply what ``decide`` returns, in one transaction."""

        def unit(conn: Conn) -> tuple[GlobalTx, TxWrite | None] | None:
            tx = units.get(conn, gid, conn.dialect.for_update)
            if tx is None:
                return None
            write = decide(tx, units.ops(conn, gid))
            if write is not None and not units.apply(conn, write):
                raise RuntimeError(f"transaction {gid}: compare failed under the row lock")
            return tx, write

        return await self.runner.run(unit)

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
        where = f"gid = ? AND {units.CLAIMABLE}"
        params: list[Any] = [gid, now]
        if not include_paused:
            where += " AND retry_paused = ?"
            params.append(False)
        if not force:
            where += " AND next_run_at <= ?"
            params.append(now)

        def unit(conn: Conn) -> list[Claimed]:
            return units.claim(conn, where + conn.dialect.for_update, params, owner, lease_until)

        claimed = await self.runner.run(unit)
        return claimed[0] if claimed else None

    async def claim_due(self, owner: str, now: int, lease_until: int, limit: int) -> list[Claimed]:
        """Claim up to ``limit`` due transactions at once (the sweeper), most overdue first.

        On MySQL/MariaDB the rows are locked with ``SKIP LOCKED``: replicas sweeping at the same time
        take disjoint rows.
        """
        where = DUE_WHERE
        params = (now, now, False, limit)

        def unit(conn: Conn) -> list[Claimed]:
            lock = " FOR UPDATE SKIP LOCKED" if conn.dialect.is_mysql else ""
            return units.claim(conn, where + lock, params, owner, lease_until)

        return await self.runner.run(unit)

    async def claim_many(self, gids: Sequence[str], owner: str, now: int, lease_until: int) -> list[Claimed]:
        """Own those of ``gids`` that are due, unfinished, unpaused and unleased (one statement for all).

        On MySQL/MariaDB rows another replica is claiming right now are skipped (``SKIP LOCKED``).
        """
        if not gids:
            return []
        where = hinted_where(len(gids)) + " AND retry_paused = ?"
        params = (*gids, now, now, False)

        def unit(conn: Conn) -> list[Claimed]:
            lock = " FOR UPDATE SKIP LOCKED" if conn.dialect.is_mysql else ""
            return units.claim(conn, where + lock, params, owner, lease_until)

        return await self.runner.run(unit)

    async def take_over(self, owner: str, now: int) -> int:
        """At start: release the leases a previous process with this replica id held, due now.

        The process that held them is gone (replica ids are unique among live replicas), so its work
        need not wait for the leases to lapse; the version bump fences any write it might still make.
        Returns how many transactions were released.
        """
        # next_run_at is set on every owned unfinished row: the due-work index finds them.
        sql = (
            "UPDATE trans_global SET owner = NULL, lease_until = NULL, next_run_at = ?, version = version + 1"
            " WHERE next_run_at IS NOT NULL AND owner = ? AND finished_at IS NULL"
        )
        return await self.runner.run(lambda conn: conn.execute(sql, (now, owner)))


# Claims of due work read ix_trans_global_next_run_at: a finished row has next_run_at NULL (every final
# write clears it), so the range "next_run_at <= now" holds unfinished work only, in due order, however
# many finished rows are stored. "finished_at IS NULL" stays as a guard but in a form no index serves:
# as an indexable equality the planners preferred ix_trans_global_finished_created and then sorted
# every unfinished row (test_claim_plans.py).
_UNFINISHED_UNLEASED = (
    "COALESCE(finished_at, 0) = 0 AND (owner IS NULL OR lease_until IS NULL OR lease_until < ?)"
)
# The sweeper's (params: now, now, paused=False, limit) and the timer hints' batch claim (gids..., now, now).
DUE_WHERE = f"next_run_at <= ? AND {_UNFINISHED_UNLEASED} AND retry_paused = ? ORDER BY next_run_at LIMIT ?"


def hinted_where(count: int) -> str:
    """The batch claim of ``count`` hinted gids."""
    return f"gid IN ({', '.join('?' for _ in range(count))}) AND next_run_at <= ? AND {_UNFINISHED_UNLEASED}"


_LOCK_PREPARED_TCC = (
    "UPDATE trans_global SET version = version + 1, updated_at = ? WHERE gid = ? AND status = ? AND mode = ?"
)
