"""Prometheus metrics of a process: one :class:`CollectorRegistry` per process, passed around explicitly.

:class:`RpcMetrics` holds the server-side RPC metrics (``mesh_rpc_server_handled_total`` and
``mesh_rpc_server_handling_seconds``), :class:`ClientRpcMetrics` the client side ones
(``mesh_rpc_client_handled_total`` / ``mesh_rpc_client_handling_seconds``, recorded by
:class:`meshkit.rpc.client_metrics.ClientMetricsInterceptor`); :func:`register_process_collectors`
adds prometheus_client's process, platform and GC collectors. Other components register their own
metrics (e.g. the coordinator's ``mesh_tx_total``) on the same registry, which :class:`MetricsEndpoint`
serves over HTTP.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    make_wsgi_app,
)

SHUTDOWN_POLL_SECONDS = 0.05

RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Distinct methods labelled per RpcMetrics; later ones count as OTHER_METHOD. Every mesh proto together
# has far fewer, but the coordinator's branch calls go to whatever targets initiators send.
MAX_METHODS = 128
OTHER_METHOD = "other"


def split_method(full_method: str) -> tuple[str, str]:
    """``"/pkg.Service/Method"`` -> ``("pkg.Service", "Method")``."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service or "unknown", method or "unknown"


def register_process_collectors(registry: CollectorRegistry) -> None:
    """Add the process (CPU, memory, fds), platform (Python version) and GC collectors to ``registry``.

    Harmless when they are there already (a registry shared by two servers in one process).
    """
    for make in (ProcessCollector, PlatformCollector, GCCollector):
        try:
            make(registry=registry)
        except ValueError:  # "Duplicated timeseries": registered before
            continue


class RpcMetrics:
    """Counters and latency histogram of the RPCs this process serves (``side="server"``) or makes.

    At most ``max_methods`` distinct methods get their own labels; calls of any further method are
    counted under ``service="other", method="other"``, so callers choosing the method (branch targets)
    cannot grow the series without bound.
    """

    SIDE = "server"
    DOING = "handled on the server"

    def __init__(self, registry: CollectorRegistry, *, max_methods: int = MAX_METHODS) -> None:
        self.registry = registry
        self.max_methods = max_methods
        self.handled = Counter(
            f"mesh_rpc_{self.SIDE}_handled_total",
            f"RPCs completed ({self.DOING}), by final status code.",
            ("service", "method", "code"),
            registry=registry,
        )
        self.handling_seconds = Histogram(
            f"mesh_rpc_{self.SIDE}_handling_seconds",
            f"Time an RPC took ({self.DOING}).",
            ("service", "method"),
            buckets=RPC_BUCKETS,
            registry=registry,
        )
        # full method -> its prebound children; looking labels up costs more than the update.
        self._methods: dict[str, MethodMetrics] = {}
        self._other: MethodMetrics | None = None

    def method(self, full_method: str) -> MethodMetrics:
        """The metrics of one method (``"/pkg.Service/Method"``), made once and then reused.

        Past ``max_methods`` distinct methods, a new one gets the shared ``other`` metrics (not cached).
        """
        found = self._methods.get(full_method)
        if found is None:
            if len(self._methods) >= self.max_methods:
                return self._overflow()
            service, method = split_method(full_method)
            found = MethodMetrics(self, service, method)
            self._methods[full_method] = found
        return found

    def _overflow(self) -> MethodMetrics:
        if self._other is None:
            self._other = MethodMetrics(self, OTHER_METHOD, OTHER_METHOD)
        return self._other

    def observe(self, full_method: str, code: str, seconds: float) -> None:
        """Record one finished call."""
        self.method(full_method).observe(code, seconds)


class ClientRpcMetrics(RpcMetrics):
    """Counters and latency histogram of the RPCs this process makes (mesh channels, branch calls)."""

    SIDE = "client"
    DOING = "made by this process as a client"


class MethodMetrics:
    """One method's labelled children: the histogram's and, per status code, the counter's."""

    def __init__(self, metrics: RpcMetrics, service: str, method: str) -> None:
        self._handled = metrics.handled
        self._labels = {"service": service, "method": method}
        self._observe = metrics.handling_seconds.labels(service=service, method=method).observe
        self._count: dict[str, Callable[[], None]] = {"OK": self._counter("OK")}

    def _counter(self, code: str) -> Callable[[], None]:
        inc: Callable[[], None] = self._handled.labels(code=code, **self._labels).inc
        return inc

    def observe(self, code: str, seconds: float) -> None:
        """Record one finished call that ended with status ``code``."""
        count = self._count.get(code)
        if count is None:
            count = self._count[code] = self._counter(code)
        count()
        self._observe(seconds)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a log line each."""


class MetricsEndpoint:
    """The ``/metrics`` HTTP endpoint of one registry, on its own thread."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one until started)."""
        return self._server.server_port if self._server is not None else self._port

    def start(self) -> int:
        """Start serving; returns the bound port."""
        server = make_server(
            self._host,
            self._port,
            make_wsgi_app(self._registry),
            server_class=_ThreadingServer,
            handler_class=_QuietHandler,
        )
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name=f"metrics:{server.server_port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return server.server_port

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
