"""stock_svc and points_svc branch ops in-process: TCC Try+Confirm pairs per second, CPU per pair.

``python -m bench branch_ops [--seconds S] [--tasks N] [--profile]``

Each service runs its real runtime (SQLite in a temporary directory; stock also on an embedded Redis)
and the bench calls its domain (the servicer's one call, without gRPC) back to back from ``--tasks``
tasks: points ``TryFreeze``+``ConfirmFreeze`` of 1 point, stock ``TryReserve``+``ConfirmReserve`` of one
unit. One pair = one new gid. No thresholds.
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
from meshctl.stack.embedded import RedisServer
from meshkit.runtime.config import DbSettings, RedisSettings
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


def _ctx(gid: str, op: Op) -> TxContext:
    return TxContext(gid, "01", op, TxMode.TCC)


async def points_pair(tmp: Path) -> tuple[Pair, Callable[[], Awaitable[None]]]:
    """Try+Confirm of a freeze on a started points runtime; and its stop."""
    settings = PointsSettings(db=DbSettings(url=f"sqlite+aiosqlite:///{tmp / 'points.db'}"))
    runtime = await PointsRuntime.start(settings)
    for user in range(USERS):
        await runtime.points.grant(f"u{user}", GRANT, f"grant-{user}")
    run = uuid.uuid4().hex[:8]

    async def pair(n: int) -> None:
        gid, user, key = f"b-{run}-{n}", f"u{n % USERS}", f"o-{run}-{n}"
        await runtime.points.try_hold(EntryType.FREEZE, _ctx(gid, Op.TRY), user, 1, key)
        await runtime.points.confirm_hold(EntryType.FREEZE, _ctx(gid, Op.CONFIRM), user, 1, key)

    return pair, runtime.stop


async def stock_pair(tmp: Path, redis_url: str) -> tuple[Pair, Callable[[], Awaitable[None]]]:
    """Try+Confirm of one unit on a started stock runtime; and its stop."""
    settings = StockSettings(
        db=DbSettings(url=f"sqlite+aiosqlite:///{tmp / 'stock.db'}"),
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


async def main_async(seconds: float, tasks: int, profile: bool) -> None:
    """Run both services' loops and print the table (and a profile of each loop when asked)."""
    rows: list[list[object]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-branch-") as tmp,
        RedisServer(Path(tmp) / "redis") as redis,
    ):
        makers: list[tuple[str, Callable[[], Awaitable[tuple[Pair, Callable[[], Awaitable[None]]]]]]] = [
            ("points freeze try+confirm", lambda: points_pair(Path(tmp))),
            ("stock reserve try+confirm", lambda: stock_pair(Path(tmp), redis.url)),
        ]
        for name, make in makers:
            pair, stop = await make()
            try:
                await closed_loop(pair, concurrency=tasks, seconds=min(1.0, seconds), label=name)  # warm up
                profiler = cProfile.Profile() if profile else None
                if profiler is not None:
                    profiler.enable()
                rows.append(await measure(name, pair, tasks, seconds))
                if profiler is not None:
                    profiler.disable()
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
                    print(out.getvalue(), file=sys.stderr)
            finally:
                await stop()
    print_table(
        f"branch ops in-process, SQLite, {tasks} tasks, {seconds:.0f} s",
        ["scenario", "pairs", "pairs/s", "p50 ms", "p99 ms", "CPU ms/pair", "errors"],
        rows,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench branch_ops``."""
    parser = argparse.ArgumentParser(prog="python -m bench branch_ops", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--profile", action="store_true", help="cProfile the event loop's thread")
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.seconds, args.tasks, args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
