"""Shared benchmark plumbing: a whole local stack on a free base port, closed-loop load, latency stats."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from meshctl.audit.clients import MeshAddresses
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
            started = time.monotonic()
            try:
                await call(next(counter))
            except Exception as exc:  # counted and shown: a benchmark keeps going
                result.errors += 1
                if result.errors <= MAX_ERRORS_SHOWN:
                    print(f"  {label}: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            result.latencies.append(time.monotonic() - started)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.monotonic() - started
    return result


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
