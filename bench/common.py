"""Shared benchmark plumbing: a whole local stack on a free base port, closed-loop load, latency stats."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from meshctl.audit.clients import MeshAddresses
from meshctl.stack import stackfile
from meshctl.stack.endpoints import TOKEN_FILE
from meshctl.stack.launcher import StackLauncher, free_base_port
from meshkit.runtime.clock import SystemClock

MAX_ERRORS_SHOWN = 3


@dataclass(frozen=True, slots=True)
class BenchStack:
    """A running local stack: where its services are and the admin token."""

    launcher: StackLauncher
    addresses: MeshAddresses
    admin_token: str

    def pids(self) -> dict[str, int]:
        """Process name -> pid of every service, Redis and NATS of the stack (from its ``stack.json``)."""
        state = stackfile.load(self.launcher.data_dir)
        if state is None:
            return {}
        return {p.name: p.pid for p in (*state.services(), *state.infra())}


@asynccontextmanager
async def local_stack(
    data_dir: Path, *, env_overrides: Mapping[str, Mapping[str, str]] | None = None
) -> AsyncIterator[BenchStack]:
    """Start the whole mesh (``meshctl`` launcher) in ``data_dir`` on a free base port; stop it afterwards.

    ``env_overrides`` (service name -> environment) wins over the stack's own settings, e.g. to point a
    service's ``MESH_DB__URL`` at MariaDB.
    """
    launcher = StackLauncher(data_dir, free_base_port(), SystemClock(), env_overrides=env_overrides)
    try:
        await launcher.start(detached=True)
        yield BenchStack(
            launcher,
            MeshAddresses.for_base_port(launcher.base_port),
            (launcher.data_dir / TOKEN_FILE).read_text().strip(),
        )
    finally:
        await launcher.stop()


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (0.0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(fraction * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LoadResult:
    """What one closed-loop run measured."""

    concurrency: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def count(self) -> int:
        """Calls that succeeded."""
        return len(self.latencies)

    @property
    def rate(self) -> float:
        """Successful calls per second."""
        return self.count / self.seconds if self.seconds else 0.0

    def p(self, fraction: float) -> float:
        """Latency percentile in milliseconds."""
        return percentile(sorted(self.latencies), fraction) * 1000


Call = Callable[[int], Awaitable[None]]


async def closed_loop(call: Call, *, concurrency: int, seconds: float, label: str) -> LoadResult:
    """``concurrency`` workers calling ``call(n)`` back to back for ``seconds``; latency of each success."""
    result = LoadResult(concurrency)
    counter = iter(range(10**12))
    stop_at = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < stop_at:
            await _timed_call(call, next(counter), result, label)

    await _run_workers(worker, concurrency, result)
    return result


async def fixed_count(call: Call, *, total: int, concurrency: int, label: str) -> LoadResult:
    """``concurrency`` workers making exactly ``total`` calls ``call(0..total-1)`` between them."""
    result = LoadResult(concurrency)
    counter = iter(range(total))

    async def worker() -> None:
        for n in counter:  # the workers share the iterator: each n is called once
            await _timed_call(call, n, result, label)

    await _run_workers(worker, concurrency, result)
    return result


async def _timed_call(call: Call, n: int, result: LoadResult, label: str) -> None:
    """One ``call(n)``: its latency on success, else an error counted (and the first few shown)."""
    started = time.monotonic()
    try:
        await call(n)
    except Exception as exc:  # counted and shown: a benchmark keeps going
        result.errors += 1
        if result.errors <= MAX_ERRORS_SHOWN:
            print(f"  {label}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return
    result.latencies.append(time.monotonic() - started)


async def _run_workers(worker: Callable[[], Awaitable[None]], concurrency: int, result: LoadResult) -> None:
    """``concurrency`` copies of ``worker`` at once; the wall time they took goes to ``result.seconds``."""
    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.monotonic() - started


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc/<pid>/stat``), 0.0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class CpuMeter:
    """The CPU time of named processes (``client`` = this process unless named otherwise)."""

    pids: Mapping[str, int]

    @classmethod
    def of(cls, pids: Mapping[str, int], *, client: bool = True) -> CpuMeter:
        """A meter of ``pids`` plus, with ``client``, this process as ``client``."""
        return cls({**pids, "client": os.getpid()} if client else dict(pids))

    def read(self) -> dict[str, float]:
        """CPU seconds of every process so far."""
        return {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}


def cpu_used(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds each process used between two :meth:`CpuMeter.read` (names of ``after``)."""
    return {name: max(0.0, after[name] - before.get(name, 0.0)) for name in after}


def ms_per_unit(cpu: Mapping[str, float], units: int) -> dict[str, float]:
    """CPU milliseconds per unit of work of each process (0.0 for every one when nothing was done)."""
    return {name: (seconds * 1000 / units if units else 0.0) for name, seconds in cpu.items()}


def ratio(value: float, reference: float) -> float:
    """``value / reference``, 0.0 when the reference is 0."""
    return value / reference if reference else 0.0


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain aligned table (first column left, the others right)."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    print(f"\n{title}")
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


def _cell(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


@dataclass(frozen=True, slots=True)
class Phase:
    """One measured phase of the overview: its load and the CPU each process used meanwhile."""

    group: str
    name: str
    backend: str
    load: LoadResult
    cpu: Mapping[str, float]

    @property
    def rate(self) -> float:
        """Successful units per second."""
        return self.load.rate

    @property
    def cpu_ms(self) -> dict[str, float]:
        """CPU milliseconds per successful unit, per process."""
        return ms_per_unit(self.cpu, self.load.count)

    @property
    def total_cpu_ms(self) -> float:
        """CPU milliseconds per successful unit, all processes together."""
        return sum(self.cpu_ms.values())


def stop_processes(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process, then wait for each (killed when it takes longer than 20 s)."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def concurrency_levels(text: str) -> list[int]:
    """An argparse type: comma-separated positive concurrency levels, e.g. ``1,8,32``."""
    levels = [int(x) for x in text.split(",") if x.strip()]
    if not levels or any(x < 1 for x in levels):
        raise argparse.ArgumentTypeError("concurrency levels must be positive integers, e.g. 1,8,32")
    return levels


def backend_choice(known: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated, non-empty subset of the ``known`` storage backends."""

    def parse(text: str) -> list[str]:
        chosen = [x.strip() for x in text.split(",") if x.strip()]
        if not chosen or any(x not in known for x in chosen):
            raise argparse.ArgumentTypeError(f"backends are {', '.join(known)}")
        return chosen

    return parse
