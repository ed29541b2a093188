"""RPC layer overhead: a unary echo on bare ``grpc.aio`` vs the same echo behind :class:`MeshServer`.

``python -m bench rpc_overhead [--seconds S] [--concurrency C] [--rate R] [--rounds N] [--uvloop]
[--profile]``

Starts one server process per variant (``python -m bench.rpc_overhead --serve VARIANT --port P``):

* **bare**: a ``grpc.aio`` server with one generic raw-bytes echo handler, nothing else;
* **mesh**: the same handler behind :class:`~meshkit.rpc.server.MeshServer` as in production: its
  interceptor, metrics, health and reflection, WARNING log level, and the echo method mesh-only
  (:data:`meshkit.rpc.auth.MESH`), so every call's ``x-mesh-auth`` is verified;
* with ``--uvloop``, **bare+uvloop** and **mesh+uvloop**: the same servers on the uvloop event loop.

This process is the client: ``C`` calls in flight on one channel per server, each carrying a branch
call's ``x-mesh-*`` metadata and an ``x-mesh-auth`` header made by :class:`MeshSigner` (the same bytes
for every variant, so the client's cost does not differ). Variants take turns for ``N`` rounds; each
phase prints RPC/s and the server process's CPU microseconds per RPC (``/proc``), and each round the
ratio of every variant's CPU per RPC to bare's. ``--profile`` runs the mesh server under cProfile and
prints where its time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import pstats
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from pydantic import SecretStr

from bench.common import Call, closed_loop, print_table, stop_processes
from bench.tcc_overhead import cpu_seconds
from meshctl.stack.embedded import free_port
from meshkit.observability.logging import setup_logging
from meshkit.rpc.auth import MESH, MeshSigner, protect
from meshkit.rpc.server import MeshServer
from meshkit.settings.config import AuthSettings, LogSettings, MeshSettings, ServerSettings
from meshkit.tx.context import Op, TxContext, TxMode

SERVICE = "bench.v1.Echo"
METHOD = f"/{SERVICE}/Echo"
PAYLOAD = b"x" * 64
READY_SECONDS = 60.0
CALL_SECONDS = 10.0
WARMUP_SECONDS = 1.0
SECRET_ENV = "BENCH_RPC_SECRET"
VARIANTS = ("bare", "mesh")

Context = grpc.aio.ServicerContext[Any, Any]


async def echo(request: bytes, context: Context) -> bytes:
    """Answer the request's bytes."""
    return request


def register(server: grpc.aio.Server) -> None:
    """Add the raw-bytes ``bench.v1.Echo/Echo`` handler to ``server``."""
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {"Echo": handler})])


async def serve_bare(port: int) -> None:
    """A bare ``grpc.aio`` echo server until SIGTERM."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    register(server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


async def serve_mesh(port: int, secret: str) -> None:
    """The echo behind a production-like :class:`MeshServer` (mesh credentials on) until SIGTERM."""
    settings = MeshSettings(
        server=ServerSettings(host="127.0.0.1", port=port),
        auth=AuthSettings(mesh_secret=SecretStr(secret)),
        log=LogSettings(level="WARNING"),
    )
    server = MeshServer(
        settings, "bench-echo", [register], [SERVICE], protected=protect(SERVICE, MESH, ["Echo"])
    )
    await server.run()


def serve(variant: str, port: int) -> None:
    """Run the server process of ``variant`` (``bare``/``mesh``, ``+uvloop`` for the uvloop loop)."""
    setup_logging(LogSettings(level="WARNING"))
    kind, _, loop = variant.partition("+")
    secret = os.environ.get(SECRET_ENV, "")
    main = serve_bare(port) if kind == "bare" else serve_mesh(port, secret)
    if loop == "uvloop":
        importlib.import_module("uvloop").run(main)  # imported only when asked for
    else:
        asyncio.run(main)


@dataclass(frozen=True)
class Phase:
    """One variant's measured load phase."""

    variant: str
    calls: int
    seconds: float
    errors: int
    server_cpu: float

    @property
    def rate(self) -> float:
        """RPCs per second."""
        return self.calls / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us(self) -> float:
        """Server CPU microseconds per RPC."""
        return self.server_cpu * 1e6 / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class Server:
    """A running echo server process."""

    variant: str
    address: str
    pid: int


def signed_metadata(signer: MeshSigner, n: int) -> list[tuple[str, str]]:
    """A branch call's context metadata for call ``n`` plus the ``x-mesh-auth`` header of it."""
    md = TxContext(f"bench-{n}", "01", Op.TRY, TxMode.TCC).to_metadata()
    return [*md, *signer.headers(METHOD, md)]


async def wait_ready(channel: grpc.aio.Channel, metadata: Sequence[tuple[str, str]]) -> None:
    """Return once the server answers an echo."""
    call = channel.unary_unary(METHOD)
    await call(PAYLOAD, metadata=metadata, timeout=READY_SECONDS, wait_for_ready=True)


async def load(servers: Sequence[Server], secret: str, args: argparse.Namespace) -> list[list[Phase]]:
    """Every server in turn, ``args.rounds`` times; one list of phases per round."""
    signer = MeshSigner(secret)
    channels = {s.variant: grpc.aio.insecure_channel(s.address) for s in servers}
    try:
        for channel in channels.values():
            await wait_ready(channel, signed_metadata(signer, 0))
        rounds: list[list[Phase]] = []
        for _ in range(args.rounds):
            rounds.append([await _phase(s, channels[s.variant], signer, args) for s in servers])
        return rounds
    finally:
        for channel in channels.values():
            await channel.close()


def _caller(stub: Any, signer: MeshSigner, rate: float) -> Call:
    """Echo call ``n``; at ``rate`` > 0 not before ``n / rate`` seconds after the first call."""
    started = time.monotonic()

    async def one(n: int) -> None:
        if rate:
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await stub(PAYLOAD, metadata=signed_metadata(signer, n), timeout=CALL_SECONDS)

    return one


async def _phase(server: Server, channel: grpc.aio.Channel, signer: MeshSigner, args: Any) -> Phase:
    stub = channel.unary_unary(METHOD)
    warmup = _caller(stub, signer, args.rate)
    await closed_loop(warmup, concurrency=args.concurrency, seconds=WARMUP_SECONDS, label=server.variant)
    before = cpu_seconds(server.pid)
    measured = _caller(stub, signer, args.rate)
    result = await closed_loop(
        measured, concurrency=args.concurrency, seconds=args.seconds, label=server.variant
    )
    used = cpu_seconds(server.pid) - before
    return Phase(server.variant, result.count, result.seconds, result.errors, used)


@contextlib.contextmanager
def running_servers(
    variants: Sequence[str], secret: str, workdir: Path, profile: Path | None
) -> Iterator[list[Server]]:
    """One server process per variant (the mesh one under cProfile when ``profile``); stopped on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env[SECRET_ENV] = secret
    procs: list[subprocess.Popen[bytes]] = []
    servers: list[Server] = []
    try:
        for variant in variants:
            port = free_port()
            profiler = ["-m", "cProfile", "-o", str(profile)] if profile and variant == "mesh" else []
            argv = [sys.executable, *profiler, "-m", "bench.rpc_overhead", "--serve", variant]
            with (workdir / f"{variant}.log").open("ab") as log:
                proc = subprocess.Popen(
                    [*argv, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
                )
            procs.append(proc)
            servers.append(Server(variant, f"127.0.0.1:{port}", proc.pid))
        yield servers
    finally:
        stop_processes(procs)


def report(rounds: Sequence[Sequence[Phase]]) -> None:
    """One table of every phase, with each phase's CPU per RPC relative to bare in the same round."""
    rows: list[list[object]] = []
    for index, phases in enumerate(rounds, start=1):
        base = {p.variant.partition("+")[2]: p.cpu_us for p in phases if p.variant.startswith("bare")}
        bare = base.get("", 0.0)
        for p in phases:
            ratio = p.cpu_us / bare if bare else 0.0
            rows.append([p.variant, index, p.calls, p.errors, p.rate, p.cpu_us, f"{ratio:.2f}"])
    print_table(
        "rpc overhead: server CPU per echo RPC (ratio = variant / bare, same round)",
        ["variant", "round", "calls", "errors", "RPC/s", "server CPU us/RPC", "ratio"],
        rows,
    )
    mesh = [p.cpu_us for phases in rounds for p in phases if p.variant == "mesh"]
    bare = [p.cpu_us for phases in rounds for p in phases if p.variant == "bare"]
    if mesh and bare:
        extra = sum(mesh) / len(mesh) - sum(bare) / len(bare)
        overall = sum(mesh) / sum(bare) if sum(bare) else 0.0
        print(
            f"\nmesh over bare: {extra:+.0f} us CPU per RPC, ratio {overall:.2f} (mean of {len(mesh)} rounds)"
        )


def print_profile(path: Path, top: int = 30) -> None:
    """The mesh server's cProfile, by own and by cumulative time."""
    if not path.exists():
        print("no profile written (the mesh server did not exit cleanly)")
        return
    stats = pstats.Stats(str(path))
    print("\nmesh server profile, by own time:")
    stats.sort_stats("tottime").print_stats(top)
    print("mesh server profile, by cumulative time:")
    stats.sort_stats("cumulative").print_stats(top)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The benchmark's options (``--serve`` is the server process's own mode)."""
    parser = argparse.ArgumentParser(prog="python -m bench rpc_overhead", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per phase")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="calls per second, at most --concurrency in flight (0 = closed loop); a rate every variant "
        "sustains compares CPU per call at the same batching",
    )
    parser.add_argument("--rounds", type=int, default=2, help="times every variant is measured")
    parser.add_argument("--uvloop", action="store_true", help="also measure both servers on uvloop")
    parser.add_argument("--profile", action="store_true", help="profile the mesh server (cProfile)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    """Run the benchmark (or, with ``--serve``, one server process); prints the table."""
    args = parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0
    variants = [*VARIANTS, *(f"{v}+uvloop" for v in VARIANTS if args.uvloop)]
    secret = secrets.token_hex(16)
    pace = f"{args.rate:g} calls/s" if args.rate else "closed loop"
    print(
        f"rpc_overhead: {args.concurrency} in flight, {pace}, "
        f"{args.seconds:g}s x {args.rounds} rounds, "
        f"{os.cpu_count()} CPUs, variants {', '.join(variants)}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-rpc-") as tmp:
        workdir = Path(tmp)
        profile = workdir / "mesh.prof" if args.profile else None
        started = time.monotonic()
        with running_servers(variants, secret, workdir, profile) as servers:
            rounds = asyncio.run(load(servers, secret, args))
        report(rounds)
        print(f"({time.monotonic() - started:.0f}s)")
        if profile is not None:
            print_profile(profile)
    return 0 if all(p.calls and not p.errors for phases in rounds for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
