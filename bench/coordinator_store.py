"""The coordinator's engine and store alone: CPU, SQL statements and commits per TCC and per saga.

``python -m bench.coordinator_store [--count N] [--profile]``

The engine runs in this process on a SQLite file with a branch invoker that answers OK at once (no
network): what is left is the engine plus its store. Every SQLite connection the process opens is
traced, so the statements (SELECT/INSERT/UPDATE/DELETE, trigger bodies excluded) and the COMMITs of
each transaction are counted exactly. ``--profile`` prints the top functions under cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from coordinator.engine.commands import PrepareCommand, SubmitCommand
from coordinator.engine.metrics import EngineMetrics
from coordinator.engine.model import BranchSpec, Mode
from coordinator.engine.ports import BranchCall, BranchResult, Outcome
from coordinator.engine.service import TxEngine
from coordinator.engine.settings import EngineSettings
from coordinator.store.sql import SqlTxStore, migrate
from meshkit.infra.db import create_engine
from meshkit.runtime.clock import SystemClock
from meshkit.settings.config import DbSettings

BRANCHES = 3
_DATA = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")


class OkInvoker:
    """A branch invoker that answers OK at once (no network)."""

    async def invoke(self, call: BranchCall) -> BranchResult:
        """Every call succeeds."""
        return BranchResult(Outcome.OK)


class SqlTrace:
    """Counts the statements and COMMITs of every SQLite connection opened while it is installed."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._last = ""

    def record(self, sql: str) -> None:
        """The trace callback: one call per statement run.

        A trigger's statements are traced with the text of the statement that fired them, right after
        it: a repeat of the same text (values included) is not counted again.
        """
        if sql == self._last:
            return
        self._last = sql
        head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if head in _DATA:
            self.counts["statements"] += 1
        elif head in ("COMMIT", "END"):
            self.counts["commits"] += 1

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Trace every ``sqlite3.connect`` made inside the block."""
        original = sqlite3.connect

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            db: sqlite3.Connection = original(*args, **kwargs)
            db.set_trace_callback(self.record)
            return db

        sqlite3.connect = connect  # type: ignore[assignment]
        sqlite3.dbapi2.connect = connect  # type: ignore[assignment]
        try:
            yield
        finally:
            sqlite3.connect = original
            sqlite3.dbapi2.connect = original


def tcc_spec(i: int) -> BranchSpec:
    """Branch ``i`` of a bench TCC."""
    return BranchSpec(
        f"b{i}",
        action=f"127.0.0.1:1/bench.Svc/Try{i}",
        confirm=f"127.0.0.1:1/bench.Svc/Confirm{i}",
        cancel=f"127.0.0.1:1/bench.Svc/Cancel{i}",
    )


def saga_spec(i: int) -> BranchSpec:
    """Step ``i`` of a bench saga."""
    return BranchSpec(f"s{i}", action=f"127.0.0.1:1/bench.Svc/Do{i}", cancel=f"127.0.0.1:1/bench.Svc/Undo{i}")


async def one_tcc(engine: TxEngine, gid: str) -> None:
    """Prepare, register every branch, submit, wait until final (as the initiator SDK does)."""
    await engine.prepare(PrepareCommand(gid=gid, mode=int(Mode.TCC)))
    for i in range(BRANCHES):
        await engine.register_branch(gid, tcc_spec(i))
    await engine.submit(SubmitCommand(gid=gid, mode=int(Mode.TCC)), wait_seconds=10)


async def one_tcc_declared(engine: TxEngine, gid: str) -> None:
    """Prepare with every branch declared (``branches``), submit, wait until final."""
    branches = tuple(tcc_spec(i) for i in range(BRANCHES))
    await engine.prepare(PrepareCommand(gid=gid, mode=int(Mode.TCC), branches=branches))
    await engine.submit(SubmitCommand(gid=gid, mode=int(Mode.TCC)), wait_seconds=10)


async def one_saga(engine: TxEngine, gid: str) -> None:
    """Submit a saga and wait until final."""
    steps = tuple(saga_spec(i) for i in range(BRANCHES))
    await engine.submit(SubmitCommand(gid=gid, mode=int(Mode.SAGA), branches=steps), wait_seconds=10)


async def measure(
    engine: TxEngine, trace: SqlTrace, run: Callable[[TxEngine, str], Awaitable[None]], label: str, count: int
) -> dict[str, float]:
    """Run ``count`` transactions one after the other; CPU ms, statements and commits per transaction."""
    await run(engine, f"warm-{label}")
    await engine.idle()
    trace.counts.clear()
    cpu = time.process_time()
    wall = time.perf_counter()
    for n in range(count):
        await run(engine, f"{label}-{n}")
    await engine.idle()
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    return {
        "cpu_ms": 1000 * cpu / count,
        "tx_per_s": count / wall,
        "statements": trace.counts["statements"] / count,
        "commits": trace.counts["commits"] / count,
    }


async def main(count: int, profile: bool) -> None:
    """Measure TCC and saga; print one line each (and the profile)."""
    trace = SqlTrace()
    with tempfile.TemporaryDirectory() as tmp, trace.installed():
        db = create_engine(DbSettings(url=f"sqlite+aiosqlite:///{Path(tmp) / 'coord.db'}"))
        await migrate(db)
        store = SqlTxStore(db)
        settings = EngineSettings(replica_id="bench", jitter=0.0)
        engine = TxEngine(store, OkInvoker(), SystemClock(), settings, EngineMetrics(CollectorRegistry()))
        profiler = cProfile.Profile() if profile else None
        try:
            if profiler is not None:
                profiler.enable()
            for label, run in (("tcc", one_tcc), ("tcc-declared", one_tcc_declared), ("saga", one_saga)):
                result = await measure(engine, trace, run, label, count)
                print(
                    f"{label}: {result['cpu_ms']:.2f} ms CPU/tx, {result['tx_per_s']:.0f} tx/s one at a time,"
                    f" {result['statements']:.1f} statements in {result['commits']:.1f} commits per tx"
                )
            if profiler is not None:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        finally:
            await engine.close()
            await store.close()
            await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.count, args.profile))
