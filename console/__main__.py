"""Run the console: ``python -m console [--config settings.yaml] [--coordinator H:P] [--port N]``.

Settings: defaults < YAML file < ``MESH_*`` environment < these options. The admin token comes from
``admin.token`` (``MESH_ADMIN__TOKEN``), the cookie key from ``console.session_secret``
(``MESH_CONSOLE__SESSION_SECRET``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from console.config import ConsoleSettings
from console.server import StartError, build_server
from meshkit.observability.logging import setup_logging
from meshkit.runtime.clock import SystemClock
from meshkit.settings.config import ConfigError, load_settings

PROG = "console"


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
