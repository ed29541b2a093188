"""Read-only queries for operators (the Admin service and ``meshctl tx``) and for the gauges.

* :func:`list_transactions` - filter by status, mode and creation time; newest first; opaque cursor.
* :func:`stuck_transactions` - unfinished work that is old and retried often, or flagged stuck.
* :func:`stats` - counts by (mode, status), stuck and paused counts, age of the oldest unfinished.
* :func:`ops_of` - the ops of several transactions at once (for list views).
* :func:`finished_gids` - which of some gids are final / unknown (participants' barrier retention).
* history: :meth:`coordinator.store.sql.SqlTxStore.history`; one transaction: ``SqlTxStore.load``.

All take the :class:`~coordinator.store.sql.SqlTxStore` (so they run like its other transactions)
and times in epoch milliseconds.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.engine import Connection

from coordinator.engine.model import BranchOp, GlobalTx, Mode, Status
from coordinator.engine.validate import is_gid
from coordinator.store.rows import op_from_row, tx_from_row
from coordinator.store.sql import SqlTxStore
from coordinator.store.tables import trans_branch_op, trans_global
from meshkit.errors import InvalidArgument

g = trans_global.c
o = trans_branch_op.c

MAX_PAGE = 500
_IN_CHUNK = 500  # bound parameters per IN list (old SQLite builds allow 999 in one statement)
DEFAULT_PAGE = 50
_UNFINISHED = [int(s) for s in Status if not s.final]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; ``next_cursor`` is empty on the last page."""

    transactions: list[GlobalTx]
    next_cursor: str


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts for ``meshctl tx stats`` and the gauges."""

    counts: dict[tuple[Mode, Status], int]
    stuck: int
    paused: int
    oldest_unfinished_ms: int | None  # created_at of the oldest unfinished transaction

    def unfinished(self) -> dict[tuple[Mode, Status], int]:
        """The counts of non-final statuses only."""
        return {key: n for key, n in self.counts.items() if not key[1].final}


def encode_cursor(created_at: int, gid: str) -> str:
    """An opaque cursor pointing after ``(created_at, gid)``."""
    return base64.urlsafe_b64encode(f"{created_at}:{gid}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The position in a cursor; ``InvalidArgument("cursor")`` when it was not made by this module."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, gid = raw.split(":", 1)
        return int(created), gid
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument("cursor", "not a cursor returned by a previous page") from None


async def list_transactions(
    store: SqlTxStore,
    *,
    status: Status | None = None,
    mode: Mode | None = None,
    created_after: int | None = None,
    created_before: int | None = None,
    cursor: str = "",
    limit: int = DEFAULT_PAGE,
) -> Page:
    """Transactions matching the filters, newest first (by ``created_at``, then gid), one page."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument("limit", f"{limit} is not in 1..{MAX_PAGE}")
    stmt = select(trans_global)
    if status is not None:
        stmt = stmt.where(g.status == int(status))
    if mode is not None:
        stmt = stmt.where(g.mode == int(mode))
    if created_after is not None:
        stmt = stmt.where(g.created_at >= created_after)
    if created_before is not None:
        stmt = stmt.where(g.created_at < created_before)
    if cursor:
        at, gid = decode_cursor(cursor)
        stmt = stmt.where(or_(g.created_at < at, and_(g.created_at == at, g.gid < gid)))
    stmt = stmt.order_by(g.created_at.desc(), g.gid.desc()).limit(limit + 1)
    rows = await store.run(lambda conn: conn.execute(stmt).mappings().all())
    txs = [tx_from_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    return Page(txs, encode_cursor(txs[-1].created_at, txs[-1].gid) if more and txs else "")


async def stuck_transactions(
    store: SqlTxStore, *, now: int, older_than_ms: int = 0, min_attempts: int = 0, limit: int = 100
) -> list[GlobalTx]:
    """Unfinished, old, troubled transactions, oldest first.

    Matches transactions created at least ``older_than_ms`` ago that are flagged stuck or have an op
    with at least ``min_attempts`` attempts (``min_attempts`` 0: flagged stuck ones only).
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument("limit", f"{limit} is not in 1..{MAX_PAGE}")
    if older_than_ms < 0:
        raise InvalidArgument("older_than", "must not be negative")
    if min_attempts < 0:
        raise InvalidArgument("min_attempts", "must not be negative")
    retried = exists().where(o.gid == g.gid, o.attempts >= min_attempts)
    flagged = or_(g.stuck.is_(True), retried) if min_attempts > 0 else g.stuck.is_(True)
    stmt = (
        select(trans_global)
        .where(g.status.in_(_UNFINISHED), g.created_at <= now - older_than_ms, flagged)
        .order_by(g.created_at, g.gid)
        .limit(limit)
    )
    rows = await store.run(lambda conn: conn.execute(stmt).mappings().all())
    return [tx_from_row(r) for r in rows]


async def stats(store: SqlTxStore, *, include_finished: bool = True) -> Stats:
    """Counts by (mode, status), unfinished stuck and paused counts, oldest unfinished creation time.

    ``include_finished=False`` counts only unfinished statuses: it reads the status index only, so it
    stays cheap however many finished transactions the table keeps (the gauges use it every sweep).
    """
    unfinished = g.status.in_(_UNFINISHED)
    by_status = select(g.mode, g.status, func.count()).group_by(g.mode, g.status)
    if not include_finished:
        by_status = by_status.where(unfinished)
    stuck_q = select(func.count()).where(unfinished, g.stuck.is_(True))
    paused_q = select(func.count()).where(unfinished, g.retry_paused.is_(True))
    oldest_q = select(func.min(g.created_at)).where(unfinished)

    def body(conn: Connection) -> Stats:
        counts = {(Mode(m), Status(s)): int(n) for m, s, n in conn.execute(by_status).all()}
        stuck = int(conn.execute(stuck_q).scalar_one())
        paused = int(conn.execute(paused_q).scalar_one())
        oldest = conn.execute(oldest_q).scalar_one_or_none()
        return Stats(counts=counts, stuck=stuck, paused=paused, oldest_unfinished_ms=oldest)

    return await store.run(body)


async def ops_of(store: SqlTxStore, gids: Sequence[str]) -> dict[str, list[BranchOp]]:
    """The ops of each of ``gids`` (position order); gids without ops map to empty lists."""
    result: dict[str, list[BranchOp]] = {gid: [] for gid in gids}
    if not gids:
        return result
    stmt = select(trans_branch_op).where(o.gid.in_(list(gids))).order_by(o.gid, o.position, o.branch_id, o.op)
    for row in await store.run(lambda conn: conn.execute(stmt).mappings().all()):
        result[row["gid"]].append(op_from_row(row))
    return result


@dataclass(frozen=True, slots=True)
class FinishedGids:
    """The answer of :func:`finished_gids`; gids that are still unfinished are in neither list."""

    finished: list[str]  # SUCCEEDED or FAILED
    unknown: list[str]  # no row: deleted after retention, or never created


async def finished_gids(store: SqlTxStore, gids: Sequence[str]) -> FinishedGids:
    """Split ``gids`` (distinct) into final and unknown ones, keeping their order.

    A malformed gid is unknown without a lookup: no transaction can have it.

    One short read transaction of primary-key lookups (``gid IN (...)``, in chunks) reading only the
    status: plain reads that take no row locks, so the engine's drives never wait for it (on SQLite it
    queues like every store call, for the length of one indexed read).
    """
    wellformed = [gid for gid in gids if is_gid(gid)]
    if not wellformed:
        return FinishedGids([], list(gids))

    def body(conn: Connection) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(wellformed), _IN_CHUNK):
            chunk = wellformed[start : start + _IN_CHUNK]
            rows = conn.execute(select(g.gid, g.status).where(g.gid.in_(chunk))).all()
            found.update((str(gid), int(status)) for gid, status in rows)
        return found

    status = await store.run(body)
    finished = [gid for gid in gids if gid in status and Status(status[gid]).final]
    unknown = [gid for gid in gids if gid not in status]
    return FinishedGids(finished, unknown)


__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "FinishedGids",
    "Page",
    "Stats",
    "decode_cursor",
    "encode_cursor",
    "finished_gids",
    "list_transactions",
    "ops_of",
    "stats",
    "stuck_transactions",
]
