"""Processes of a local stack: start a service, tell whether a pid is still the process we started, stop.

A pid is identified together with its start time (``/proc/<pid>/stat`` field 22), so a recycled pid is
never mistaken for ours and never signalled. Zombies count as gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from meshkit.runtime.clock import Clock

POLL_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class ProcRef:
    """A process we started: its pid and its kernel start time (``None`` where /proc is missing)."""

    pid: int
    start_ticks: int | None


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (after the command name), or None when there is no such file."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """The kernel start time of ``pid`` in clock ticks, or None when unknown."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def ref_of(pid: int) -> ProcRef:
    """A :class:`ProcRef` for a process that runs right now."""
    return ProcRef(pid, start_ticks(pid))


def is_running(ref: ProcRef) -> bool:
    """True while the process exists, is not a zombie, and is the one we started."""
    fields = _stat_fields(ref.pid)
    if fields is None:
        if Path("/proc/self/stat").exists():
            return False
        try:  # no procfs: fall back to signal 0
            os.kill(ref.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if fields[0] in ("Z", "X"):
        return False
    return ref.start_ticks is None or start_ticks(ref.pid) == ref.start_ticks


def send_signal(ref: ProcRef, sig: signal.Signals) -> None:
    """Signal the process group ``ref`` leads (our processes run in their own session), if still ours."""
    if not is_running(ref):
        return
    try:
        os.killpg(ref.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(ref.pid, sig)


async def wait_gone(refs: Sequence[ProcRef], within_seconds: float, clock: Clock) -> list[ProcRef]:
    """Poll until none of ``refs`` runs or the time is up; returns those still running."""
    deadline = clock.monotonic() + within_seconds
    alive = [r for r in refs if is_running(r)]
    while alive and clock.monotonic() < deadline:
        await clock.sleep(POLL_SECONDS)
        alive = [r for r in alive if is_running(r)]
    return alive


async def terminate(refs: Sequence[ProcRef], grace_seconds: float, clock: Clock) -> list[ProcRef]:
    """SIGTERM every process, SIGKILL what is left after ``grace_seconds``; returns any that survived."""
    for ref in refs:
        send_signal(ref, signal.SIGTERM)
    left = await wait_gone(refs, grace_seconds, clock)
    for ref in left:
        send_signal(ref, signal.SIGKILL)
    return await wait_gone(left, 5.0, clock)


def spawn_module(module: str, env: Mapping[str, str], log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Run ``python -m module`` in its own session, stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_fh:
        return subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )


def port_taken(host: str, port: int) -> bool:
    """True when something listens on (or otherwise holds) ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def tail_lines(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file ('' when it cannot be read)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
