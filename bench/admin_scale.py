"""Admin and housekeeping queries with a million stored transactions, and what they cost the engine.

``python -m bench admin_scale [--transactions N] [--seconds S] [--concurrency C] [--samples K]``

Not part of the default ``python -m bench`` run (it takes several minutes, most of it the fill).

1. Creates the coordinator's SQLite database (its migrations) and fills it with ``N`` (default
   1,000,000) finished transactions - 80% TCC, 15% SAGA, 5% MSG; 90% SUCCEEDED, 10% FAILED; finished
   over the last five days - with ``--ops`` op rows and ``--events`` event rows each, by multi-row
   inserts in big transactions on raw ``sqlite3``.
2. Starts the :mod:`bench.tcc_overhead` mesh on it (three participants, a coordinator, NATS off) and
   times each admin call ``K`` times with nothing else running: Stats, List (no filter, mode=SAGA,
   mode=MSG + status=FAILED), Stuck (flagged; retried 3 times).
3. Runs TCC transactions (3 branches, ``wait_result``) from ``C`` workers, alternately alone and while
   Stats, List(mode=SAGA) and Stuck are called once a second, two rounds of ``S`` seconds each.
4. Stops the mesh and times retention rounds (one batch) with nothing due.

Prints the figures and the ratios with/without admin calls. Targets: every admin call <= 50 ms, TCC
throughput and p99 with the admin calls >= 0.9 of without, an empty retention round <= 5 ms.
``--backend mariadb`` puts the coordinator's store on an embedded ``mariadbd`` (small buffers), filled by
multi-row INSERTs; that fill is slower, so pass a smaller ``--transactions`` there if it takes too long.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.duration_pb2 import Duration

from bench.common import LoadResult, closed_loop, print_table
from bench.tcc_overhead import BENCH_AUTH, Mesh, running_mesh, tcc_coordinated
from coordinator.store.retention import FinishedTxCleaner
from coordinator.store.sql import SqlTxStore, migrate
from meshctl.stack.embedded import MariaDbServer
from meshkit.infra.db import create_engine
from meshkit.rpc.auth import mesh_channel
from meshkit.runtime.clock import SystemClock
from meshkit.settings.config import DbSettings
from meshkit.tx.initiator import CoordinatorClient
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from meshpb.coordinator.v1 import coordinator_pb2_grpc

ADMIN_TOKEN = uuid.uuid4().hex
CHUNK = 20_000  # rows per executemany
COMMIT_EVERY = 200_000  # transactions per SQLite commit of the fill
DAY_MS = 86_400_000
WARMUP_SECONDS = 2.0
TARGET_ADMIN_MS = 50.0
TARGET_RATIO = 0.9
TARGET_RETENTION_MS = 5.0

GLOBAL_COLUMNS = (
    "gid, mode, status, reason, options, query_prepared, created_at, updated_at, timeout_at, finished_at,"
    " next_run_at, owner, lease_until, version, retry_paused, stuck, admin_request, request_seq"
)
OP_COLUMNS = (
    "gid, branch_id, op, target, payload, position, depends_on, status, attempts, last_error,"
    " next_attempt_at, updated_at"
)
EVENT_COLUMNS = "gid, at, kind, from_status, to_status, branch_id, op, actor, detail"


# ---------------------------------------------------------------------------------------------- fill


def fill(url: str, transactions: int, ops: int, events: int) -> float:
    """Create the coordinator's tables at ``url`` and insert the finished transactions; seconds taken."""
    started = time.monotonic()
    engine = create_engine(DbSettings(url=url))

    async def create() -> None:
        await migrate(engine)
        await engine.dispose()

    asyncio.run(create())
    first = int(time.time() * 1000) - 5 * DAY_MS
    step = max(1, 5 * DAY_MS // max(1, transactions))
    if url.startswith("sqlite"):
        _fill_sqlite(Path(url.split("///", 1)[1]), transactions, first, step, ops=ops, events=events)
    else:
        asyncio.run(_fill_mysql(url, transactions, first, step, ops=ops, events=events))
    return time.monotonic() - started


def _fill_sqlite(path: Path, total: int, first: int, step: int, *, ops: int, events: int) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        for start in range(0, total, COMMIT_EVERY):
            conn.execute("BEGIN")
            for lo in range(start, min(start + COMMIT_EVERY, total), CHUNK):
                chunk = _rows(range(lo, min(lo + CHUNK, total)), first, step, ops=ops, events=events)
                for sql, rows in zip(_inserts("?"), chunk, strict=True):
                    if rows:
                        conn.executemany(sql, rows)
            conn.execute("COMMIT")
            print(f"  filled {min(start + COMMIT_EVERY, total):>9}", flush=True)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


async def _fill_mysql(url: str, total: int, first: int, step: int, *, ops: int, events: int) -> None:
    engine = create_engine(DbSettings(url=url))
    try:
        for lo in range(0, total, CHUNK):
            chunk = _rows(range(lo, min(lo + CHUNK, total)), first, step, ops=ops, events=events)
            async with engine.begin() as conn:  # the driver's executemany sends multi-row INSERTs
                for sql, rows in zip(_inserts("%s"), chunk, strict=True):
                    if rows:
                        await conn.exec_driver_sql(sql, rows)
            if (lo + CHUNK) % COMMIT_EVERY == 0 or lo + CHUNK >= total:
                print(f"  filled {min(lo + CHUNK, total):>9}", flush=True)
    finally:
        await engine.dispose()


def _inserts(mark: str) -> list[str]:
    """The INSERTs of trans_global, trans_branch_op and trans_event with ``mark`` placeholders."""
    tables = (
        ("trans_global", GLOBAL_COLUMNS),
        ("trans_branch_op", OP_COLUMNS),
        ("trans_event", EVENT_COLUMNS),
    )
    return [
        f"INSERT INTO {table} ({columns}) VALUES ({', '.join([mark] * len(columns.split(',')))})"
        for table, columns in tables
    ]


Rows = list[tuple[Any, ...]]


def _rows(rows: range, first: int, step: int, *, ops: int, events: int) -> tuple[Rows, Rows, Rows]:
    """The trans_global, trans_branch_op and trans_event rows of transactions ``rows``."""
    globals_: Rows = []
    op_rows: Rows = []
    event_rows: Rows = []
    for i in rows:
        gid = f"fill{i:010d}"
        mode = 3 if i % 20 == 0 else 2 if i % 20 < 4 else 1  # 80% TCC, 15% SAGA, 5% MSG
        status = 5 if i % 10 == 9 else 3
        created = first + i * step
        done = created + 40
        globals_.append(
            (gid, mode, status, "", "{}", "", created, done, None, done, None, None, None, 3, 0, 0, None, 0)
        )
        op_rows += [
            (
                gid,
                f"{b + 1:02d}",
                "action",
                "127.0.0.1:1/x.Y/Z",
                b"x",
                b + 1,
                None,
                "succeeded",
                1,
                "",
                None,
                done,
            )
            for b in range(ops)
        ]
        event_rows += [
            (gid, created + e, "state", e + 1 if e else None, e + 2, "", "", "bench", "")
            for e in range(events)
        ]
    return globals_, op_rows, event_rows


# ---------------------------------------------------------------------------------------------- admin


AdminCall = Callable[[Any], Awaitable[object]]


def admin_calls() -> dict[str, AdminCall]:
    """The admin calls measured, by name (each takes an Admin stub)."""
    md = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
    minute = Duration(seconds=60)
    return {
        "Stats": lambda s: s.Stats(pb.StatsRequest(), metadata=md),
        "List": lambda s: s.List(pb.ListRequest(), metadata=md),
        "List(mode=SAGA)": lambda s: s.List(pb.ListRequest(mode=pb.MODE_SAGA), metadata=md),
        "List(MSG, FAILED)": lambda s: s.List(
            pb.ListRequest(mode=pb.MODE_MSG, status=pb.STATUS_FAILED), metadata=md
        ),
        "Stuck": lambda s: s.Stuck(pb.StuckRequest(older_than=minute), metadata=md),
        "Stuck(attempts>=3)": lambda s: s.Stuck(
            pb.StuckRequest(older_than=minute, min_attempts=3), metadata=md
        ),
    }


DASHBOARD = ("Stats", "List(mode=SAGA)", "Stuck")  # called once a second during the load


async def admin_medians(stub: Any, samples: int) -> dict[str, float]:
    """Median latency (ms) of each admin call, called ``samples`` times one after the other."""
    medians = {}
    for name, call in admin_calls().items():
        took = []
        for _ in range(samples):
            started = time.monotonic()
            await call(stub)
            took.append((time.monotonic() - started) * 1000)
        medians[name] = statistics.median(took)
    return medians


async def dashboard(stub: Any, stop: asyncio.Event, took: list[float]) -> None:
    """Stats, List(mode=SAGA) and Stuck once a second until ``stop``; their latencies go to ``took``."""
    calls = admin_calls()
    while not stop.is_set():
        tick = time.monotonic()
        for name in DASHBOARD:
            started = time.monotonic()
            await calls[name](stub)
            took.append((time.monotonic() - started) * 1000)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, 1.0 - (time.monotonic() - tick)))


# ---------------------------------------------------------------------------------------------- load


async def load_phases(
    mesh: Mesh, seconds: float, concurrency: int, samples: int
) -> tuple[dict[str, float], LoadResult, LoadResult, list[float]]:
    """Admin medians at rest, then TCC alone / with the dashboard, alternately (two rounds each)."""
    client = CoordinatorClient(mesh.coordinator, auth=BENCH_AUTH)
    channel = mesh_channel(mesh.coordinator, BENCH_AUTH)
    stub = coordinator_pb2_grpc.AdminStub(channel)
    try:
        await admin_medians(stub, 1)  # warm-up: connections, SQLite pages
        medians = await admin_medians(stub, samples)
        work = tcc_coordinated(mesh, client)
        await closed_loop(work, concurrency=concurrency, seconds=WARMUP_SECONDS, label="warm-up")
        alone, loaded = LoadResult(concurrency), LoadResult(concurrency)
        took: list[float] = []
        for _ in range(2):
            _merge(alone, await closed_loop(work, concurrency=concurrency, seconds=seconds, label="TCC"))
            stop = asyncio.Event()
            ticker = asyncio.create_task(dashboard(stub, stop, took))
            result = await closed_loop(work, concurrency=concurrency, seconds=seconds, label="TCC+admin")
            stop.set()
            await ticker
            _merge(loaded, result)
        return medians, alone, loaded, took
    finally:
        await channel.close()
        await client.close()


def _merge(into: LoadResult, result: LoadResult) -> None:
    into.seconds += result.seconds
    into.latencies += result.latencies
    into.errors += result.errors


# ---------------------------------------------------------------------------------------------- retention


async def empty_retention_rounds(url: str, rounds: int) -> float:
    """Median milliseconds of a retention batch that finds nothing due (7 days kept, all younger)."""
    engine = create_engine(DbSettings(url=url))
    store = SqlTxStore(engine)
    cleaner = FinishedTxCleaner(store, SystemClock(), retention_days=7, batch=500)
    took: list[float] = []
    try:
        for _ in range(rounds + 1):
            started = time.monotonic()
            deleted = await cleaner.delete_batch()
            took.append((time.monotonic() - started) * 1000)
            if deleted:
                raise RuntimeError(f"retention deleted {deleted} transactions; expected none due")
    finally:
        await store.close()
        await engine.dispose()
    return statistics.median(took[1:])


# ---------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Figures:
    """Everything one run measured."""

    fill_seconds: float
    medians: dict[str, float]
    alone: LoadResult
    loaded: LoadResult
    took: list[float]  # admin call latencies (ms) during the load
    retention_ms: float


def report(args: argparse.Namespace, figures: Figures) -> None:
    """Print the figures, the ratios and whether each target is met."""
    fill_seconds, medians, took = figures.fill_seconds, figures.medians, figures.took
    alone, loaded, retention_ms = figures.alone, figures.loaded, figures.retention_ms
    print(
        f"\nadmin_scale: {args.transactions} finished transactions ({args.ops} ops, {args.events} events"
        f" each) filled in {fill_seconds:.1f}s; {args.backend} coordinator"
    )
    print_table(
        f"admin call latency at rest (median of {args.samples}, target <= {TARGET_ADMIN_MS:.0f} ms)",
        ["call", "median ms", "target"],
        [[name, ms, _ok(ms <= TARGET_ADMIN_MS)] for name, ms in medians.items()],
    )
    rows = [
        ["TCC alone", alone.count, alone.rate, alone.p(0.5), alone.p(0.99), alone.errors],
        ["TCC + admin every 1s", loaded.count, loaded.rate, loaded.p(0.5), loaded.p(0.99), loaded.errors],
    ]
    print_table(
        f"TCC through the coordinator ({args.concurrency} workers, 2 x {args.seconds:.0f}s per phase)",
        ["phase", "tx", "tx/s", "p50 ms", "p99 ms", "errors"],
        rows,
    )
    rate_ratio = loaded.rate / alone.rate if alone.rate else 0.0
    # For latency "0.9 of" means no worse than 1/0.9 of: the ratio alone/loaded, higher is better.
    p99_ratio = alone.p(0.99) / loaded.p(0.99) if loaded.p(0.99) else 0.0
    target = f"(target >= {TARGET_RATIO})"
    print(
        f"\nthroughput with/without admin calls: {rate_ratio:.2f} {target} {_ok(rate_ratio >= TARGET_RATIO)}"
    )
    print(f"p99 without/with admin calls:        {p99_ratio:.2f} {target} {_ok(p99_ratio >= TARGET_RATIO)}")
    if took:
        ordered = sorted(took)
        print(
            f"admin calls during the load: {len(took)}, median {statistics.median(ordered):.1f} ms,"
            f" max {ordered[-1]:.1f} ms"
        )
    print(
        f"retention round with nothing due: median {retention_ms:.2f} ms"
        f" (target <= {TARGET_RETENTION_MS:.0f} ms) {_ok(retention_ms <= TARGET_RETENTION_MS)}"
    )


def _ok(met: bool) -> str:
    return "ok" if met else "MISSED"


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A temporary directory for the databases and logs."""
    with tempfile.TemporaryDirectory(prefix="bench-admin-") as tmp:
        yield Path(tmp)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m bench admin_scale``."""
    parser = argparse.ArgumentParser(prog="bench admin_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=1_000_000, help="finished transactions stored")
    parser.add_argument("--ops", type=int, default=1, help="op rows per stored transaction")
    parser.add_argument("--events", type=int, default=2, help="event rows per stored transaction")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per load phase and round")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent TCC initiators")
    parser.add_argument("--samples", type=int, default=10, help="calls per admin call measured at rest")
    parser.add_argument(
        "--backend", choices=("sqlite", "mariadb"), default="sqlite", help="coordinator store"
    )
    args = parser.parse_args(argv)
    if args.transactions < 1 or args.ops < 0 or args.events < 0 or args.samples < 1:
        parser.error("--transactions and --samples must be >= 1, --ops and --events >= 0")
    if args.seconds <= 0 or args.concurrency < 1:
        parser.error("--seconds must be > 0 and --concurrency >= 1")
    if args.backend == "mariadb" and not MariaDbServer.available():
        print("mariadb: not installed (mariadbd / mariadb-install-db)", file=sys.stderr)
        return 2
    with workdir() as tmp, coordinator_database(tmp, args.backend) as url:
        print(f"filling {url} with {args.transactions} finished transactions", flush=True)
        fill_seconds = fill(url, args.transactions, args.ops, args.events)
        env = {"MESH_ADMIN__TOKEN": ADMIN_TOKEN, "MESH_DB__URL": url}
        with running_mesh(tmp, None, coordinator_env=env) as mesh:
            medians, alone, loaded, took = asyncio.run(
                load_phases(mesh, args.seconds, args.concurrency, args.samples)
            )
        retention_ms = asyncio.run(empty_retention_rounds(url, 20))
    report(args, Figures(fill_seconds, medians, alone, loaded, took, retention_ms))
    return 0


@contextlib.contextmanager
def coordinator_database(tmp: Path, backend: str) -> Iterator[str]:
    """The coordinator's database URL: a SQLite file in ``tmp``, or a database on an embedded mariadbd."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / 'coordinator.db'}"
        return
    server = MariaDbServer(tmp / "mariadb")
    server.start()
    try:
        server.create_database("bench_admin")
        yield server.url_for("bench_admin")
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
