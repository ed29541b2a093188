"""How values read in the console: enum names, times, ages and durations (used as Jinja filters)."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from meshpb.coordinator.v1 import coordinator_pb2 as pb

UNFINISHED = (pb.STATUS_PREPARED, pb.STATUS_SUBMITTED, pb.STATUS_ABORTING)
STATUSES = tuple(s for s in pb.Status.values() if s != pb.STATUS_UNSPECIFIED)
MODES = tuple(m for m in pb.Mode.values() if m != pb.MODE_UNSPECIFIED)


def status_name(status: int) -> str:
    """``SUBMITTED`` for STATUS_SUBMITTED."""
    try:
        return pb.Status.Name(status).removeprefix("STATUS_")  # type: ignore[arg-type]
    except ValueError:
        return str(status)


def mode_name(mode: int) -> str:
    """``TCC`` for MODE_TCC."""
    try:
        return pb.Mode.Name(mode).removeprefix("MODE_")  # type: ignore[arg-type]
    except ValueError:
        return str(mode)


def ms_of(stamp: Timestamp) -> int:
    """A timestamp in epoch milliseconds (0 when unset)."""
    return int(stamp.ToMilliseconds()) if stamp.seconds or stamp.nanos else 0


def when(stamp: Timestamp) -> str:
    """``2026-12-06 16:30:01.250 UTC``, or ``-`` when unset."""
    ms = ms_of(stamp)
    if not ms:
        return "-"
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d} UTC"


def clock(ms: int) -> str:
    """``16:30:01 UTC`` for epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S UTC")


def span(ms: int) -> str:
    """``1h 02m``, ``3m 05s``, ``4.2s``, ``250ms``."""
    ms = max(ms, 0)
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def age(stamp: Timestamp, now_ms: int) -> str:
    """``3m 05s ago`` / ``in 4.2s``, or ``-`` when unset."""
    ms = ms_of(stamp)
    if not ms:
        return "-"
    delta = now_ms - ms
    return f"{span(delta)} ago" if delta >= 0 else f"in {span(-delta)}"


def duration(value: Duration) -> str:
    """A protobuf Duration as :func:`span` text."""
    return span(int(value.ToMilliseconds()))


def tx_flags(tx: pb.Transaction) -> list[str]:
    """``stuck`` / ``paused`` when they apply."""
    return [name for name, on in (("stuck", tx.stuck), ("paused", tx.retry_paused)) if on]


def why_stuck(tx: pb.Transaction, now_ms: int) -> str:
    """What needs a person: the op that keeps failing, how often, its last error and the next try."""
    failing = [op for op in tx.ops if op.status == "pending" and (op.attempts or op.last_error)]
    parts: list[str] = []
    if tx.stuck:
        parts.append("flagged stuck: an op passed its retry limit and must still succeed")
    if tx.retry_paused:
        parts.append("retries paused by an operator")
    for op in sorted(failing, key=lambda o: -o.attempts)[:3]:
        text = f"{op.op} of branch {op.branch_id} failed {op.attempts}x"
        if op.last_error:
            text += f" (last error: {op.last_error[:200]})"
        if ms_of(op.next_attempt_at):
            text += f", next attempt {age(op.next_attempt_at, now_ms)}"
        parts.append(text)
    if not parts:
        parts.append(f"{status_name(tx.status)} for {age(tx.created_at, now_ms).removesuffix(' ago')}")
    return "; ".join(parts)
