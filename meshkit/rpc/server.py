"""The gRPC server bootstrap every saga-mesh process uses.

A :class:`MeshServer` is a ``grpc.aio`` server with health and reflection, the interceptor chain of
:mod:`meshkit.rpc.interceptors`, a request size limit, Prometheus metrics on their own HTTP port, and a
graceful stop on SIGTERM/SIGINT (health ``NOT_SERVING`` first, calls still served for
``server.drain_seconds`` so load balancers and clients move away, then in-flight calls get
``server.grace_seconds`` to finish). :func:`boot` is the common start of every ``__main__``: parse
``--config``, load the settings, set up logging.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from meshkit.infra.migrate import Schema
from meshkit.infra.migrate_cli import check_command, migrate_command
from meshkit.observability.logging import setup_logging
from meshkit.observability.metrics import MetricsEndpoint, RpcMetrics, register_process_collectors
from meshkit.observability.tracing import Tracing
from meshkit.rpc.auth import Gate, Protected
from meshkit.rpc.interceptors import default_interceptors
from meshkit.runtime.clock import Clock, SystemClock
from meshkit.settings.config import ConfigError, MeshSettings, ServerSettings, load_settings, log_settings
from meshkit.settings.failfast import StartupRefused, refuse_insecure

log = logging.getLogger(__name__)

Registration = Callable[[grpc.aio.Server], None]
StopHook = Callable[[], Awaitable[None]]
S = TypeVar("S", bound=MeshSettings)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Health name of the process itself, SERVING from start to stop whatever its stores do: a liveness
# probe asks it, so a store outage takes replicas out of rotation (readiness) without restarting them.
LIVENESS_SERVICE = "liveness"


def bind_address(host: str, port: int) -> str:
    """``host:port`` for binding, bracketing a bare IPv6 host."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


class MeshServer:
    """A process's gRPC server with health, reflection, interceptors, metrics and graceful stop.

    ``protected`` maps the full method paths that need credentials to the ones they accept
    (:mod:`meshkit.rpc.auth`); every other method is open.
    """

    def __init__(
        self,
        settings: MeshSettings,
        service_name: str,
        registrations: Sequence[Registration],
        service_full_names: Sequence[str],
        *,
        registry: CollectorRegistry | None = None,
        protected: Protected | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock or SystemClock()
        self._gate = Gate(protected or {}, settings.auth, settings.admin.token.get_secret_value())
        self.service_name = service_name
        self.registry = registry if registry is not None else CollectorRegistry()
        register_process_collectors(self.registry)
        self.metrics = RpcMetrics(self.registry)
        self.tracing = Tracing(settings.tracing, service_name) if settings.tracing.enabled else None
        self._registrations = list(registrations)
        self._service_names = list(service_full_names)
        self._health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._endpoint: MetricsEndpoint | None = None
        self._stop_hooks: list[StopHook] = []
        self._stopped = asyncio.Event()
        self._stop_task: asyncio.Task[None] | None = None
        self.port = 0
        self.metrics_port = 0

    @property
    def health(self) -> health.aio.HealthServicer:
        """The health servicer (e.g. to mark a service ``NOT_SERVING`` while a dependency is down)."""
        return self._health

    def add_stop_hook(self, hook: StopHook) -> None:
        """Run ``hook`` after the server stopped (close pools, stop background tasks), in order added."""
        self._stop_hooks.append(hook)

    def _build(self) -> grpc.aio.Server:
        cfg = self.settings.server
        server = grpc.aio.server(
            interceptors=default_interceptors(
                self.metrics, cfg.default_deadline_seconds, self._gate, self.tracing
            ),
            options=server_options(cfg),
        )
        for register in self._registrations:
            register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )
        return server

    async def _set_health(self, status: int) -> None:
        for name in ["", *self._service_names]:
            await self._health.set(name, status)

    async def set_serving(self, serving: bool) -> None:
        """Mark every service SERVING or NOT_SERVING (a store probe does); no effect once stopping."""
        await self._set_health(SERVING if serving else NOT_SERVING)

    async def start(self) -> int:
        """Bind ``server.host:server.port``, start serving, mark every service SERVING; returns the port."""
        if self._server is not None:
            raise RuntimeError("server already started")
        cfg = self.settings.server
        log_settings(self.settings, log)
        await self._set_health(NOT_SERVING)
        server = self._build()
        self.port = server.add_insecure_port(bind_address(cfg.host, cfg.port))
        if cfg.metrics_port:
            self._endpoint = MetricsEndpoint(self.registry, cfg.host, cfg.metrics_port)
            self.metrics_port = self._endpoint.start()
        await server.start()
        self._server = server
        await self._set_health(SERVING)
        await self._health.set(LIVENESS_SERVICE, SERVING)
        log.info(
            "%s serving on %s",
            self.service_name,
            bind_address(cfg.host, self.port),
            extra={"service": self.service_name, "port": self.port, "metrics_port": self.metrics_port},
        )
        return self.port

    async def stop(self, grace: float | None = None, drain: float | None = None) -> None:
        """Stop gracefully: health NOT_SERVING, drain, refuse new calls, let in-flight ones finish.

        ``drain`` (calls still served while health says NOT_SERVING) defaults to
        ``server.drain_seconds`` when ``grace`` is not given either, else to 0: an explicit grace is a
        stop now. Safe to call more than once and concurrently; every caller returns once the stop is
        complete.
        """
        if self._stop_task is None:
            if drain is None:
                drain = self.settings.server.drain_seconds if grace is None else 0.0
            self._stop_task = asyncio.ensure_future(self._do_stop(grace, drain))
        await asyncio.shield(self._stop_task)

    async def _do_stop(self, grace: float | None, drain: float) -> None:
        seconds = self.settings.server.grace_seconds if grace is None else grace
        log.info("%s stopping (drain %.1fs, grace %.1fs)", self.service_name, drain, seconds)
        await self._health.enter_graceful_shutdown()
        try:
            if drain > 0:
                # Health checkers (kubelet, clients) see NOT_SERVING and move away; calls are still served.
                await self._clock.sleep(drain)
            if self._server is not None:
                await self._server.stop(seconds)
            if self._endpoint is not None:
                await asyncio.to_thread(self._endpoint.stop)
            for hook in self._stop_hooks:
                try:
                    await hook()
                except Exception:
                    log.exception("stop hook %r failed", hook)
            if self.tracing is not None:  # the spans still buffered go out now
                await asyncio.to_thread(self.tracing.shutdown)
        finally:
            self._stopped.set()
            log.info("%s stopped", self.service_name)

    async def wait_for_termination(self) -> None:
        """Return once :meth:`stop` has completed (by a call or a signal)."""
        await self._stopped.wait()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT start a graceful :meth:`stop`; a second signal gets the default action."""
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("received %s", sig.name)
        loop = asyncio.get_running_loop()
        for installed in STOP_SIGNALS:
            loop.remove_signal_handler(installed)
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._do_stop(None, self.settings.server.drain_seconds))

    async def run(self) -> None:
        """Start, stop gracefully on SIGTERM/SIGINT, return when stopped."""
        await self.start()
        self.install_signal_handlers()
        await self.wait_for_termination()


def server_options(cfg: ServerSettings) -> list[tuple[str, int]]:
    """The ``grpc.aio.server`` options of ``cfg``: request size, exclusive port, connection age."""
    options = [
        ("grpc.max_receive_message_length", cfg.max_request_bytes),
        # gRPC sets SO_REUSEPORT on Linux: a second process could then bind a live one's port
        # and share its calls. A port belongs to one process (the coordinator relies on it).
        ("grpc.so_reuseport", 0),
    ]
    if cfg.max_connection_age_seconds > 0:
        # Clients reconnect (and re-resolve DNS) now and then, so new replicas get their share.
        age_ms = round(cfg.max_connection_age_seconds * 1000)
        options += [
            ("grpc.max_connection_age_ms", age_ms),
            ("grpc.max_connection_age_grace_ms", round(cfg.grace_seconds * 1000)),
        ]
    return options


def parse_args(prog: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``[serve|migrate] [--config PATH]`` of a service process."""
    parser = argparse.ArgumentParser(prog=prog, description=f"run the {prog} gRPC server")
    parser.add_argument(
        "command",
        nargs="?",
        choices=["serve", "migrate"],
        default="serve",
        help="serve (default), or migrate: run this process's database migrations and exit",
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML settings file (MESH_* env wins)")
    return parser.parse_args(argv)


def boot(settings_cls: type[S], prog: str, argv: Sequence[str] | None = None, *, schema: Schema = ()) -> S:
    """Common start of a service ``__main__``: arguments, settings, logging. Exits 2 on bad settings.

    Serving also exits 2 on insecure settings (:mod:`meshkit.settings.failfast`).

    ``prog migrate`` runs the migrations of ``schema`` (the process's components) and exits; serving
    with ``db.migrate_on_start`` off exits 1 when the schema lacks a revision of this build.
    """
    args = parse_args(prog, argv)
    try:
        settings = load_settings(settings_cls, args.config)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(settings.log)
    if args.command == "migrate":
        if not schema:
            print(f"{prog}: this process has no database migrations", file=sys.stderr)
            raise SystemExit(2)
        raise SystemExit(migrate_command(settings, schema, prog))
    if schema and not settings.db.migrate_on_start and check_command(settings, schema, prog):
        raise SystemExit(1)  # the schema lacks a revision of this build: migrate first
    try:
        refuse_insecure(settings, os.environ)
    except StartupRefused as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return settings
