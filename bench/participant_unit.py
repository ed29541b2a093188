"""``python -m bench.participant_unit``: one participant unit of work, three ways, side by side in one run.

The unit is what a branch op of :mod:`bench.participant` does: a barrier row (insert-ignore), one account
update and one journal insert, committed. It runs on a fresh SQLite file per way:

* ``raw sqlite3 inline`` - the physical reference: stdlib ``sqlite3`` on the caller's thread, one
  ``BEGIN IMMEDIATE ... COMMIT`` per unit, no asyncio.
* ``SqlBarrier (session)`` - the AsyncSession path (SQLAlchemy async + aiosqlite), ``--tasks`` tasks.
* ``RunnerBarrier (store)`` - the store runner (one writer thread, group commit), ``--tasks`` tasks.

Printed per way: units committed per second, CPU microseconds per unit (all threads of this process),
and the latency p50/p99 for the concurrent ways. ``--profile`` prints the top functions of the runner
way by cProfile (the asyncio thread and, separately, the writer thread).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bench.common import percentile
from bench.participant import ACCOUNTS, account, account_name, journal, prepare_database
from meshkit.barrier import RunnerBarrier, SqlBarrier
from meshkit.infra.db import create_engine
from meshkit.runtime.clock import SystemClock, now_ms
from meshkit.settings.config import DbSettings, StoreSettings
from meshkit.store import Conn, StoreRunner
from meshkit.tx.context import Op, TxContext, TxMode

AMOUNT = 1
UPDATE_SQL = "UPDATE bench_account SET balance = balance + ?, frozen = frozen + ? WHERE name = ?"
JOURNAL_SQL = "INSERT INTO bench_journal (gid, op, account, amount, at) VALUES (?, ?, ?, ?, ?)"
BARRIER_SQL = (
    "INSERT INTO tx_barrier (gid, branch_id, op, reason, created_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)


@dataclass
class Measured:
    """One way's result."""

    name: str
    units: int
    seconds: float
    cpu_seconds: float
    latencies: list[float]

    def line(self) -> str:
        """The way's row of the table."""
        rate = self.units / self.seconds if self.seconds else 0.0
        cpu_us = self.cpu_seconds / self.units * 1e6 if self.units else 0.0
        lat = sorted(self.latencies)
        p50 = f"{percentile(lat, 0.5) * 1000:8.2f}" if lat else "       -"
        p99 = f"{percentile(lat, 0.99) * 1000:8.2f}" if lat else "       -"
        return f"{self.name:<28}{rate:>12,.0f}{cpu_us:>12,.0f}{p50}{p99}"


def unit_ctx(n: int) -> TxContext:
    """A try of a fresh gid (every unit inserts its own barrier row)."""
    return TxContext(gid=f"{uuid.uuid4().hex}-{n}", branch_id="01", op=Op.TRY, mode=TxMode.TCC)


def raw_inline(path: Path, seconds: float) -> Measured:
    """The physical reference: raw sqlite3 on this thread, one commit per unit."""
    db = sqlite3.connect(path, isolation_level=None, cached_statements=1024)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    n = 0
    cpu, start = time.process_time(), time.perf_counter()
    stop = start + seconds
    while time.perf_counter() < stop:
        ctx, at = unit_ctx(n), int(time.time() * 1000)
        db.execute("BEGIN IMMEDIATE")
        db.execute(BARRIER_SQL, (ctx.gid, ctx.branch_id, "try", "try", at))
        db.execute(UPDATE_SQL, (0, AMOUNT, account_name(n)))
        db.execute(JOURNAL_SQL, (ctx.gid, "try", account_name(n), AMOUNT, at))
        db.execute("COMMIT")
        n += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    db.close()
    return Measured("raw sqlite3 inline", n, elapsed, cpu, [])


async def closed_loop(
    name: str, call: Callable[[int], Awaitable[None]], tasks: int, seconds: float
) -> Measured:
    """``tasks`` tasks calling ``call`` back to back for ``seconds``."""
    latencies: list[float] = []
    counter = iter(range(10**12))
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop:
            began = time.perf_counter()
            await call(next(counter))
            latencies.append(time.perf_counter() - began)

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return Measured(name, len(latencies), time.perf_counter() - start, time.process_time() - cpu, latencies)


async def session_barrier(path: Path, tasks: int, seconds: float) -> Measured:
    """The AsyncSession barrier (SQLAlchemy async, aiosqlite)."""
    engine = create_engine(DbSettings(url=f"sqlite+aiosqlite:///{path}"))
    clock = SystemClock()
    barrier = SqlBarrier(engine, clock)

    async def call(n: int) -> None:
        ctx, name = unit_ctx(n), account_name(n)

        async def business(session: AsyncSession) -> None:
            await session.execute(
                update(account).where(account.c.name == name).values(frozen=account.c.frozen + AMOUNT)
            )
            await session.execute(
                journal.insert().values(gid=ctx.gid, op="try", account=name, amount=AMOUNT, at=now_ms(clock))
            )

        await barrier.call(ctx, business)

    try:
        return await closed_loop("SqlBarrier (session)", call, tasks, seconds)
    finally:
        await engine.dispose()


async def runner_barrier(path: Path, tasks: int, seconds: float, profile: bool) -> Measured:
    """The store runner barrier (one writer thread, group commit)."""
    runner = StoreRunner.open(f"sqlite:///{path}", StoreSettings())
    clock = SystemClock()
    barrier = RunnerBarrier(runner, clock)

    async def call(n: int) -> None:
        ctx, name = unit_ctx(n), account_name(n)
        at = now_ms(clock)

        def business(conn: Conn) -> None:
            conn.execute(UPDATE_SQL, (0, AMOUNT, name))
            conn.execute(JOURNAL_SQL, (ctx.gid, "try", name, AMOUNT, at))

        await barrier.run(ctx, business)

    profiler = cProfile.Profile() if profile else None
    writer_profile = _profile_writer(runner) if profile else None
    try:
        if profiler is not None:
            profiler.enable()
        return await closed_loop("RunnerBarrier (store)", call, tasks, seconds)
    finally:
        if profiler is not None:
            profiler.disable()
        await runner.close()
        if profiler is not None and writer_profile is not None:
            print(_top("event loop thread", profiler))
            print(_top("writer thread", writer_profile))


def _profile_writer(runner: StoreRunner) -> cProfile.Profile:
    """Profile the writer thread: one unit that enables a profiler on it (the thread runs on)."""
    profile = cProfile.Profile()
    ready = threading.Event()

    def enable(conn: Conn) -> None:
        profile.enable()
        ready.set()

    asyncio.get_running_loop().create_task(runner.run(enable))
    return profile


def _top(title: str, profile: cProfile.Profile, limit: int = 18) -> str:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(limit)
    return f"--- cProfile {title} (by own time)\n{out.getvalue()}"


async def run(seconds: float, tasks: int, profile: bool) -> list[Measured]:
    """Every way on its own fresh database, one after the other."""
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-unit-") as tmp:
        paths = [Path(tmp) / f"{way}.db" for way in ("raw", "session", "runner")]
        for path in paths:
            await prepare_database(f"sqlite+aiosqlite:///{path}")
        results.append(raw_inline(paths[0], seconds))
        results.append(await session_barrier(paths[1], tasks, seconds))
        results.append(await runner_barrier(paths[2], tasks, seconds, profile))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: print the table."""
    parser = argparse.ArgumentParser(prog="bench.participant_unit")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each way")
    parser.add_argument("--tasks", type=int, default=16, help="concurrent tasks of the asyncio ways")
    parser.add_argument("--profile", action="store_true", help="cProfile the runner way")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.seconds, args.tasks, args.profile))
    print(f"participant unit (barrier insert + update + insert, one commit), SQLite, {ACCOUNTS} accounts")
    print(f"{'way':<28}{'units/s':>12}{'CPU us/unit':>12}{'p50 ms':>8}{'p99 ms':>8}")
    for measured in results:
        print(measured.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
