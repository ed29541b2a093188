"""``meshctl console``: serve the admin web console for a coordinator (``python -m console`` in a cluster).

Addresses and the admin token are found as for ``meshctl tx`` (options, ``MESH_*`` environment, the
local stack in ``--data-dir``). The cookie key is ``MESH_CONSOLE__SESSION_SECRET`` or, when unset, a
random one for this run (logins end with the process).
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr

from console.config import ConsoleSettings
from console.server import StartError, build_server
from meshctl.exitcodes import ExitCode
from meshctl.stack.endpoints import PEER_KEYS, EndpointError, admin_token, service_address
from meshkit.observability.logging import setup_logging
from meshkit.runtime.clock import SystemClock
from meshkit.settings.config import ConfigError, load_settings


def _settings(
    coordinator: str | None, data_dir: Path, token: str | None, host: str, port: int
) -> ConsoleSettings:
    base = load_settings(ConsoleSettings)
    peers = {
        key: service_address(name, data_dir, coordinator if key == "coordinator" else None)
        for name, key in PEER_KEYS.items()
    }
    secret = base.console.session_secret.get_secret_value() or secrets.token_urlsafe(32)
    return base.model_copy(
        update={
            "peers": base.peers.model_copy(update=peers),
            "admin": base.admin.model_copy(update={"token": SecretStr(admin_token(data_dir, token))}),
            "console": base.console.model_copy(
                update={"host": host, "port": port, "session_secret": SecretStr(secret)}
            ),
        }
    )


def console(
    coordinator: Annotated[
        str | None,
        typer.Option(
            "--coordinator", help="host:port (default: MESH_PEERS__COORDINATOR or --data-dir's stack)"
        ),
    ] = None,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="HTTP port")] = 8080,
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="the local stack's directory (addresses and admin.token)")
    ] = Path(".mesh"),
    token: Annotated[
        str | None,
        typer.Option("--token", help="admin token (default: MESH_ADMIN__TOKEN or <data-dir>/admin.token)"),
    ] = None,
) -> None:
    """Serve the admin web console (log in with the admin token); Ctrl-C stops it."""
    try:
        settings = _settings(coordinator, data_dir, token, host, port)
        setup_logging(settings.log)
        server = build_server(settings, SystemClock())
    except (EndpointError, ConfigError, StartError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    typer.echo(f"console: http://{host}:{port}/ (coordinator {settings.peers.coordinator})", err=True)
    asyncio.run(server.serve())


def register(app: typer.Typer) -> None:
    """Add ``console`` to ``app``."""
    app.command("console")(console)
