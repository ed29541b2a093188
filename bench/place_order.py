"""PlaceOrder throughput and latency on a whole local stack, with SQLite and (when installed) MariaDB.

``python -m bench place_order [--seconds S] [--concurrency 1,8,32] [--backend sqlite,mariadb]``

Each backend gets a fresh stack (the ``meshctl up`` launcher: Redis, NATS, coordinator and the four
services) in a temporary directory on a free base port. With MariaDB every process gets its own database
on one embedded ``mariadbd`` (``MESH_DB__URL`` overridden per service). Every PlaceOrder buys three SKUs
of two merchants (so two orders) and uses 100 points: one TCC over stock (Redis Lua), points and order,
confirmed before the call returns. Workers call back to back (closed loop) at each concurrency level;
the table shows successful orders per second and p50/p99 latency. ``meshctl audit`` runs at the end of
each backend (a benchmark that broke an invariant says so and exits 1). No thresholds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from bench.common import (
    BenchStack,
    Call,
    LoadResult,
    backend_choice,
    closed_loop,
    concurrency_levels,
    local_stack,
    print_table,
)
from meshctl.audit.checks import all_ok
from meshctl.audit.clients import MeshClients
from meshctl.audit.gather import ServiceUnreachable, audit_until_settled
from meshctl.audit.render import summary_line
from meshctl.stack import layout
from meshctl.stack.embedded import MariaDbServer
from meshkit.runtime.clock import SystemClock
from meshpb.order.v1 import order_pb2 as opb
from meshpb.points.v1 import points_pb2 as ppb
from meshpb.stock.v1 import stock_pb2 as spb

SKUS = (
    ("bench-sencha", "m-bench-tea", 1200),
    ("bench-oolong", "m-bench-tea", 1800),
    ("bench-book", "m-bench-books", 2500),
)
STOCK_PUTS = 5  # x 10 000 units per SKU: more than any run sells
STOCK_PER_PUT = 10_000
USERS = 64
GRANT_POINTS = 10_000_000
POINTS_PER_ORDER = 100
RPC_SECONDS = 30.0
WARMUP_SECONDS = 2.0
AUDIT_WAIT_SECONDS = 60.0
BACKENDS = ("sqlite", "mariadb")


async def seed(clients: MeshClients, users: Sequence[str], run_id: str) -> None:
    """Stock for every SKU and points for every user."""
    for sku, merchant, price in SKUS:
        for put in range(STOCK_PUTS):
            await clients.stock.PutSku(
                spb.PutSkuRequest(
                    sku=sku,
                    merchant_id=merchant,
                    price_cents=price,
                    quantity=STOCK_PER_PUT,
                    request_id=f"bench-{run_id}-{sku}-{put}",
                ),
                timeout=RPC_SECONDS,
            )
    await asyncio.gather(
        *(
            clients.points.Grant(
                ppb.GrantRequest(user_id=u, amount=GRANT_POINTS, out_trade_no=f"bench-{run_id}-{u}"),
                timeout=RPC_SECONDS,
            )
            for u in users
        )
    )


def place_order(clients: MeshClients, users: Sequence[str], run_id: str, phase: str) -> Call:
    """One PlaceOrder: 3 SKUs of 2 merchants, 100 points; fails unless it answers two order ids."""
    items = [
        opb.OrderItem(sku=sku, merchant_id=merchant, quantity=1, unit_price_cents=price)
        for sku, merchant, price in SKUS
    ]

    async def one(n: int) -> None:
        reply = await clients.order.PlaceOrder(
            opb.PlaceOrderRequest(
                request_id=f"bench-{run_id}-{phase}-{n}",
                user_id=users[n % len(users)],
                items=items,
                points_to_use=POINTS_PER_ORDER,
            ),
            timeout=RPC_SECONDS,
        )
        if len(reply.order_ids) != 2:
            raise RuntimeError(f"expected 2 orders, got {list(reply.order_ids)}")

    return one


def mariadb_overrides(server: MariaDbServer, run_id: str) -> dict[str, dict[str, str]]:
    """A database per process on ``server``; the environment that points each process at its own."""
    overrides = {}
    for spec in layout.SERVICES:
        name = f"bench_{run_id}_{spec.name}"
        server.create_database(name)
        overrides[spec.name] = {"MESH_DB__URL": server.url_for(name)}
    return overrides


@asynccontextmanager
async def backend_databases(
    backend: str, workdir: Path, run_id: str
) -> AsyncIterator[tuple[dict[str, dict[str, str]], MariaDbServer | None]]:
    """The stack's environment overrides for ``backend`` and the MariaDB server it started (stopped on exit).

    SQLite needs neither (``{}``, ``None``); MariaDB runs under ``workdir/mariadb``, a database per process.
    """
    if backend != "mariadb":
        yield {}, None
        return
    server = MariaDbServer(workdir / "mariadb")
    await asyncio.to_thread(server.start)
    try:
        yield mariadb_overrides(server, run_id), server
    finally:
        await asyncio.to_thread(server.stop)


async def bench_backend(
    backend: str, workdir: Path, levels: Sequence[int], seconds: float
) -> tuple[list[LoadResult], bool]:
    """Every concurrency level on a fresh stack; returns the results and whether the audit held."""
    run_id = secrets.token_hex(3)
    async with (
        backend_databases(backend, workdir, run_id) as (overrides, _server),
        local_stack(workdir / "mesh", env_overrides=overrides) as stack,
    ):
        return await _measure(stack, backend, levels, seconds, run_id)


async def _measure(
    stack: BenchStack, backend: str, levels: Sequence[int], seconds: float, run_id: str
) -> tuple[list[LoadResult], bool]:
    async with MeshClients(stack.addresses, stack.admin_token) as clients:
        users = [f"bench-user-{i}" for i in range(USERS)]
        await seed(clients, users, run_id)
        await closed_loop(
            place_order(clients, users, run_id, "warmup"),
            concurrency=levels[0],
            seconds=WARMUP_SECONDS,
            label=f"{backend} warm-up",
        )
        results = []
        for level in levels:
            call = place_order(clients, users, run_id, f"c{level}")
            results.append(
                await closed_loop(call, concurrency=level, seconds=seconds, label=f"{backend} c={level}")
            )
        return results, await _audit(clients, backend)


async def _audit(clients: MeshClients, backend: str) -> bool:
    try:
        outcome = await audit_until_settled(clients, SystemClock(), wait_seconds=AUDIT_WAIT_SECONDS)
    except ServiceUnreachable as exc:
        print(f"{backend}: audit impossible: {exc}", file=sys.stderr)
        return False
    print(f"{backend}: {summary_line(outcome).plain}")
    for result in outcome.results:
        for violation in result.violations[:5]:
            print(f"  {result.key}: {violation}")
    return all_ok(outcome.results)


def report(rows: list[tuple[str, LoadResult]], seconds: float) -> None:
    """The results table."""
    print_table(
        f"PlaceOrder: 2 merchants, 3 SKUs, {POINTS_PER_ORDER} points; {seconds:g} s per level "
        f"(closed loop, {os.cpu_count()} CPUs, whole stack on this machine)",
        ("backend", "concurrency", "orders", "errors", "orders/s", "p50 ms", "p99 ms"),
        [(backend, r.concurrency, r.count, r.errors, r.rate, r.p(0.50), r.p(0.99)) for backend, r in rows],
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench place_order", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per concurrency level")
    parser.add_argument(
        "--concurrency", type=concurrency_levels, default=[1, 8, 32], help="levels, e.g. 1,8,32"
    )
    parser.add_argument(
        "--backend",
        type=backend_choice(BACKENDS),
        default=list(BACKENDS),
        help="sqlite,mariadb (mariadb only when installed)",
    )
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    """Every chosen backend, then the table; 1 when an audit failed."""
    rows: list[tuple[str, LoadResult]] = []
    audits_ok = True
    for backend in args.backend:
        if backend == "mariadb" and not MariaDbServer.available():
            print("mariadb: skipped (mariadbd / mariadb-install-db not installed)", file=sys.stderr)
            continue
        print(f"{backend}: starting a local stack ...", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix=f"bench-place-order-{backend}-") as tmp:
            results, audit_ok = await bench_backend(backend, Path(tmp), args.concurrency, args.seconds)
        rows.extend((backend, r) for r in results)
        audits_ok = audits_ok and audit_ok
    report(rows, args.seconds)
    return 0 if audits_ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (``python -m bench place_order``)."""
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
