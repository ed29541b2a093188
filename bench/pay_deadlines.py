"""Order pay deadlines at scale: how late CREATED orders are cancelled once their pay deadline passed.

Part of ``python -m bench timers`` (variant ``orders``). A whole local stack (the ``meshctl up``
launcher: Redis, NATS, coordinator and the four services, SQLite) starts with a short
``order.pay_timeout_seconds``; PlaceOrders (two orders each, never paid) are placed back to back until
``count`` orders exist, so their deadlines fall within the placing time. When every order is
``CANCELLED`` (or the wait ran out), order_svc's history tells when each was cancelled; lateness =
that time - the order's ``pay_deadline``.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import MAX_ERRORS_SHOWN, Call, local_stack, percentile
from bench.place_order import USERS, place_order, seed
from meshctl.audit.clients import MeshClients

PLACE_CONCURRENCY = 32
ORDERS_PER_PLACE = 2
DRAIN_LIMIT_SECONDS = 180.0


@dataclass(frozen=True)
class OrderFigures:
    """What the pay-deadline run measured."""

    count: int
    place_seconds: float
    spread: float
    p50: float
    p99: float
    worst: float
    after_last: float
    drain_rate: float
    unfinished: int


def _outcome(db: Path, run_id: str) -> list[tuple[int, int | None]]:
    """Per order of this run: (pay deadline, cancelled at) in epoch ms."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(
            "SELECT o.pay_deadline, (SELECT MIN(h.at) FROM order_history h"
            " WHERE h.order_id = o.order_id AND h.to_status = 'CANCELLED')"
            " FROM orders o WHERE o.request_id LIKE ?",
            (f"bench-{run_id}-%",),
        ).fetchall()


async def _wait_cancelled(db: Path, run_id: str, count: int, limit_seconds: float) -> None:
    stop_at = time.monotonic() + limit_seconds
    while time.monotonic() < stop_at:
        rows = await asyncio.to_thread(_outcome, db, run_id)
        if sum(1 for _, done in rows if done is not None) >= count:
            return
        await asyncio.sleep(1.0)


async def run_orders(workdir: Path, count: int, pay_timeout: float) -> OrderFigures:
    """Place ``count`` orders on a fresh stack, wait for their pay deadlines, measure the cancels."""
    run_id = secrets.token_hex(3)
    overrides = {"order_svc": {"MESH_ORDER__PAY_TIMEOUT_SECONDS": str(pay_timeout)}}
    async with (
        local_stack(workdir / "mesh", env_overrides=overrides) as stack,
        MeshClients(stack.addresses, stack.admin_token) as clients,
    ):
        users = [f"bench-user-{i}" for i in range(USERS)]
        await seed(clients, users, run_id)
        started = time.monotonic()
        await _place_all(place_order(clients, users, run_id, "due"), -(-count // ORDERS_PER_PLACE))
        place_seconds = time.monotonic() - started
        db = stack.launcher.data_dir / "order_svc.db"
        await _wait_cancelled(db, run_id, count, pay_timeout + DRAIN_LIMIT_SECONDS)
        rows = await asyncio.to_thread(_outcome, db, run_id)
    return _figures(rows, place_seconds)


async def _place_all(call: Call, places: int) -> None:
    """``call(n)`` for every n < ``places``, :data:`PLACE_CONCURRENCY` at a time (errors shown)."""
    todo = iter(range(places))
    errors = 0

    async def worker() -> None:
        nonlocal errors
        for n in todo:
            try:
                await call(n)
            except Exception as exc:  # counted and shown: a benchmark keeps going
                errors += 1
                if errors <= MAX_ERRORS_SHOWN:
                    print(f"  PlaceOrder: {type(exc).__name__}: {exc}", file=sys.stderr)

    await asyncio.gather(*(worker() for _ in range(PLACE_CONCURRENCY)))


def _figures(rows: list[tuple[int, int | None]], place_seconds: float) -> OrderFigures:
    deadlines = [deadline for deadline, _ in rows]
    late = sorted((done - deadline) / 1000 for deadline, done in rows if done is not None)
    finished = [done for _, done in rows if done is not None]
    first, last = min(deadlines), max(deadlines)
    last_done = max(finished, default=last)
    return OrderFigures(
        len(rows),
        place_seconds,
        (last - first) / 1000,
        percentile(late, 0.50),
        percentile(late, 0.99),
        late[-1] if late else 0.0,
        (last_done - last) / 1000,
        len(finished) / max(0.001, (last_done - first) / 1000),
        len(rows) - len(finished),
    )


def print_orders(r: OrderFigures, pay_timeout: float) -> None:
    """One line for the pay-deadline run."""
    print(
        f"\npay deadlines: {r.count} CREATED orders (never paid), pay timeout {pay_timeout:.0f} s, deadlines"
        f" spread over {r.spread:.1f} s (placing took {r.place_seconds:.1f} s), whole stack, SQLite, NATS up"
    )
    print(
        f"{'orders':>7}{'p50 s':>8}{'p99 s':>8}{'max s':>8}{'last+ s':>9}{'cancels/s':>11}{'unfinished':>12}"
    )
    print(
        f"{r.count:>7}{r.p50:>8.2f}{r.p99:>8.2f}{r.worst:>8.2f}{r.after_last:>9.2f}{r.drain_rate:>11.0f}"
        f"{r.unfinished:>12}"
    )
