"""Read-only queries for operators (the Admin service and ``meshctl tx``) and for the gauges.

* :func:`list_transactions` - filter by status, mode and creation time; newest first; opaque cursor.
* :func:`stuck_transactions` - unfinished work that is old and retried often, or flagged stuck.
* :func:`stats` - counts by (mode, status), stuck and paused counts, age of the oldest unfinished.
* :func:`ops_of` - the ops of several transactions at once (for list views).
* :func:`finished_gids` - which of some gids are final / unknown (participants' barrier retention).
* history: :meth:`coordinator.store.sql.SqlTxStore.history`; one transaction: ``SqlTxStore.load``.

All take the :class:`~coordinator.store.sql.SqlTxStore` and run on its read connections
(:meth:`~coordinator.store.sql.SqlTxStore.read`: never queued behind the engine's writes), with times in
epoch milliseconds. Each answers from an index, however many finished transactions the store keeps:

* List: ``(created_at, gid)``, ``(status, created_at, gid)``, ``(mode, created_at, gid)`` or
  ``(mode, status, created_at, gid)``, walked newest first from the cursor.
* Stuck and the unfinished part of Stats: ``(finished_at, created_at, gid)`` at ``finished_at IS NULL``
  (only unfinished rows; finished ones are never read).
* Counts by (mode, status): the ``trans_count`` rows that triggers keep exact.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, case, exists, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from coordinator.engine.model import BranchOp, GlobalTx, Mode, Status
from coordinator.engine.validate import is_gid
from coordinator.store.rows import op_from_row, tx_from_row
from coordinator.store.sql import SqlTxStore
from coordinator.store.tables import trans_branch_op, trans_count, trans_global
from meshkit.errors import InvalidArgument

g = trans_global.c
o = trans_branch_op.c

MAX_PAGE = 500
_IN_CHUNK = 500  # bound parameters per IN list (old SQLite builds allow 999 in one statement)
DEFAULT_PAGE = 50
_UNFINISHED = [int(s) for s in Status if not s.final]
UNFINISHED_INDEX = "ix_trans_global_finished_created"  # its finished_at IS NULL end: the unfinished rows

S = TypeVar("S", bound=Select[*tuple[Any, ...]])


def using_index(stmt: S, index: str) -> S:
    """``stmt`` reading trans_global through ``index`` on MySQL/MariaDB (SQLite's planner picks it).

    MariaDB's cost model, unaware that a LIMIT stops the walk early or that few rows are unfinished,
    may otherwise prefer a full scan and a sort, or a range of the creation index spanning every row.
    """
    hint = f"FORCE INDEX ({index})"
    return stmt.with_hint(trans_global, hint, "mysql").with_hint(trans_global, hint, "mariadb")


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
    stmt = list_statement(
        status=status, mode=mode, created_after=created_after, created_before=created_before, cursor=cursor
    ).limit(limit + 1)
    rows = await store.read(lambda conn: conn.execute(stmt).mappings().all())
    txs = [tx_from_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    return Page(txs, encode_cursor(txs[-1].created_at, txs[-1].gid) if more and txs else "")


def list_statement(
    *,
    status: Status | None = None,
    mode: Mode | None = None,
    created_after: int | None = None,
    created_before: int | None = None,
    cursor: str = "",
) -> Select[Any]:
    """The query of :func:`list_transactions`, without its limit."""
    if mode is None:
        index = "ix_trans_global_created" if status is None else "ix_trans_global_status_created"
    else:
        index = "ix_trans_global_mode_created" if status is None else "ix_trans_global_mode_status_created"
    stmt = using_index(select(trans_global), index)
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
        # The plain bound on created_at is what lets the index seek to the cursor instead of walking to it.
        stmt = stmt.where(g.created_at <= at, or_(g.created_at < at, g.gid < gid))
    return stmt.order_by(g.created_at.desc(), g.gid.desc())


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
    stmt = stuck_statement(created_by=now - older_than_ms, min_attempts=min_attempts).limit(limit)
    rows = await store.read(lambda conn: conn.execute(stmt).mappings().all())
    return [tx_from_row(r) for r in rows]


def stuck_statement(*, created_by: int, min_attempts: int) -> Select[Any]:
    """The query of :func:`stuck_transactions` (created at ``created_by`` or before), without its limit."""
    retried = exists().where(o.gid == g.gid, o.attempts >= min_attempts)
    flagged = or_(g.stuck.is_(True), retried) if min_attempts > 0 else g.stuck.is_(True)
    return (
        using_index(select(trans_global), UNFINISHED_INDEX)
        .where(*_unfinished(), g.created_at <= created_by, flagged)
        .order_by(g.created_at, g.gid)
    )


async def stats(store: SqlTxStore, *, include_finished: bool = True) -> Stats:
    """Counts by (mode, status), unfinished stuck and paused counts, oldest unfinished creation time.

    The counts come from ``trans_count`` (a row per (mode, status)); the rest from one walk of the
    unfinished rows. ``include_finished=False`` leaves out the final statuses' counts (the gauges).
    Pairs that no transaction has are left out.
    """
    by_status, unfinished = stats_statements(include_finished=include_finished)

    def body(conn: Connection) -> Stats:
        counts = {(Mode(m), Status(s)): int(n) for m, s, n in conn.execute(by_status).all()}
        stuck, paused, oldest = conn.execute(unfinished).one()
        return Stats(counts=counts, stuck=int(stuck), paused=int(paused), oldest_unfinished_ms=oldest)

    return await store.read(body)


def stats_statements(*, include_finished: bool = True) -> tuple[Select[Any], Select[int, int, Any]]:
    """The two queries of :func:`stats`: the counters, and the walk of the unfinished rows."""
    c = trans_count.c
    by_status = select(c.mode, c.status, c.n).where(c.n > 0)
    if not include_finished:
        by_status = by_status.where(c.status.in_(_UNFINISHED))
    unfinished = using_index(
        select(_how_many(g.stuck), _how_many(g.retry_paused), func.min(g.created_at)), UNFINISHED_INDEX
    ).where(*_unfinished())
    return by_status, unfinished


def _how_many(flag: ColumnElement[bool]) -> ColumnElement[int]:
    """How many rows have ``flag`` set (0 when there are none; MariaDB has no aggregate FILTER)."""
    return func.coalesce(func.sum(case((flag.is_(True), 1), else_=0)), 0)


def _unfinished() -> list[ColumnElement[bool]]:
    """Unfinished rows, read through the ``finished_at IS NULL`` end of ``(finished_at, created_at, gid)``."""
    return [g.finished_at.is_(None), g.status.in_(_UNFINISHED)]


async def ops_of(store: SqlTxStore, gids: Sequence[str]) -> dict[str, list[BranchOp]]:
    """The ops of each of ``gids`` (position order); gids without ops map to empty lists."""
    result: dict[str, list[BranchOp]] = {gid: [] for gid in gids}
    if not gids:
        return result
    stmt = select(trans_branch_op).where(o.gid.in_(list(gids))).order_by(o.gid, o.position, o.branch_id, o.op)
    for row in await store.read(lambda conn: conn.execute(stmt).mappings().all()):
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
    status, on the read connections: the engine's drives never wait for it, nor it for them.
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

    status = await store.read(body)
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
    "list_statement",
    "list_transactions",
    "ops_of",
    "stats",
    "stats_statements",
    "stuck_statement",
    "stuck_transactions",
    "using_index",
]
