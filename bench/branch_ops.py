"""stock_svc and points_svc branch ops in-process: TCC Try+Confirm pairs per second, CPU per pair.

``python -m bench branch_ops [--seconds S] [--tasks N] [--backend sqlite,mariadb] [--profile]``

Each service runs its real runtime (SQLite in a temporary directory, or a database of its own on an
embedded ``mariadbd`` when installed; stock also on an embedded Redis) and the bench calls its domain
(what the servicer calls, without gRPC) back to back from ``--tasks`` tasks: points
``TryFreeze``+``ConfirmFreeze`` of 1 point, stock ``TryReserve``+``ConfirmReserve`` of one unit. One
pair = one new gid. CPU is the whole process's (event loop and store threads). No thresholds.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bench.common import closed_loop, print_table
from meshctl.stack.embedded import MariaDbServer, RedisServer
from meshkit.settings.config import DbSettings, RedisSettings
from meshkit.tx.context import Op, TxContext, TxMode
from points_svc.config import PointsSettings
from points_svc.ledger.values import EntryType
from points_svc.runtime import PointsRuntime
from stock_svc.config import StockSection, StockSettings
from stock_svc.runtime import StockRuntime

Pair = Callable[[int], Awaitable[None]]
USERS = 64
SKUS = 16
GRANT = 10**9
BACKENDS = ("sqlite", "mariadb")
Stop = Callable[[], Awaitable[None]]


def _ctx(gid: str, op: Op) -> TxContext:
    return TxContext(gid, "01", op, TxMode.TCC)


async def points_pair(db_url: str) -> tuple[Pair, Stop]:
    """Try+Confirm of a freeze on a started points runtime; and its stop."""
    settings = PointsSettings(db=DbSettings(url=db_url))
    runtime = await PointsRuntime.start(settings)
    for user in range(USERS):
        await runtime.points.grant(f"u{user}", GRANT, f"grant-{user}")
    run = uuid.uuid4().hex[:8]

    async def pair(n: int) -> None:
        gid, user, key = f"b-{run}-{n}", f"u{n % USERS}", f"o-{run}-{n}"
        await runtime.points.try_hold(EntryType.FREEZE, _ctx(gid, Op.TRY), user, 1, key)
        await runtime.points.confirm_hold(EntryType.FREEZE, _ctx(gid, Op.CONFIRM), user, 1, key)

    return pair, runtime.stop


async def stock_pair(db_url: str, redis_url: str) -> tuple[Pair, Stop]:
    """Try+Confirm of one unit on a started stock runtime; and its stop."""
    settings = StockSettings(
        db=DbSettings(url=db_url),
        redis=RedisSettings(url=redis_url, persistence_check="off"),
        stock=StockSection(redis_namespace=f"b{uuid.uuid4().hex[:8]}"),
    )
    runtime = await StockRuntime.start(settings)
    for sku in range(SKUS):
        await runtime.domain.put_sku(f"sku{sku}", "m1", 100, 10_000, f"put-{sku}")
    run = uuid.uuid4().hex[:8]

    async def pair(n: int) -> None:
        gid, items = f"b-{run}-{n}", [(f"sku{n % SKUS}", 1)]
        await runtime.domain.try_reserve(_ctx(gid, Op.TRY), items, [gid])
        await runtime.domain.confirm_reserve(_ctx(gid, Op.CONFIRM), items, [gid])

    return pair, runtime.stop


async def measure(name: str, pair: Pair, tasks: int, seconds: float) -> list[object]:
    """One closed loop: the table row (pairs/s, p50/p99 ms, CPU ms per pair of this process)."""
    cpu = time.process_time()
    result = await closed_loop(pair, concurrency=tasks, seconds=seconds, label=name)
    cpu = time.process_time() - cpu
    done = len(result.latencies)
    lat = sorted(result.latencies)
    p50 = lat[len(lat) // 2] * 1000 if lat else 0.0
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0.0
    per = cpu / done * 1000 if done else 0.0
    return [
        name,
        done,
        f"{done / result.seconds:.0f}",
        f"{p50:.1f}",
        f"{p99:.1f}",
        f"{per:.2f}",
        result.errors,
    ]


async def bench_backend(
    backend: str, workdir: Path, redis_url: str, args: argparse.Namespace
) -> list[list[object]]:
    """Both services' loops on one backend; their table rows."""
    mariadb: MariaDbServer | None = None
    if backend == "mariadb":
        mariadb = MariaDbServer(workdir / "mariadb")
        await asyncio.to_thread(mariadb.start)
    urls: dict[str, str] = {}
    for name in ("points", "stock"):
        if mariadb is None:
            urls[name] = f"sqlite+aiosqlite:///{workdir / f'{name}.db'}"
        else:
            mariadb.create_database(f"bench_{name}")
            urls[name] = mariadb.url_for(f"bench_{name}")
    makers: list[tuple[str, Callable[[], Awaitable[tuple[Pair, Stop]]]]] = [
        ("points freeze try+confirm", lambda: points_pair(urls["points"])),
        ("stock reserve try+confirm", lambda: stock_pair(urls["stock"], redis_url)),
    ]
    rows: list[list[object]] = []
    try:
        for name, make in makers:
            pair, stop = await make()
            try:
                rows.append(await measure_one(f"{name} ({backend})", pair, args))
            finally:
                await stop()
    finally:
        if mariadb is not None:
            await asyncio.to_thread(mariadb.stop)
    return rows


async def measure_one(name: str, pair: Pair, args: argparse.Namespace) -> list[object]:
    """Warm up, then measure one loop (under cProfile when asked, printed to stderr)."""
    await closed_loop(pair, concurrency=args.tasks, seconds=min(1.0, args.seconds), label=name)
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    row = await measure(name, pair, args.tasks, args.seconds)
    if profiler is not None:
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        print(f"--- profile: {name}\n{out.getvalue()}", file=sys.stderr)
    return row


async def main_async(args: argparse.Namespace) -> None:
    """Run the loops of every backend asked for and print the table."""
    rows: list[list[object]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-branch-") as tmp,
        RedisServer(Path(tmp) / "redis") as redis,
    ):
        for backend in args.backend.split(","):
            if backend == "mariadb" and not MariaDbServer.available():
                print("mariadb: skipped (mariadbd / mariadb-install-db not installed)", file=sys.stderr)
                continue
            workdir = Path(tmp) / backend
            workdir.mkdir()
            rows += await bench_backend(backend, workdir, redis.url, args)
    print_table(
        f"branch ops in-process, {args.tasks} tasks, {args.seconds:.0f} s each",
        ["scenario", "pairs", "pairs/s", "p50 ms", "p99 ms", "CPU ms/pair", "errors"],
        rows,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench branch_ops``."""
    parser = argparse.ArgumentParser(prog="python -m bench branch_ops", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument(
        "--backend", default=",".join(BACKENDS), help="sqlite,mariadb (mariadb when installed)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the event loop's thread")
    args = parser.parse_args(argv)
    unknown = set(args.backend.split(",")) - set(BACKENDS)
    if unknown:
        parser.error(f"--backend: unknown {', '.join(sorted(unknown))} (use {','.join(BACKENDS)})")
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
