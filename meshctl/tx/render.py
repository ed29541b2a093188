"""How ``meshctl tx`` shows transactions: rich tables for people, JSON for scripts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from meshctl.jsonout import message_dict, message_json
from meshctl.tx.fit import Col, fit
from meshctl.tx.fit import table as fit_table
from meshpb.coordinator.v1 import coordinator_pb2 as pb

STATUS_STYLE: dict[int, str] = {
    pb.STATUS_PREPARED: "cyan",
    pb.STATUS_SUBMITTED: "blue",
    pb.STATUS_SUCCEEDED: "green",
    pb.STATUS_ABORTING: "yellow",
    pb.STATUS_FAILED: "red",
}
OP_STYLE = {"succeeded": "green", "pending": "yellow", "failed": "red", "skipped": "dim"}
MAX_ERROR = 80
MAX_WIDE = 1000  # --wide: the console grows up to this many columns so that no table is cropped
# Ops of one branch in the order they happen.
OP_ORDER = {"try": 0, "action": 0, "msg": 0, "confirm": 1, "cancel": 2, "compensate": 2}


def as_json(message: Message) -> str:
    """A message as indented JSON: proto field names, enums by name, every field, int64 as numbers."""
    return message_json(message)


def status_name(value: int) -> str:
    """``SUCCEEDED`` for ``STATUS_SUCCEEDED``."""
    return pb.Status.Name(value).removeprefix("STATUS_")  # type: ignore[arg-type]


def mode_name(value: int) -> str:
    """``TCC`` for ``MODE_TCC``."""
    return pb.Mode.Name(value).removeprefix("MODE_")  # type: ignore[arg-type]


def when(ts: Timestamp, present: bool = True) -> str:
    """A timestamp as local-free UTC text, or ``-``."""
    if not present:
        return "-"
    return datetime.fromtimestamp(ts.ToMilliseconds() / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _styled_status(value: int) -> str:
    style = STATUS_STYLE.get(value, "white")
    return f"[{style}]{status_name(value)}[/{style}]"


def _flags(tx: pb.Transaction) -> str:
    flags = [name for name, on in (("paused", tx.retry_paused), ("stuck", tx.stuck)) if on]
    return ",".join(flags)


def _short(text: str, limit: int = MAX_ERROR) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(text: str, limit: int = MAX_ERROR) -> str:
    """``text`` on one line (whitespace collapsed), cut at ``limit`` characters."""
    return _short(" ".join(text.split()), limit)


Row = list[tuple[str, str]]  # per column: (plain text for measuring, the cell as printed)


def _plain(markup: str) -> str:
    return Text.from_markup(markup).plain


def _cell(markup: str) -> tuple[str, str]:
    return (_plain(markup), markup)


def _table(title: str, cols: list[Col], rows: list[Row], *, width: int, wide: bool) -> Table:
    """The table of ``cols``: every column when ``wide``, else those that fit ``width`` (gids whole)."""
    widths = {c.header: c.width for c in cols} if wide else fit(cols, width)
    table = fit_table(title)
    keep = [i for i, c in enumerate(cols) if c.header in widths]
    for i in keep:
        col = cols[i]
        if col.flex and not wide:
            table.add_column(col.header, no_wrap=True, overflow="ellipsis", width=widths[col.header])
        else:
            table.add_column(col.header, no_wrap=True, min_width=widths[col.header])
    for row in rows:
        cells = []
        for i in keep:
            plain, shown = row[i]
            if cols[i].flex:
                shown = escape(_one_line(plain, len(plain) if wide else widths[cols[i].header]))
            cells.append(shown)
        table.add_row(*cells)
    return table


def _columns(headers: list[tuple[str, int, bool]], rows: list[Row]) -> list[Col]:
    return [
        Col(header, tuple(row[i][0] for row in rows), drop, flex)
        for i, (header, drop, flex) in enumerate(headers)
    ]


def transactions_table(
    title: str, txs: list[pb.Transaction], *, width: int = 80, wide: bool = False
) -> Table:
    """One line per transaction, its gid whole; columns that do not fit ``width`` are dropped.

    The last error is cut to one line; ``wide`` shows every column in full (the caller widens the
    console so nothing is cropped).
    """
    headers = [
        ("gid", 0, False),
        ("mode", 7, False),
        ("status", 1, False),
        ("flags", 3, False),
        ("ops", 5, False),
        ("att", 2, False),
        ("last error", 4, True),
        ("created (UTC)", 8, False),
    ]
    rows: list[Row] = []
    for tx in txs:
        done = sum(1 for op in tx.ops if op.status in ("succeeded", "skipped"))
        worst = max(tx.ops, key=lambda op: op.attempts, default=None)
        error = worst.last_error if worst else ""
        rows.append(
            [
                (tx.gid, escape(tx.gid)),
                _cell(mode_name(tx.mode)),
                _cell(_styled_status(tx.status)),
                _cell(_flags(tx)),
                _cell(f"{done}/{len(tx.ops)}"),
                _cell(str(worst.attempts) if worst else "0"),
                (error, escape(error)),
                _cell(when(tx.created_at, tx.HasField("created_at"))),
            ]
        )
    return _table(title, _columns(headers, rows), rows, width=width, wide=wide)


def widen_for(console: Console, *tables: Table) -> None:
    """Make ``console`` wide enough that none of ``tables`` is cropped (``--wide``)."""
    unbounded = console.options.update(width=MAX_WIDE, max_width=MAX_WIDE)
    needed = max(Measurement.get(console, unbounded, t).maximum for t in tables)
    console.width = max(console.width, needed)


def print_transaction(console: Console, tx: pb.Transaction, *, wide: bool = False) -> None:
    """Header, branch ops and history timeline of one transaction (``wide``: every column, full text)."""
    console.print(tx.gid, style="bold", soft_wrap=True, highlight=False, markup=False)  # whole
    flags = _flags(tx)
    console.print(f"{mode_name(tx.mode)}  {_styled_status(tx.status)}  {flags}", highlight=False)
    if tx.reason:
        reason = tx.reason if wide else _one_line(tx.reason, console.width - len("reason: "))
        console.print(f"reason: {reason}", highlight=False, markup=False)
    o = tx.options
    console.print(
        f"created {when(tx.created_at, tx.HasField('created_at'))}  "
        f"timeout {when(tx.timeout_at, tx.HasField('timeout_at'))}\n"
        f"finished {when(tx.finished_at, tx.HasField('finished_at'))}  "
        f"next run {when(tx.next_run_at, tx.HasField('next_run_at'))}",
        highlight=False,
    )
    console.print(
        f"options: timeout {o.timeout_ms} ms, retry interval {o.retry_interval_ms} ms, "
        f"retry limit {o.retry_limit}, request timeout {o.request_timeout_ms} ms, concurrent {o.concurrent}",
        highlight=False,
    )
    tables = (
        ops_table(tx, width=console.width, wide=wide),
        history_table(tx, width=console.width, wide=wide),
    )
    if wide:
        widen_for(console, *tables)
    for table in tables:
        console.print(table)


def ops_table(tx: pb.Transaction, *, width: int = 80, wide: bool = False) -> Table:
    """A transaction's branch ops in the order they run; the last error on one line unless ``wide``."""
    headers = [
        ("branch", 0, False),
        ("op", 0, False),
        ("status", 1, False),
        ("att", 2, False),
        ("next attempt (UTC)", 5, False),
        ("target", 6, False),
        ("last error", 3, True),
    ]
    positions = {branch: i for i, branch in enumerate(dict.fromkeys(op.branch_id for op in tx.ops))}
    rows: list[Row] = []
    for op in sorted(tx.ops, key=lambda o: (positions[o.branch_id], OP_ORDER.get(o.op, 9))):
        style = OP_STYLE.get(op.status, "white")
        rows.append(
            [
                (op.branch_id, escape(op.branch_id)),
                (op.op, escape(op.op)),
                (op.status, f"[{style}]{escape(op.status)}[/{style}]"),
                _cell(str(op.attempts)),
                _cell(when(op.next_attempt_at, op.HasField("next_attempt_at"))),
                (op.target, escape(op.target)),
                (op.last_error, escape(op.last_error)),
            ]
        )
    return _table("branch ops", _columns(headers, rows), rows, width=width, wide=wide)


def history_table(tx: pb.Transaction, *, width: int = 80, wide: bool = False) -> Table:
    """A transaction's history; the time of day only and the detail on one line unless ``wide``."""
    headers = [
        ("at (UTC)", 0, False),
        ("kind", 5, False),
        ("change", 1, False),
        ("branch/op", 2, False),
        ("actor", 6, False),
        ("detail", 3, True),
    ]
    rows: list[Row] = []
    for event in tx.history:
        change = ""
        if event.to_status:
            before = status_name(event.from_status) if event.from_status else "new"
            change = f"{before} -> {status_name(event.to_status)}"
        where = f"{event.branch_id}/{event.op}" if event.branch_id else ""
        at = when(event.at) if wide else when(event.at)[11:]  # the date is in the header
        rows.append(
            [
                (at, at),
                (event.kind, escape(event.kind)),
                (change, change),
                (where, escape(where)),
                (event.actor, escape(event.actor)),
                (event.detail, escape(event.detail)),
            ]
        )
    return _table("history", _columns(headers, rows), rows, width=width, wide=wide)


def stats_table(stats: pb.StatsResponse) -> Table:
    """Counts by mode and status, then stuck / paused / oldest unfinished."""
    table = Table(title="transactions", title_justify="left")
    table.add_column("mode")
    table.add_column("status")
    table.add_column("count", justify="right")
    for count in stats.counts:
        table.add_row(mode_name(count.mode), _styled_status(count.status), str(count.count))
    return table


def stats_summary(stats: pb.StatsResponse) -> str:
    """One line: stuck, paused, age of the oldest unfinished transaction."""
    oldest = (
        f"{stats.oldest_unfinished.ToMilliseconds() / 1000:.1f}s"
        if stats.HasField("oldest_unfinished")
        else "-"
    )
    return f"stuck {stats.stuck}  paused {stats.paused}  oldest unfinished {oldest}"


def stats_dict(stats: pb.StatsResponse) -> dict[str, Any]:
    """The stats as a JSON-ready dict."""
    return message_dict(stats)
