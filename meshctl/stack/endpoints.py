"""Where the CLI finds a service and the admin token.

An address comes from, in order: the command's option (``--coordinator host:port`` ...), the environment
(``MESH_PEERS__COORDINATOR`` ..., the names the services use), the stack recorded by ``meshctl up`` in
``--data-dir``, and finally the default layout (base port 50050). The admin token comes from
``--token``, ``MESH_ADMIN__TOKEN``, or ``<data-dir>/admin.token`` (written by ``meshctl up``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from meshctl.stack import layout, stackfile

TOKEN_FILE = "admin.token"
TOKEN_ENV = "MESH_ADMIN__TOKEN"

# service process name -> key of the ``peers`` settings section
PEER_KEYS: dict[str, str] = {spec.name: key for key, spec in layout.PEERS}


class EndpointError(Exception):
    """An address or token could not be found or is malformed."""


def check_address(address: str, what: str) -> str:
    """``address`` when it looks like ``host:port``; :class:`EndpointError` naming ``what`` otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise EndpointError(f"{what} address {address!r} is not host:port")
    return address


def service_address(
    service: str,
    data_dir: Path,
    explicit: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The ``host:port`` of ``service`` (a process name such as ``coordinator`` or ``order_svc``)."""
    if explicit:
        return check_address(explicit, service)
    env = os.environ if environ is None else environ
    from_env = env.get(f"MESH_PEERS__{PEER_KEYS[service].upper()}")
    if from_env:
        return check_address(from_env, service)
    state = stackfile.load(data_dir)
    if state is not None:
        for proc in state.services():
            if proc.name == service:
                return proc.address
    spec = next(s for s in layout.SERVICES if s.name == service)
    return layout.address(layout.DEFAULT_BASE_PORT, spec)


def admin_token(data_dir: Path, explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The admin token; :class:`EndpointError` when none is configured anywhere."""
    if explicit:
        return explicit
    env = os.environ if environ is None else environ
    if env.get(TOKEN_ENV):
        return env[TOKEN_ENV]
    path = data_dir / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except OSError:
        token = ""
    if not token:
        raise EndpointError(
            f"no admin token: pass --token, set {TOKEN_ENV}, or point --data-dir at a stack ({path})"
        )
    return token
