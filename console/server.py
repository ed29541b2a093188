"""The console's HTTP server (uvicorn) from its settings: ``python -m console`` and ``meshctl console``."""

from __future__ import annotations

import secrets

import uvicorn

from console.admin_client import AdminTarget
from console.app import create_app
from console.config import ConsoleSettings
from meshctl.audit.clients import MeshAddresses
from meshkit.runtime.clock import Clock


class StartError(Exception):
    """The console cannot start with these settings (the message says which one)."""


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
