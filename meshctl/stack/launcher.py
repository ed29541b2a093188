"""Start and stop a whole local stack: embedded Redis and NATS, then the five service processes.

:class:`StackLauncher` owns the processes it started (``up``, ``demo``); :func:`stop_recorded` stops a
stack from its ``stack.json`` alone (``down``, from another meshctl process).
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from meshctl.progress import Progress, silent
from meshctl.stack import layout, stackfile
from meshctl.stack.embedded import EmbeddedServer, EmbeddedServerError, NatsServer, RedisServer, free_port
from meshctl.stack.procs import ProcRef, port_taken, ref_of, spawn_module, tail_lines, terminate
from meshctl.stack.stackfile import KIND_CONSOLE, KIND_INFRA, KIND_SERVICE, ProcEntry, StackState
from meshkit.rpc.health import HealthTimeout, wait_serving
from meshkit.runtime.clock import Clock

READY_SECONDS = 60.0
SERVICE_GRACE_SECONDS = 10.0
INFRA_GRACE_SECONDS = 10.0
INFRA_PID_FILES = ("redis/redis.pid", "nats/nats.pid")
CONSOLE_MODULE = "console"
CONSOLE_POLL_SECONDS = 0.1


class StackError(Exception):
    """The stack cannot be started (or stopped); ``details`` holds log tails worth showing."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


def free_base_port(rng: random.Random | None = None) -> int:
    """A base port P whose stack ports (P..P+4, P+100..P+104) are all free on 127.0.0.1 (tests, benches)."""
    pick = rng or random.Random()
    for _ in range(500):
        base = pick.randrange(20_000, 40_000)
        if not any(port_taken(layout.HOST, p) for p in layout.planned_ports(base)):
            return base
    raise RuntimeError("no free port range found for a local stack")


def preflight(data_dir: Path, base_port: int) -> None:
    """Refuse to start when a stack already runs in ``data_dir`` or a planned port is taken."""
    if not 1024 <= base_port <= layout.MAX_BASE_PORT:
        raise StackError(f"--base-port must be in 1024..{layout.MAX_BASE_PORT}, got {base_port}")
    state = stackfile.load(data_dir)
    if state is not None:
        running = state.running()
        if running:
            pids = ", ".join(f"{p.name}={p.pid}" for p in running)
            raise StackError(
                f"a stack is already running in {data_dir} ({pids}); "
                f"stop it first with: meshctl down --data-dir {data_dir}"
            )
        stackfile.remove(data_dir)  # stale: every process of it has exited
    taken = [
        f"{port} ({what})"
        for port, what in layout.planned_ports(base_port).items()
        if port_taken(layout.HOST, port)
    ]
    if taken:
        raise StackError(
            f"port(s) already in use on {layout.HOST}: {', '.join(taken)}; pick another --base-port"
        )


def _free_port_outside(reserved: set[int]) -> int:
    while True:
        port = free_port(layout.HOST)
        if port not in reserved:
            return port


@dataclass
class _Service:
    spec: layout.ServiceSpec
    proc: subprocess.Popen[bytes]
    ref: ProcRef
    log: Path


@dataclass
class _Console:
    proc: subprocess.Popen[bytes]
    ref: ProcRef
    log: Path


class StackLauncher:
    """Starts a stack in ``data_dir`` on ``base_port`` and stops what it started."""

    def __init__(
        self,
        data_dir: Path,
        base_port: int,
        clock: Clock,
        *,
        ready_seconds: float = READY_SECONDS,
        env_overrides: Mapping[str, Mapping[str, str]] | None = None,
        with_console: bool = False,
    ):
        self.data_dir = data_dir.resolve()
        self.base_port = base_port
        self._clock = clock
        self._ready_seconds = ready_seconds
        # service name -> environment entries that win over layout.service_env (e.g. MESH_DB__URL)
        self._env_overrides = env_overrides or {}
        self._infra: list[EmbeddedServer] = []
        self._services: list[_Service] = []
        self._with_console = with_console  # also start the admin web console (``meshctl up`` does)
        self._console: _Console | None = None
        self._shared: layout.StackEnv | None = None
        self._detached = False
        self._progress: Progress = silent

    async def start(self, *, detached: bool, progress: Progress = silent) -> StackState:
        """Start everything, wait until every service answers SERVING, write ``stack.json``.

        Each step is told to ``progress``. On any failure everything started so far is stopped and
        :class:`StackError` is raised.
        """
        self._progress = progress
        try:
            state = await self._start(detached)
        except BaseException:
            await self.stop()
            raise
        stackfile.save(self.data_dir, state)
        return state

    async def _start(self, detached: bool) -> StackState:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        reserved = set(layout.planned_ports(self.base_port))
        redis = RedisServer(self.data_dir / "redis", port=_free_port_outside(reserved), persist=True)
        nats = NatsServer(self.data_dir / "nats", port=_free_port_outside(reserved))
        for server in (redis, nats):
            self._progress(f"starting {server.name} on port {server.port}")
            self._infra.append(server)
            try:
                await asyncio.to_thread(server.start)
            except EmbeddedServerError as exc:
                raise StackError(f"{server.name} did not start", str(exc)) from exc
        shared = layout.StackEnv(
            data_dir=self.data_dir,
            base_port=self.base_port,
            redis_url=redis.url,
            nats_url=nats.url,
            admin_token=layout.ensure_secret(self.data_dir / "admin.token"),
            pay_callback_secret=layout.ensure_secret(self.data_dir / "pay_callback.secret"),
            mesh_secret=layout.ensure_secret(self.data_dir / layout.MESH_SECRET_FILE),
        )
        self._shared, self._detached = shared, detached
        for spec in layout.SERVICES:
            self._progress(f"starting {spec.name} on {layout.address(self.base_port, spec)}")
            self._spawn(spec, shared)
        names = ", ".join(s.name for s in layout.SERVICES)
        self._progress(f"waiting up to {self._ready_seconds:g} s for {names} to answer SERVING")
        await self._wait_ready()
        if self._with_console:
            await self._start_console(shared)
        return self._state(detached)

    async def _start_console(self, shared: layout.StackEnv) -> None:
        """Start ``python -m console`` on P+80 and wait until it accepts connections."""
        url = layout.console_url(self.base_port)
        self._progress(f"starting the console on {url}")
        log = layout.log_path(self.data_dir, layout.CONSOLE)
        secret = layout.ensure_secret(self.data_dir / layout.CONSOLE_SECRET_FILE)
        env = {
            **layout.console_env(shared, secret, os.environ),
            **self._env_overrides.get(layout.CONSOLE, {}),
        }
        proc = spawn_module(CONSOLE_MODULE, env, log, self.data_dir)
        self._console = _Console(proc, ref_of(proc.pid), log)
        deadline = self._clock.monotonic() + self._ready_seconds
        port = layout.console_port(self.base_port)
        while not port_taken(layout.HOST, port):
            if proc.poll() is not None or self._clock.monotonic() > deadline:
                why = (
                    "exited" if proc.poll() is not None else f"not listening within {self._ready_seconds:g} s"
                )
                raise StackError(f"the console {why}", f"--- console, log {log}:\n{tail_lines(log)}")
            await self._clock.sleep(CONSOLE_POLL_SECONDS)

    def _spawn(self, spec: layout.ServiceSpec, shared: layout.StackEnv) -> None:
        log = layout.log_path(self.data_dir, spec.name)
        env = {**layout.service_env(spec, shared, os.environ), **self._env_overrides.get(spec.name, {})}
        proc = spawn_module(spec.module, env, log, self.data_dir)
        self._services.append(_Service(spec, proc, ref_of(proc.pid), log))

    async def restart(self, name: str) -> None:
        """Start service ``name`` again after its process died (e.g. killed by a test); wait until SERVING.

        ``stack.json`` is rewritten with the new process.
        """
        old = next((s for s in self._services if s.spec.name == name), None)
        if self._shared is None or old is None:
            raise StackError(f"no started service {name!r} to restart")
        if old.proc.poll() is None:
            raise StackError(f"{name} is still running (pid {old.proc.pid})")
        self._services.remove(old)
        self._spawn(old.spec, self._shared)
        await self._wait_ready()
        stackfile.save(self.data_dir, self._state(self._detached))

    def exited(self) -> list[str]:
        """Names of started processes that have exited (a healthy stack has none)."""
        dead = [s.spec.name for s in self._services if s.proc.poll() is not None]
        if self._console is not None and self._console.proc.poll() is not None:
            dead.append(layout.CONSOLE)
        return dead + [srv.name for srv in self._infra if srv.pid is None]

    async def _wait_ready(self) -> None:
        targets = {layout.address(self.base_port, s.spec): s for s in self._services}

        def give_up() -> str | None:
            dead = self.exited()
            return f"exited: {', '.join(dead)}" if dead else None

        try:
            await wait_serving(list(targets), self._ready_seconds, clock=self._clock, give_up=give_up)
        except HealthTimeout as exc:
            dead = set(self.exited())
            failing = [
                s
                for t, s in targets.items()
                if (s.spec.name in dead if dead else exc.statuses.get(t) != "SERVING")
            ]
            tails = "\n".join(
                f"--- {s.spec.name} ({exc.statuses.get(layout.address(self.base_port, s.spec))}), "
                f"log {s.log}:\n{tail_lines(s.log)}"
                for s in failing
            )
            reason = exc.statuses.get("give_up") or f"not SERVING within {self._ready_seconds:g} s"
            names = ", ".join(s.spec.name for s in failing)
            raise StackError(f"stack not ready ({reason}): {names}", tails) from None

    def _state(self, detached: bool) -> StackState:
        procs = [
            ProcEntry(
                name=s.spec.name,
                kind=KIND_SERVICE,
                pid=s.ref.pid,
                start_ticks=s.ref.start_ticks,
                address=layout.address(self.base_port, s.spec),
                metrics_port=s.spec.metrics_port(self.base_port),
                log=str(s.log),
            )
            for s in self._services
        ]
        if self._console is not None:
            c = self._console
            url = layout.console_url(self.base_port)
            procs.append(
                ProcEntry(layout.CONSOLE, KIND_CONSOLE, c.ref.pid, c.ref.start_ticks, url, None, str(c.log))
            )
        for server in self._infra:
            pid = server.pid
            if pid is None:
                raise StackError(f"{server.name} exited", tail_lines(server.log_path))
            ref = ref_of(pid)
            procs.append(
                ProcEntry(
                    server.name, KIND_INFRA, pid, ref.start_ticks, server.url, None, str(server.log_path)
                )
            )
        return StackState(
            data_dir=str(self.data_dir),
            base_port=self.base_port,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            meshctl_pid=os.getpid(),
            detached=detached,
            processes=procs,
        )

    async def stop(self) -> list[str]:
        """Stop the services (gracefully, then killed), then Redis and NATS; returns names still running."""
        services, self._services = self._services, []
        console, self._console = self._console, None
        refs = [s.ref for s in services] + ([console.ref] if console else [])
        left = await terminate(refs, SERVICE_GRACE_SECONDS, self._clock)
        for s in services:
            s.proc.poll()  # reap
        if console is not None:
            console.proc.poll()
        infra, self._infra = self._infra, []
        for server in reversed(infra):
            await asyncio.to_thread(server.stop, INFRA_GRACE_SECONDS)
        left_pids = {r.pid for r in left}
        return [s.spec.name for s in services if s.ref.pid in left_pids]


async def stop_recorded(state: StackState, clock: Clock) -> list[ProcEntry]:
    """Stop a stack known only from its ``stack.json``: services first, then Redis/NATS.

    Returns the processes still running afterwards (none when all went well).
    """
    services = [p for p in state.processes if p.kind in (KIND_SERVICE, KIND_CONSOLE) and p.running()]
    left = await terminate([p.ref for p in services], SERVICE_GRACE_SECONDS, clock)
    infra = [p for p in state.infra() if p.running()]
    left += await terminate([p.ref for p in infra], INFRA_GRACE_SECONDS, clock)
    if not [p for p in state.processes if p.running()]:
        for rel in INFRA_PID_FILES:
            (Path(state.data_dir) / rel).unlink(missing_ok=True)
    left_pids = {r.pid for r in left}
    return [p for p in state.processes if p.pid in left_pids]
