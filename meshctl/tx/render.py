"""How ``meshctl tx`` shows transactions: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.table import Table

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
# Ops of one branch in the order they happen.
OP_ORDER = {"try": 0, "action": 0, "msg": 0, "confirm": 1, "cancel": 2, "compensate": 2}


def as_json(message: Message) -> str:
    """A message as indented JSON with the proto field names (enums by name)."""
    return json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=2, sort_keys=True)


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


def transactions_table(title: str, txs: list[pb.Transaction]) -> Table:
    """One line per transaction: gid, mode, status, flags, ops done, worst op, created."""
    table = Table(title=title, title_justify="left")
    for column in ("gid", "mode", "status", "flags", "ops", "attempts", "last error", "created (UTC)"):
        table.add_column(column, overflow="fold")
    for tx in txs:
        done = sum(1 for op in tx.ops if op.status in ("succeeded", "skipped"))
        worst = max(tx.ops, key=lambda op: op.attempts, default=None)
        table.add_row(
            tx.gid,
            mode_name(tx.mode),
            _styled_status(tx.status),
            _flags(tx),
            f"{done}/{len(tx.ops)}",
            str(worst.attempts) if worst else "0",
            _short(worst.last_error) if worst else "",
            when(tx.created_at, tx.HasField("created_at")),
        )
    return table


def print_transaction(console: Console, tx: pb.Transaction) -> None:
    """Header, branch ops and history timeline of one transaction."""
    console.print(f"[bold]{tx.gid}[/bold]  {mode_name(tx.mode)}  {_styled_status(tx.status)}  {_flags(tx)}")
    if tx.reason:
        console.print(f"reason: {tx.reason}")
    o = tx.options
    console.print(
        f"created {when(tx.created_at, tx.HasField('created_at'))}  "
        f"timeout {when(tx.timeout_at, tx.HasField('timeout_at'))}  "
        f"finished {when(tx.finished_at, tx.HasField('finished_at'))}  "
        f"next run {when(tx.next_run_at, tx.HasField('next_run_at'))}",
        highlight=False,
    )
    console.print(
        f"options: timeout {o.timeout_ms} ms, retry interval {o.retry_interval_ms} ms, "
        f"retry limit {o.retry_limit}, request timeout {o.request_timeout_ms} ms, concurrent {o.concurrent}",
        highlight=False,
    )
    ops = Table(title="branch ops", title_justify="left")
    for column in ("branch", "op", "status", "attempts", "next attempt (UTC)", "target", "last error"):
        ops.add_column(column, overflow="fold")
    positions = {branch: i for i, branch in enumerate(dict.fromkeys(op.branch_id for op in tx.ops))}
    for op in sorted(tx.ops, key=lambda o: (positions[o.branch_id], OP_ORDER.get(o.op, 9))):
        style = OP_STYLE.get(op.status, "white")
        ops.add_row(
            op.branch_id,
            op.op,
            f"[{style}]{op.status}[/{style}]",
            str(op.attempts),
            when(op.next_attempt_at, op.HasField("next_attempt_at")),
            op.target,
            op.last_error,
        )
    console.print(ops)
    history = Table(title="history", title_justify="left")
    for column in ("at (UTC)", "kind", "change", "branch/op", "actor", "detail"):
        history.add_column(column, overflow="fold")
    for event in tx.history:
        change = ""
        if event.to_status:
            before = status_name(event.from_status) if event.from_status else "new"
            change = f"{before} -> {status_name(event.to_status)}"
        where = f"{event.branch_id}/{event.op}" if event.branch_id else ""
        history.add_row(when(event.at), event.kind, change, where, event.actor, event.detail)
    console.print(history)


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
    return MessageToDict(stats, preserving_proto_field_name=True)
