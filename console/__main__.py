"""Run the console: ``python -m console [--config settings.yaml] [--coordinator H:P] [--port N]``.

Settings: defaults < YAML file < ``MESH_*`` environment < these options. The admin token comes from
``admin.token`` (``MESH_ADMIN__TOKEN``), the cookie key from ``console.session_secret``
(``MESH_CONSOLE__SESSION_SECRET``).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from console.admin_client import AdminTarget
from console.app import create_app
from console.config import ConsoleSettings
from meshctl.audit.clients import MeshAddresses
from meshkit.runtime.clock import Clock, SystemClock
from meshkit.runtime.config import ConfigError, load_settings
from meshkit.runtime.logging import setup_logging

PROG = "console"


class StartError(Exception):
    """The console cannot start with these settings (the message says which one)."""


def _address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not host:port")
    return value


def _port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port (0..65535)")
    return int(value)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog=PROG, description="The saga-mesh admin web console.")
    parser.add_argument("--config", type=Path, help="settings YAML (MESH_* environment wins)")
    parser.add_argument(
        "--coordinator", type=_address, help="host:port of the coordinator (peers.coordinator)"
    )
    parser.add_argument("--host", help="address to listen on (console.host)")
    parser.add_argument("--port", type=_port, help="HTTP port (console.port)")
    return parser.parse_args(argv)


def with_options(settings: ConsoleSettings, args: argparse.Namespace) -> ConsoleSettings:
    """``settings`` with the command line's options applied."""
    console = settings.console.model_copy(
        update={k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    )
    peers = settings.peers.model_copy(update={"coordinator": args.coordinator} if args.coordinator else {})
    return settings.model_copy(update={"console": console, "peers": peers})


def session_secret(settings: ConsoleSettings) -> str:
    """The cookie key: configured, or (``dev.allow_insecure`` only) a random one for this process."""
    secret = settings.console.session_secret.get_secret_value()
    if secret:
        return secret
    if settings.dev.allow_insecure:
        return secrets.token_urlsafe(32)
    raise StartError("console.session_secret is empty (MESH_CONSOLE__SESSION_SECRET)")


def build_server(settings: ConsoleSettings, clock: Clock) -> uvicorn.Server:
    """The HTTP server of the console for ``settings`` (not started)."""
    token = settings.admin.token.get_secret_value()
    if not token:
        raise StartError("admin.token is empty (MESH_ADMIN__TOKEN): no one could log in")
    section = settings.console
    target = AdminTarget(settings.peers.coordinator, token, section.rpc_timeout_seconds)
    p = settings.peers
    addresses = MeshAddresses(p.coordinator, p.order, p.stock, p.pay, p.points)
    app = create_app(section, session_secret(settings), target, addresses, clock)
    config = uvicorn.Config(
        app, host=section.host, port=section.port, log_config=None, access_log=False, lifespan="on"
    )
    return uvicorn.Server(config)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m console``."""
    args = parse_args(argv)
    try:
        settings = with_options(load_settings(ConsoleSettings, args.config), args)
        setup_logging(settings.log)
        server = build_server(settings, SystemClock())
    except (ConfigError, StartError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    asyncio.run(server.serve())


if __name__ == "__main__":
    main()
