"""Prometheus metrics of a process: one :class:`CollectorRegistry` per process, passed around explicitly.

:class:`RpcMetrics` holds the server-side RPC metrics (``mesh_rpc_server_handled_total`` and
``mesh_rpc_server_handling_seconds``); other components register their own metrics (e.g. the
coordinator's ``mesh_tx_total``) on the same registry, which :class:`MetricsEndpoint` serves over HTTP.
"""

from __future__ import annotations

import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app

SHUTDOWN_POLL_SECONDS = 0.05

RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def split_method(full_method: str) -> tuple[str, str]:
    """``"/pkg.Service/Method"`` -> ``("pkg.Service", "Method")``."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service or "unknown", method or "unknown"


class RpcMetrics:
    """Counters and latency histogram of the RPCs this process serves."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.handled = Counter(
            "mesh_rpc_server_handled_total",
            "RPCs completed on the server, by final status code.",
            ("service", "method", "code"),
            registry=registry,
        )
        self.handling_seconds = Histogram(
            "mesh_rpc_server_handling_seconds",
            "Time the server took to handle an RPC.",
            ("service", "method"),
            buckets=RPC_BUCKETS,
            registry=registry,
        )
        # (full method, code) -> the labelled children; looking labels up costs more than the update.
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def observe(self, full_method: str, code: str, seconds: float) -> None:
        """Record one finished call."""
        children = self._children.get((full_method, code))
        if children is None:
            service, method = split_method(full_method)
            children = (
                self.handled.labels(service=service, method=method, code=code),
                self.handling_seconds.labels(service=service, method=method),
            )
            self._children[(full_method, code)] = children
        handled, handling_seconds = children
        handled.inc()
        handling_seconds.observe(seconds)


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
