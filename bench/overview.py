"""``python -m bench`` (no name): how close every scenario is to what this machine allows, in one run.

``python -m bench overview [--seconds S] [--concurrency C] [--levels 1,8,32] [--backend sqlite,mariadb]
[--flash-attempts N] [--flash-units U] [--flash-concurrency F]``

In this order, on this machine, one after the other (nothing overlaps):

1. The physical references: a bare ``grpc.aio`` echo (the :mod:`bench.rpc_overhead` bare server, and
   its MeshServer one for the RPC layer's cost) and the participant unit - barrier row + update + insert,
   one commit - on raw ``sqlite3`` inline (:mod:`bench.participant_unit`), then on the store runner.
2. TCC 3 branches, saga 3 steps and MSG 2 branches, each direct (the same branch calls without the
   coordinator) and through the coordinator, on the :mod:`bench.tcc_overhead` mesh (SQLite).
3. Per backend (SQLite, and MariaDB when installed) on a whole local stack: PlaceOrder at each
   concurrency level (:mod:`bench.place_order`), then a flash-sale burst (:mod:`bench.flash_sale`),
   then ``meshctl audit``.

Every phase prints its rate, p50/p99, CPU ms per unit of every process (``/proc/<pid>/stat`` before and
after: the coordinator, each participant or service, Redis, NATS, MariaDB, and this process as the
client) and its ratios to the direct baseline and to the references; a last table sets the issue's
targets next to the measured values. Exit 1 when a flash sale did not sell exactly its units, an audit
failed or a phase did nothing; a missed target is only printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc.aio

from bench import overview_report, participant_unit, rpc_overhead
from bench.common import (
    Call,
    CpuMeter,
    LoadResult,
    Phase,
    backend_choice,
    closed_loop,
    concurrency_levels,
    cpu_used,
    local_stack,
)
from bench.flash_sale import FlashOutcome, flash_burst
from bench.msg_overhead import msg_coordinated, msg_direct
from bench.participant import prepare_database
from bench.place_order import _audit, backend_databases, place_order, seed
from bench.tcc_overhead import (
    BENCH_AUTH,
    Mesh,
    Work,
    running_mesh,
    saga_coordinated,
    saga_direct,
    tcc_coordinated,
    tcc_direct,
)
from meshctl.audit.clients import MeshClients
from meshctl.stack.embedded import MariaDbServer
from meshkit.rpc.auth import MeshSigner
from meshkit.tx.branchcall import ChannelPool
from meshkit.tx.initiator import CoordinatorClient

WARMUP_SECONDS = 1.0
BACKENDS = ("sqlite", "mariadb")
USERS = 64


@dataclass
class Overview:
    """Everything one run measured."""

    references: list[Phase]
    phases: list[Phase]
    flashes: list[FlashOutcome]
    audits_ok: bool = True


async def _measured(
    meter: CpuMeter, work: Work, *, group: str, name: str, backend: str, seconds: float, concurrency: int
) -> Phase:
    """A warm-up, then ``work`` in a closed loop with the CPU of every process of ``meter``."""
    label = f"{group} {name} ({backend})"
    await closed_loop(work, concurrency=concurrency, seconds=WARMUP_SECONDS, label=label)
    before = meter.read()
    load = await closed_loop(work, concurrency=concurrency, seconds=seconds, label=label)
    return Phase(group, name, backend, load, cpu_used(before, meter.read()))


# ------------------------------------------------------------------------------------------ references


def echo_references(seconds: float, concurrency: int) -> list[Phase]:
    """Bare ``grpc.aio`` echo and the MeshServer echo, the same client calls (signed metadata) on both."""
    secret = secrets.token_hex(16)
    with (
        tempfile.TemporaryDirectory(prefix="bench-echo-") as tmp,
        rpc_overhead.running_servers(rpc_overhead.VARIANTS, secret, Path(tmp), None) as servers,
    ):
        return asyncio.run(_echo_phases(servers, secret, seconds, concurrency))


async def _echo_phases(
    servers: Sequence[rpc_overhead.Server], secret: str, seconds: float, concurrency: int
) -> list[Phase]:
    signer = MeshSigner(secret)
    phases = []
    for server in servers:
        channel = grpc.aio.insecure_channel(server.address)
        try:
            await rpc_overhead.wait_ready(channel, rpc_overhead.signed_metadata(signer, 0))
            name = "bare grpc.aio" if server.variant == "bare" else "MeshServer"
            meter = CpuMeter.of({"server": server.pid})
            phases.append(
                await _measured(
                    meter,
                    _echo_call(channel, signer),
                    group="echo RPC",
                    name=name,
                    backend="-",
                    seconds=seconds,
                    concurrency=concurrency,
                )
            )
        finally:
            await channel.close()
    return phases


def _echo_call(channel: grpc.aio.Channel, signer: MeshSigner) -> Call:
    """Echo call ``n`` with a branch call's signed metadata (the same bytes for every server)."""
    stub: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(rpc_overhead.METHOD)

    async def echo(n: int) -> None:
        metadata = rpc_overhead.signed_metadata(signer, n)
        await stub(rpc_overhead.PAYLOAD, metadata=metadata, timeout=rpc_overhead.CALL_SECONDS)

    return echo


async def unit_references(seconds: float, tasks: int) -> list[Phase]:
    """The participant unit on raw sqlite3 inline (the reference), then on the store runner."""
    with tempfile.TemporaryDirectory(prefix="bench-unit-") as tmp:
        raw, runner = Path(tmp) / "raw.db", Path(tmp) / "runner.db"
        for path in (raw, runner):
            await (await prepare_database(f"sqlite+aiosqlite:///{path}")).dispose()
        results = [
            (1, participant_unit.raw_inline(raw, seconds)),
            (tasks, await participant_unit.runner_barrier(runner, tasks, seconds, False)),
        ]
    phases = []
    for concurrency, m in results:
        name = "raw sqlite3 inline" if concurrency == 1 else f"RunnerBarrier, {tasks} tasks"
        # The inline way runs one unit at a time: each unit's latency is the mean.
        latencies = m.latencies or [m.seconds / m.units] * m.units
        load = LoadResult(concurrency, m.seconds, latencies)
        phases.append(Phase("participant unit", name, "sqlite", load, {"client": m.cpu_seconds}))
    return phases


# --------------------------------------------------------------------------------------- coordinator


def coordinator_phases(seconds: float, concurrency: int) -> list[Phase]:
    """TCC, saga and MSG, direct and through the coordinator, on the tcc_overhead mesh."""
    with tempfile.TemporaryDirectory(prefix="bench-overview-") as tmp, running_mesh(Path(tmp), None) as mesh:
        return asyncio.run(_coordinator_phases(mesh, seconds, concurrency))


async def _coordinator_phases(mesh: Mesh, seconds: float, concurrency: int) -> list[Phase]:
    pids = {"coordinator": mesh.coordinator_pid}
    pids.update({f"participant{i}": pid for i, pid in enumerate(mesh.participant_pids)})
    meter = CpuMeter.of(pids)
    pool = ChannelPool(auth=BENCH_AUTH)
    client = CoordinatorClient(mesh.coordinator, auth=BENCH_AUTH)
    works: list[tuple[str, str, Work]] = [
        ("TCC 3 branches", "direct", tcc_direct(mesh, pool)),
        ("TCC 3 branches", "coordinator", tcc_coordinated(mesh, client)),
        ("saga 3 steps", "direct", saga_direct(mesh, pool)),
        ("saga 3 steps", "coordinator", saga_coordinated(mesh, client)),
        ("MSG 2 branches", "direct", msg_direct(mesh, pool)),
        ("MSG 2 branches", "coordinator", msg_coordinated(mesh, client)),
    ]
    try:
        return [
            await _measured(
                meter,
                work,
                group=group,
                name=name,
                backend="sqlite",
                seconds=seconds,
                concurrency=concurrency,
            )
            for group, name, work in works
        ]
    finally:
        await client.close()
        await pool.close()


# --------------------------------------------------------------------------------------------- stack


async def stack_phases(backend: str, args: argparse.Namespace, overview: Overview) -> None:
    """PlaceOrder at every level, then the flash burst, then the audit, on a fresh stack of ``backend``."""
    run_id = secrets.token_hex(3)
    with tempfile.TemporaryDirectory(prefix=f"bench-overview-{backend}-") as tmp:
        workdir = Path(tmp)
        async with (
            backend_databases(backend, workdir, run_id) as (overrides, server),
            local_stack(workdir / "mesh", env_overrides=overrides) as stack,
            MeshClients(stack.addresses, stack.admin_token) as clients,
        ):
            pids = stack.pids()
            if server is not None and server.pid is not None:
                pids["mariadb"] = server.pid
            meter = CpuMeter.of(pids)
            await _place_orders(
                clients, meter=meter, backend=backend, run_id=run_id, args=args, overview=overview
            )
            overview.flashes.append(
                await flash_burst(
                    clients,
                    meter,
                    backend=backend,
                    run_id=run_id,
                    attempts=args.flash_attempts,
                    units=args.flash_units,
                    concurrency=args.flash_concurrency,
                )
            )
            overview.audits_ok = await _audit(clients, backend) and overview.audits_ok


async def _place_orders(
    clients: MeshClients,
    *,
    meter: CpuMeter,
    backend: str,
    run_id: str,
    args: argparse.Namespace,
    overview: Overview,
) -> None:
    users = [f"bench-user-{i}" for i in range(USERS)]
    await seed(clients, users, run_id)
    for level in args.levels:
        call = place_order(clients, users, run_id, f"c{level}")
        phase = await _measured(
            meter,
            call,
            group="PlaceOrder",
            name=f"c={level}",
            backend=backend,
            seconds=args.seconds,
            concurrency=level,
        )
        overview.phases.append(phase)


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The overview's options (defaults sized so ``make bench`` stays well under 10 minutes)."""
    parser = argparse.ArgumentParser(prog="python -m bench overview", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per phase")
    parser.add_argument("--concurrency", type=int, default=16, help="initiators of TCC/saga/MSG/unit phases")
    parser.add_argument("--echo-concurrency", type=int, default=32, help="echo RPCs in flight")
    parser.add_argument(
        "--levels", type=concurrency_levels, default=[1, 8, 32], help="PlaceOrder concurrency levels"
    )
    parser.add_argument(
        "--backend", type=backend_choice(BACKENDS), default=list(BACKENDS), help="sqlite,mariadb"
    )
    parser.add_argument("--flash-attempts", type=int, default=20_000, help="FlashBuy calls of the burst")
    parser.add_argument("--flash-units", type=int, default=1_000, help="units of the flash sale")
    parser.add_argument("--flash-concurrency", type=int, default=64, help="FlashBuy calls in flight")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.concurrency < 1 or args.echo_concurrency < 1 or args.flash_concurrency < 1:
        parser.error("--seconds must be > 0 and every concurrency >= 1")
    if args.flash_units < 1 or args.flash_attempts < args.flash_units:
        parser.error("--flash-units must be >= 1 and --flash-attempts >= --flash-units")
    return args


def _step(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def measure_all(args: argparse.Namespace) -> Overview:
    """Every part, one after the other."""
    _step("references: echo RPC (bare, MeshServer)")
    references = echo_references(args.seconds, args.echo_concurrency)
    _step("references: participant unit (raw sqlite3, store runner)")
    references += asyncio.run(unit_references(args.seconds, args.concurrency))
    _step("TCC / saga / MSG, direct and through the coordinator")
    overview = Overview(references, coordinator_phases(args.seconds, args.concurrency), [])
    for backend in args.backend:
        if backend == "mariadb" and not MariaDbServer.available():
            print("mariadb: skipped (mariadbd / mariadb-install-db not installed)", file=sys.stderr)
            continue
        _step(f"{backend}: whole stack - PlaceOrder, flash-sale burst, audit")
        asyncio.run(stack_phases(backend, args, overview))
    return overview


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench`` / ``python -m bench overview``."""
    args = parse_args(list(argv or []))
    started, load_before = time.monotonic(), os.getloadavg()[0]
    overview = measure_all(args)
    overview_report.print_overview(overview.references, overview.phases, overview.flashes, args)
    print(
        f"\n(whole run: {time.monotonic() - started:.0f} s; 1-minute load average {load_before:.2f} before,"
        f" {os.getloadavg()[0]:.2f} at the end with this run: other work on the machine shows here)"
    )
    complete = all(p.load.count for p in (*overview.references, *overview.phases))
    sold_ok = all(f.exactly_sold for f in overview.flashes)
    return 0 if complete and sold_ok and overview.audits_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
