"""The local stack's layout: which services, on which ports, with which environment and files.

Ports (DESIGN.md section 9): coordinator P, order P+1, stock P+2, pay P+3, points P+4, Prometheus
metrics on P+100..P+104, the admin web console (HTTP) on P+80. Files under the data directory D:
``<svc>.db`` (SQLite), ``logs/<svc>.log``, ``admin.token``, ``pay_callback.secret`` and
``console.secret`` (0600, generated once), ``stack.json`` while a stack runs.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
DEFAULT_BASE_PORT = 50050
METRICS_OFFSET = 100
MAX_BASE_PORT = 65535 - METRICS_OFFSET - 4


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service process of the stack."""

    name: str
    offset: int

    @property
    def module(self) -> str:
        """The Python module run with ``python -m``."""
        return self.name

    def port(self, base_port: int) -> int:
        """Its gRPC port."""
        return base_port + self.offset

    def metrics_port(self, base_port: int) -> int:
        """Its Prometheus port."""
        return base_port + METRICS_OFFSET + self.offset


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("coordinator", 0),
    ServiceSpec("order_svc", 1),
    ServiceSpec("stock_svc", 2),
    ServiceSpec("pay_svc", 3),
    ServiceSpec("points_svc", 4),
)

# Keys of the ``peers`` settings section and the service whose address each one names.
PEERS: tuple[tuple[str, ServiceSpec], ...] = (
    ("coordinator", SERVICES[0]),
    ("order", SERVICES[1]),
    ("stock", SERVICES[2]),
    ("pay", SERVICES[3]),
    ("points", SERVICES[4]),
)


# The admin web console (HTTP, ``python -m console``) on P+80; its cookie key in D/console.secret.
CONSOLE = "console"
CONSOLE_OFFSET = 80
CONSOLE_SECRET_FILE = "console.secret"


def planned_ports(base_port: int) -> dict[int, str]:
    """Every port the stack will bind, with what binds it."""
    ports: dict[int, str] = {}
    for spec in SERVICES:
        ports[spec.port(base_port)] = spec.name
        ports[spec.metrics_port(base_port)] = f"{spec.name} metrics"
    ports[console_port(base_port)] = CONSOLE
    return ports


def console_port(base_port: int) -> int:
    """The console's HTTP port."""
    return base_port + CONSOLE_OFFSET


def console_url(base_port: int) -> str:
    """Where a browser opens the console."""
    return f"http://{HOST}:{console_port(base_port)}/"


def address(base_port: int, spec: ServiceSpec) -> str:
    """``host:port`` of a service."""
    return f"{HOST}:{spec.port(base_port)}"


def log_path(data_dir: Path, name: str) -> Path:
    """The log file of a service."""
    return data_dir / "logs" / f"{name}.log"


MESH_SECRET_FILE = "mesh.secret"  # the stack's auth.mesh_secret, next to admin.token


def ensure_secret(path: Path) -> str:
    """The secret stored in ``path``; generated (0600) the first time."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


@dataclass(frozen=True, slots=True)
class StackEnv:
    """What every service of one stack shares."""

    data_dir: Path
    base_port: int
    redis_url: str
    nats_url: str
    admin_token: str
    pay_callback_secret: str
    mesh_secret: str


def service_env(spec: ServiceSpec, shared: StackEnv, base: Mapping[str, str]) -> dict[str, str]:
    """The environment of one service process: ``base`` plus its ``MESH_*`` settings."""
    env = dict(base)
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "MESH_SERVER__HOST": HOST,
            "MESH_SERVER__PORT": str(spec.port(shared.base_port)),
            "MESH_SERVER__METRICS_PORT": str(spec.metrics_port(shared.base_port)),
            "MESH_SERVER__WORKER_ID": str(spec.offset),
            "MESH_DB__URL": f"sqlite+aiosqlite:///{(shared.data_dir / spec.name).resolve()}.db",
            "MESH_REDIS__URL": shared.redis_url,
            "MESH_NATS__URL": shared.nats_url,
            "MESH_LOG__JSON": "true",
            "MESH_ADMIN__TOKEN": shared.admin_token,
            "MESH_AUTH__MESH_SECRET": shared.mesh_secret,
            # SQLite on purpose: a dev stack, also when it runs inside a (CI) Kubernetes pod.
            "MESH_DEV__ALLOW_INSECURE": "true",
        }
    )
    if spec.name == "coordinator":
        # Stable across restarts of the stack on this host: a restart takes its own leases over at once.
        env["MESH_COORDINATOR__REPLICA_ID"] = f"{socket.gethostname()[:40]}:{spec.port(shared.base_port)}"
    else:
        for key, peer in PEERS:
            env[f"MESH_PEERS__{key.upper()}"] = address(shared.base_port, peer)
    if spec.name == "pay_svc":
        env["MESH_PAY__CALLBACK_SECRET"] = shared.pay_callback_secret
        env["MESH_PAY__SIMULATOR_ENABLED"] = "true"  # the local stack plays the gateway
    return env


def console_env(shared: StackEnv, session_secret: str, base: Mapping[str, str]) -> dict[str, str]:
    """The environment of the console process: ``base`` plus its ``MESH_*`` settings."""
    env = dict(base)
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "MESH_CONSOLE__HOST": HOST,
            "MESH_CONSOLE__PORT": str(console_port(shared.base_port)),
            "MESH_CONSOLE__SESSION_SECRET": session_secret,
            "MESH_ADMIN__TOKEN": shared.admin_token,
            "MESH_LOG__JSON": "true",
            "MESH_DEV__ALLOW_INSECURE": "true",
        }
    )
    for key, peer in PEERS:
        env[f"MESH_PEERS__{key.upper()}"] = address(shared.base_port, peer)
    return env
