"""Coordinator overhead: transactions per second through the coordinator vs the same calls made directly.

``python -m bench tcc_overhead [--seconds S] [--concurrency C] [--profile]``

Starts three participant processes (:mod:`bench.participant`, each on its own SQLite database, every
op = barrier + two SQL statements in one local transaction) and a coordinator process (SQLite store,
NATS off: nothing here needs a retry timer). Then, in one run and with the same workers:

* **TCC direct**: try on the three participants one after the other, then the three confirms at once;
  the calls carry the same ``x-mesh-*`` metadata the coordinator would send.
* **TCC coordinator**: ``meshkit.tx.initiator.tcc`` (Prepare with the three branches, a try per branch, Submit
  with ``wait_result`` so a transaction counts once its confirms are done).
* **saga direct**: the three actions one after the other.
* **saga coordinator**: a 3-step saga submitted with ``wait_result``.

Prints both rates and their ratio (coordinator / direct). ``--profile`` runs the coordinator under
cProfile and prints where its time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pstats
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from bench.common import stop_processes
from bench.participant import SERVICE, account_name
from meshctl.stack.embedded import free_port
from meshkit.rpc.health import wait_serving
from meshkit.settings.config import AuthSettings
from meshkit.tx.branchcall import ChannelPool, branch_metadata
from meshkit.tx.context import Op, TxContext, TxMode
from meshkit.tx.initiator import CoordinatorClient, TccBranch, saga, tcc
from meshpb.common.v1 import common_pb2
from meshpb.coordinator.v1 import coordinator_pb2 as pb

PARTICIPANTS = 3
READY_SECONDS = 60.0
CALL_SECONDS = 10.0

Work = Callable[[int], Awaitable[None]]

# The Coordinator service is mesh-only (README "Threat model"): the bench holds the secret it gives it.
BENCH_AUTH = AuthSettings(mesh_secret=SecretStr(secrets.token_hex(16)))


@dataclass(frozen=True)
class Mesh:
    """The running processes' addresses and pids."""

    coordinator: str
    participants: tuple[str, ...]
    coordinator_pid: int
    participant_pids: tuple[int, ...]

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time used so far by (the coordinator, all participants together)."""
        return cpu_seconds(self.coordinator_pid), sum(cpu_seconds(pid) for pid in self.participant_pids)

    def target(self, index: int, method: str) -> str:
        """The branch target of ``method`` on participant ``index``."""
        return f"{self.participants[index]}/{SERVICE}/{method}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Result:
    """One measured phase."""

    name: str
    transactions: int
    seconds: float
    errors: int
    coordinator_cpu: float = 0.0
    participants_cpu: float = 0.0

    def cpu_ms_per_tx(self, cpu: float) -> float:
        """Milliseconds of ``cpu`` per transaction."""
        return cpu * 1000 / self.transactions if self.transactions else 0.0

    @property
    def rate(self) -> float:
        """Transactions per second."""
        return self.transactions / self.seconds if self.seconds > 0 else 0.0


def _spawn(args: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, *args], env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )


@contextlib.contextmanager
def running_mesh(
    workdir: Path, profile_path: Path | None, *, coordinator_env: Mapping[str, str] | None = None
) -> Iterator[Mesh]:
    """Start three participants and a coordinator under ``workdir``; stop them on exit.

    The coordinator's database is ``workdir/coordinator.db`` (created when missing); ``coordinator_env``
    adds to its environment (e.g. ``MESH_ADMIN__TOKEN``).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env["PYTHONUNBUFFERED"] = "1"
    procs: list[subprocess.Popen[bytes]] = []
    participants: list[str] = []
    try:
        for i in range(PARTICIPANTS):
            port = free_port()
            url = f"sqlite+aiosqlite:///{workdir / f'participant{i}.db'}"
            args = ["-m", "bench.participant", "--port", str(port), "--db-url", url]
            procs.append(_spawn(args, env, workdir / f"participant{i}.log"))
            participants.append(f"127.0.0.1:{port}")
        coordinator_port = free_port()
        coordinator_env = {
            **env,
            "MESH_SERVER__PORT": str(coordinator_port),
            "MESH_DB__URL": f"sqlite+aiosqlite:///{workdir / 'coordinator.db'}",
            "MESH_NATS__ENABLED": "false",
            "MESH_LOG__LEVEL": "WARNING",
            "MESH_AUTH__MESH_SECRET": BENCH_AUTH.mesh_secret.get_secret_value(),
            "MESH_ADMIN__TOKEN": secrets.token_hex(16),  # the coordinator refuses to start without one
            **(coordinator_env or {}),
        }
        profiler = ["-m", "cProfile", "-o", str(profile_path)] if profile_path else []
        procs.append(_spawn([*profiler, "-m", "coordinator"], coordinator_env, workdir / "coordinator.log"))
        mesh = Mesh(
            f"127.0.0.1:{coordinator_port}",
            tuple(participants),
            procs[-1].pid,
            tuple(p.pid for p in procs[:-1]),
        )
        asyncio.run(wait_serving([mesh.coordinator, *participants], READY_SECONDS))
        yield mesh
    finally:
        stop_processes(procs)


def _payload(n: int) -> bytes:
    return common_pb2.SkuQuantity(sku=account_name(n), quantity=1).SerializeToString()


def tcc_direct(mesh: Mesh, pool: ChannelPool) -> Work:
    """Try on each participant in turn, then the confirms concurrently, with coordinator-style metadata."""

    async def one(n: int) -> None:
        gid = uuid.uuid4().hex
        data = _payload(n)

        def md(i: int, op: Op) -> list[tuple[str, str]]:
            return branch_metadata(TxContext(gid, f"{i + 1:02d}", op, TxMode.TCC), ())

        for i in range(PARTICIPANTS):
            await pool.call(mesh.target(i, "Try"), data, md(i, Op.TRY), CALL_SECONDS)
        await asyncio.gather(
            *(
                pool.call(mesh.target(i, "Confirm"), data, md(i, Op.CONFIRM), CALL_SECONDS)
                for i in range(PARTICIPANTS)
            )
        )

    return one


def tcc_coordinated(mesh: Mesh, client: CoordinatorClient) -> Work:
    """The same TCC through the coordinator, counted once its confirms are done."""

    async def one(n: int) -> None:
        data = _payload(n)
        # The branches are known up front: the Prepare registers them (no RegisterBranch calls).
        branches = [
            TccBranch(mesh.target(i, "Try"), mesh.target(i, "Confirm"), mesh.target(i, "Cancel"), data)
            for i in range(PARTICIPANTS)
        ]
        async with tcc(client, gid=uuid.uuid4().hex, wait_result=True, branches=branches) as t:
            for b in branches:
                await t.call_branch(b.try_target, b.confirm_target, b.cancel_target, b.payload)
        if t.status != pb.STATUS_SUCCEEDED:
            raise RuntimeError(f"transaction {t.gid} ended {t.status}")

    return one


def saga_direct(mesh: Mesh, pool: ChannelPool) -> Work:
    """Three actions one after the other, with coordinator-style metadata."""

    async def one(n: int) -> None:
        gid = uuid.uuid4().hex
        data = _payload(n)
        for i in range(PARTICIPANTS):
            md = branch_metadata(TxContext(gid, f"{i + 1:02d}", Op.ACTION, TxMode.SAGA), ())
            await pool.call(mesh.target(i, "Action"), data, md, CALL_SECONDS)

    return one


def saga_coordinated(mesh: Mesh, client: CoordinatorClient) -> Work:
    """A 3-step saga through the coordinator, counted once it succeeded."""

    async def one(n: int) -> None:
        data = _payload(n)
        s = saga(client, gid=uuid.uuid4().hex)
        for i in range(PARTICIPANTS):
            s.add(mesh.target(i, "Action"), mesh.target(i, "Compensate"), data)
        status = await s.submit(wait=True, timeout_seconds=CALL_SECONDS * 3)
        if status != pb.STATUS_SUCCEEDED:
            raise RuntimeError(f"saga {s.gid} ended {status}")

    return one


async def measure(mesh: Mesh, name: str, work: Work, seconds: float, concurrency: int) -> Result:
    """Run ``work`` from ``concurrency`` workers for ``seconds`` (after a short warm-up)."""
    counter = iter(range(10**12))
    done = errors = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal done, errors
        while time.monotonic() < stop_at:
            try:
                await work(next(counter))
                done += 1
            except Exception as exc:  # counted and shown: a benchmark keeps going
                errors += 1
                if errors <= 3:
                    print(f"  {name}: {type(exc).__name__}: {exc}", file=sys.stderr)

    stop_at = time.monotonic() + min(2.0, seconds / 4)  # warm-up: channels, caches, SQLite pages
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    done = errors = 0
    coordinator_before, participants_before = mesh.cpu_seconds()
    started = time.monotonic()
    stop_at = started + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    coordinator_after, participants_after = mesh.cpu_seconds()
    return Result(
        name,
        done,
        elapsed,
        errors,
        coordinator_after - coordinator_before,
        participants_after - participants_before,
    )


async def run_phases(mesh: Mesh, seconds: float, concurrency: int) -> list[Result]:
    """Every phase, direct and coordinated alternately."""
    pool = ChannelPool(auth=BENCH_AUTH)  # direct calls sign too, so both sides pay for the credentials
    client = CoordinatorClient(mesh.coordinator, auth=BENCH_AUTH)
    try:
        return [
            await measure(mesh, "TCC direct", tcc_direct(mesh, pool), seconds, concurrency),
            await measure(mesh, "TCC coordinator", tcc_coordinated(mesh, client), seconds, concurrency),
            await measure(mesh, "saga direct", saga_direct(mesh, pool), seconds, concurrency),
            await measure(mesh, "saga coordinator", saga_coordinated(mesh, client), seconds, concurrency),
        ]
    finally:
        await client.close()
        await pool.close()


def report(results: list[Result], concurrency: int) -> None:
    """Print rates and the coordinator/direct ratios."""
    print(
        f"\ncoordinator overhead ({PARTICIPANTS} participants, SQLite, {concurrency} concurrent initiators)"
    )
    print(f"(on {os.cpu_count()} CPUs; CPU ms per transaction show what a phase spends where)")
    header = (
        f"{'phase':<18}{'tx':>8}{'seconds':>9}{'tx/s':>9}{'errors':>8}{'coord ms/tx':>13}{'parts ms/tx':>13}"
    )
    print(header)
    for r in results:
        print(
            f"{r.name:<18}{r.transactions:>8}{r.seconds:>9.1f}{r.rate:>9.1f}{r.errors:>8}"
            f"{r.cpu_ms_per_tx(r.coordinator_cpu):>13.2f}{r.cpu_ms_per_tx(r.participants_cpu):>13.2f}"
        )
    by_name = {r.name: r for r in results}
    for mode in ("TCC", "saga"):
        direct, coordinated = by_name[f"{mode} direct"], by_name[f"{mode} coordinator"]
        ratio = coordinated.rate / direct.rate if direct.rate else 0.0
        print(f"{mode} ratio coordinator/direct: {ratio:.2f}")


def print_profile(path: Path, top: int = 25) -> None:
    """The coordinator's hottest functions by own time and by cumulative time."""
    if not path.exists():
        print("no profile written (the coordinator did not exit cleanly)")
        return
    stats = pstats.Stats(str(path))
    print("\ncoordinator profile, by own time:")
    stats.sort_stats(pstats.SortKey.TIME).print_stats(top)
    print("coordinator profile, by cumulative time:")
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(top)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m bench tcc_overhead``."""
    parser = argparse.ArgumentParser(prog="bench tcc_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per phase")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent initiators")
    parser.add_argument("--profile", action="store_true", help="profile the coordinator (cProfile)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.concurrency < 1:
        parser.error("--seconds must be > 0 and --concurrency >= 1")
    with tempfile.TemporaryDirectory(prefix="bench-tcc-") as tmp:
        workdir = Path(tmp)
        profile_path = workdir / "coordinator.prof" if args.profile else None
        with running_mesh(workdir, profile_path) as mesh:
            results = asyncio.run(run_phases(mesh, args.seconds, args.concurrency))
        report(results, args.concurrency)
        if profile_path is not None:
            print_profile(profile_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
