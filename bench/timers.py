"""Timers at scale: how late 10,000 transaction timeouts fire, with NATS up and with NATS stopped.

``python -m bench timers [--count N] [--window S] [--lead S] [--variants up,down,restart,orders]``

Per variant, a fresh coordinator process (SQLite store, ``/metrics`` on) and three participant
processes (:mod:`bench.participant`) start, plus an embedded ``nats-server`` for the coordinator's
JetStream timers. ``--count`` PREPARED TCC transactions (one registered branch each, on the
participants round robin) are filled through ``Prepare`` with timeouts whose deadlines are spread
evenly over ``--window`` seconds, starting ``--lead`` seconds after the fill began. Variant ``down``
stops ``nats-server`` once the fill is done, before the first deadline (the schedules are lost; local
wake-ups and the store sweeper must do the work). Variant ``restart`` restarts the coordinator process
instead (its local wake-ups are lost; the JetStream schedules and the sweeper must do the work).

When every transaction is final, the coordinator's store tells per transaction when it entered
``ABORTING`` (its history) and when it finished; lateness = entering ``ABORTING`` - the deadline.
Printed: p50 / p99 / max lateness, how long after the last deadline the last one finished, the drain
rate (aborts per second from the first deadline to the last finish), the coordinator's CPU ms per
abort, and what picked the work up (``mesh_timer_lateness_seconds_count`` by source).

Variant ``orders`` measures order_svc's pay deadlines the same way (:mod:`bench.pay_deadlines`):
``--count`` CREATED orders on a whole local stack, deadlines within the time it takes to place them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio

from bench.common import percentile
from bench.participant import account_name
from bench.pay_deadlines import print_orders, run_orders
from bench.tcc_overhead import BENCH_AUTH, Mesh, cpu_seconds, running_mesh
from meshctl.stack.embedded import NatsServer, free_port
from meshkit.rpc.health import wait_serving
from meshkit.tx.initiator import CoordinatorClient
from meshpb.common.v1 import common_pb2
from meshpb.coordinator.v1 import coordinator_pb2 as pb

FILL_CONCURRENCY = 64
ABORTING = 4
DRAIN_LIMIT_SECONDS = 180.0
RESTART_SECONDS = 30.0
SOURCE_RE = re.compile(r'^mesh_timer_lateness_seconds_count\{[^}]*source="(\w+)"[^}]*\}\s+([0-9.e+]+)', re.M)


@dataclass(frozen=True)
class Figures:
    """What one variant measured."""

    variant: str
    count: int
    fill_seconds: float
    p50: float
    p99: float
    worst: float
    after_last: float
    drain_rate: float
    cpu_ms_per_abort: float
    fired_by: dict[str, int]
    unfinished: int


def fired_by(metrics_port: int) -> dict[str, int]:
    """``mesh_timer_lateness_seconds_count`` per source, from the coordinator's ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    counts: dict[str, int] = {}
    for source, value in SOURCE_RE.findall(text):
        counts[source] = counts.get(source, 0) + int(float(value))
    return counts


def branch(mesh: Mesh, n: int) -> pb.Branch:
    """One TCC branch on participant ``n % 3`` (only its cancel will ever run)."""
    payload = common_pb2.SkuQuantity(sku=account_name(n), quantity=1).SerializeToString()
    i = n % len(mesh.participants)
    return pb.Branch(
        branch_id="01",
        action=mesh.target(i, "Try"),
        confirm=mesh.target(i, "Confirm"),
        cancel=mesh.target(i, "Cancel"),
        payload=payload,
    )


async def fill(mesh: Mesh, prefix: str, count: int, first_deadline_ms: int, window_ms: int) -> None:
    """Prepare ``count`` TCC transactions whose deadlines spread over ``window_ms`` from the first."""
    client = CoordinatorClient(mesh.coordinator, auth=BENCH_AUTH)
    todo = iter(range(count))

    async def worker() -> None:
        for n in todo:
            deadline = first_deadline_ms + n * window_ms // count
            timeout_ms = max(10, deadline - int(time.time() * 1000))
            gid = f"{prefix}{n:06d}"
            options = pb.TxOptions(timeout_ms=timeout_ms)
            await client.stub.Prepare(pb.PrepareRequest(gid=gid, mode=pb.MODE_TCC, options=options))
            try:
                await client.stub.RegisterBranch(pb.RegisterBranchRequest(gid=gid, branch=branch(mesh, n)))
            except grpc.aio.AioRpcError as exc:
                if exc.code() is grpc.StatusCode.FAILED_PRECONDITION:  # already timed out
                    raise SystemExit(f"the fill outlasted --lead (at {n} of {count}): raise --lead") from exc
                raise

    try:
        await asyncio.gather(*(worker() for _ in range(FILL_CONCURRENCY)))
    finally:
        await client.close()


def read_outcome(db: Path, prefix: str) -> list[tuple[int, int | None, int | None]]:
    """Per transaction: (deadline, entered ABORTING, finished) in epoch ms."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(
            "SELECT g.timeout_at,"
            " (SELECT MIN(e.at) FROM trans_event e WHERE e.gid = g.gid AND e.to_status = ?), g.finished_at"
            " FROM trans_global g WHERE g.gid LIKE ?",
            (ABORTING, f"{prefix}%"),
        ).fetchall()


def wait_drained(db: Path, prefix: str, count: int, limit_seconds: float) -> None:
    """Wait until ``count`` transactions of ``prefix`` are finished, or ``limit_seconds`` passed."""
    stop_at = time.monotonic() + limit_seconds
    while time.monotonic() < stop_at:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            (done,) = conn.execute(
                "SELECT COUNT(*) FROM trans_global WHERE gid LIKE ? AND finished_at IS NOT NULL",
                (f"{prefix}%",),
            ).fetchone()
        if done >= count:
            return
        time.sleep(0.5)


def run_variant(variant: str, count: int, window: float, lead: float) -> Figures:
    """One variant in a fresh working directory: fill, (stop NATS), wait for the drain, measure."""
    with tempfile.TemporaryDirectory(prefix=f"bench-timers-{variant}-") as tmp:
        workdir = Path(tmp)
        nats = NatsServer(workdir / "nats")
        nats.start()
        metrics_port = free_port()
        env = {
            "MESH_NATS__ENABLED": "true",
            "MESH_NATS__URL": nats.url,
            "MESH_SERVER__METRICS_PORT": str(metrics_port),
            "MESH_ADMIN__TOKEN": secrets.token_hex(16),
        }
        try:
            with running_mesh(workdir, None, coordinator_env=env) as mesh:
                time.sleep(2.0)  # the coordinator connects to NATS in the background
                prefix = f"tmr-{uuid.uuid4().hex[:8]}-"
                started = time.monotonic()
                first_deadline = int((time.time() + lead) * 1000)
                asyncio.run(fill(mesh, prefix, count, first_deadline, int(window * 1000)))
                fill_seconds = time.monotonic() - started
                with contextlib.ExitStack() as restart:
                    pid = mesh.coordinator_pid
                    if variant == "down":
                        nats.stop()
                    if variant == "restart":
                        pid = restart.enter_context(restarted_coordinator(mesh, workdir, env))
                    before_sources = fired_by(metrics_port)
                    cpu_before = cpu_seconds(pid)
                    limit = lead + window + DRAIN_LIMIT_SECONDS
                    wait_drained(workdir / "coordinator.db", prefix, count, limit)
                    cpu_used = cpu_seconds(pid) - cpu_before
                    after_sources = fired_by(metrics_port)
                rows = read_outcome(workdir / "coordinator.db", prefix)
        finally:
            nats.stop()
    return figures(variant, rows, fill_seconds, cpu_used, _diff(after_sources, before_sources), count)


def _exited(pid: int) -> bool:
    """The process is gone or a zombie (exited, not yet reaped by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@contextlib.contextmanager
def restarted_coordinator(mesh: Mesh, workdir: Path, env: Mapping[str, str]) -> Iterator[int]:
    """Stop the mesh's coordinator and start a new one on its port, store and NATS; yields its pid.

    The new process has no local wake-up: the JetStream schedules and the sweeper must do the work.
    """
    os.kill(mesh.coordinator_pid, signal.SIGTERM)
    stop_at = time.monotonic() + RESTART_SECONDS
    while not _exited(mesh.coordinator_pid) and time.monotonic() < stop_at:
        time.sleep(0.1)
    port = mesh.coordinator.rsplit(":", 1)[1]
    coordinator_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MESH_")},
        "PYTHONUNBUFFERED": "1",
        "MESH_SERVER__PORT": port,
        "MESH_DB__URL": f"sqlite+aiosqlite:///{workdir / 'coordinator.db'}",
        "MESH_LOG__LEVEL": "WARNING",
        "MESH_AUTH__MESH_SECRET": BENCH_AUTH.mesh_secret.get_secret_value(),
        **env,
    }
    with (workdir / "coordinator-restarted.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coordinator"],
            env=coordinator_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        asyncio.run(wait_serving([mesh.coordinator], RESTART_SECONDS))
        time.sleep(2.0)  # it connects to NATS in the background
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=RESTART_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def figures(  # noqa: PLR0917 - one call site, each value named there
    variant: str,
    rows: Sequence[tuple[int, int | None, int | None]],
    fill_seconds: float,
    cpu_used: float,
    sources: dict[str, int],
    count: int,
) -> Figures:
    """Lateness percentiles, drain rate and CPU per abort from the stored outcome."""
    late = sorted((aborted - deadline) / 1000 for deadline, aborted, _ in rows if aborted is not None)
    finished = [done for _, _, done in rows if done is not None]
    first_deadline = min(deadline for deadline, _, _ in rows)
    last_deadline = max(deadline for deadline, _, _ in rows)
    last_finish = max(finished, default=last_deadline)
    drain_seconds = max(0.001, (last_finish - first_deadline) / 1000)
    return Figures(
        variant,
        count,
        fill_seconds,
        percentile(late, 0.50),
        percentile(late, 0.99),
        late[-1] if late else 0.0,
        (last_finish - last_deadline) / 1000,
        len(finished) / drain_seconds,
        cpu_used * 1000 / max(1, len(finished)),
        sources,
        count - len(finished),
    )


def report(results: Sequence[Figures], window: float, lead: float) -> None:
    """Print one line per variant."""
    print(
        f"\ntimer lateness: TCC timeouts spread over {window:.0f} s"
        f" (first {lead:.0f} s after the fill began), SQLite store, sweep interval 3 s (default)"
    )
    header = (
        f"{'variant':<10}{'tx':>7}{'fill s':>8}{'p50 s':>8}{'p99 s':>8}{'max s':>8}{'last+ s':>9}"
        f"{'aborts/s':>10}{'cpu ms/abort':>14}{'unfinished':>12}  fired by"
    )
    print(header)
    names = {"up": "NATS up", "down": "NATS down", "restart": "restarted"}
    for r in results:
        sources = ", ".join(f"{k} {v}" for k, v in sorted(r.fired_by.items(), key=lambda kv: -kv[1]))
        print(
            f"{names[r.variant]:<10}{r.count:>7}{r.fill_seconds:>8.1f}{r.p50:>8.2f}{r.p99:>8.2f}"
            f"{r.worst:>8.2f}{r.after_last:>9.2f}{r.drain_rate:>10.0f}{r.cpu_ms_per_abort:>14.2f}"
            f"{r.unfinished:>12}  {sources}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m bench timers``."""
    parser = argparse.ArgumentParser(prog="bench timers", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="transactions (deadlines) per variant")
    parser.add_argument("--window", type=float, default=20.0, help="seconds the deadlines spread over")
    parser.add_argument("--lead", type=float, default=60.0, help="seconds from the fill start to the first")
    parser.add_argument(
        "--variants",
        default="up,down,restart,orders",
        help="comma-separated: up (NATS up), down (NATS stopped), restart (coordinator restarted), orders",
    )
    parser.add_argument("--pay-timeout", type=float, default=90.0, help="orders: pay timeout in seconds")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if any(v not in ("up", "down", "restart", "orders") for v in variants) or args.count < 1:
        parser.error("--variants takes up, down, restart and/or orders; --count must be positive")
    results = [run_variant(v, args.count, args.window, args.lead) for v in variants if v != "orders"]
    if results:
        report(results, args.window, args.lead)
    unfinished = sum(r.unfinished for r in results)
    if "orders" in variants:
        with tempfile.TemporaryDirectory(prefix="bench-timers-orders-") as tmp:
            orders = asyncio.run(run_orders(Path(tmp), args.count, args.pay_timeout))
        print_orders(orders, args.pay_timeout)
        unfinished += orders.unfinished
    return 0 if unfinished == 0 else 1
