"""``D/stack.json``: what a running local stack consists of (pids, ports, logs, start time).

Written by ``meshctl up`` once every service answers SERVING, read by ``status`` and ``down``, removed
when the stack stops. A lock file serialises concurrent ``up`` runs on one data directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from meshctl.stack.procs import ProcRef, is_running

STACK_FILE = "stack.json"
LOCK_FILE = ".meshctl.lock"

KIND_SERVICE = "service"
KIND_INFRA = "infra"
KIND_CONSOLE = "console"  # the admin web console (HTTP; its address is its URL)


class StackLocked(Exception):
    """Another ``meshctl up`` is working on this data directory right now."""


@dataclass(frozen=True, slots=True)
class ProcEntry:
    """One process of the stack."""

    name: str
    kind: str  # KIND_SERVICE, KIND_INFRA or KIND_CONSOLE
    pid: int
    start_ticks: int | None
    address: str  # host:port for services, URL for infrastructure
    metrics_port: int | None
    log: str

    @property
    def ref(self) -> ProcRef:
        """The process identity used to signal it safely."""
        return ProcRef(self.pid, self.start_ticks)

    def running(self) -> bool:
        """True while this very process still runs."""
        return is_running(self.ref)


@dataclass(frozen=True, slots=True)
class StackState:
    """A running stack."""

    data_dir: str
    base_port: int
    started_at: str
    meshctl_pid: int
    detached: bool
    processes: list[ProcEntry] = field(default_factory=list)

    def services(self) -> list[ProcEntry]:
        """The service processes, in start order."""
        return [p for p in self.processes if p.kind == KIND_SERVICE]

    def console(self) -> ProcEntry | None:
        """The admin web console, when the stack runs one."""
        return next((p for p in self.processes if p.kind == KIND_CONSOLE), None)

    def infra(self) -> list[ProcEntry]:
        """Redis and NATS."""
        return [p for p in self.processes if p.kind == KIND_INFRA]

    def running(self) -> list[ProcEntry]:
        """The processes still running."""
        return [p for p in self.processes if p.running()]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackState:
        """Parse what :meth:`to_json` produced."""
        procs = [ProcEntry(**p) for p in data.get("processes", [])]
        return cls(**{**data, "processes": procs})


def stack_path(data_dir: Path) -> Path:
    """Where the stack file of ``data_dir`` lives."""
    return data_dir / STACK_FILE


def load(data_dir: Path) -> StackState | None:
    """The stack recorded in ``data_dir``, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(stack_path(data_dir).read_text())
        return StackState.from_json(data)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def save(data_dir: Path, state: StackState) -> None:
    """Write the stack file atomically."""
    path = stack_path(data_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    os.replace(tmp, path)


def remove(data_dir: Path) -> None:
    """Delete the stack file (no error when it is gone)."""
    stack_path(data_dir).unlink(missing_ok=True)


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """Hold the data directory's lock; raise :class:`StackLocked` when another meshctl holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / LOCK_FILE).open("a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StackLocked(str(data_dir)) from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
