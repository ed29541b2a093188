"""Start-up refusals: settings that would run an insecure or fragile process in production.

A process with an empty secret it needs (:meth:`MeshSettings.required_secrets`) or with SQLite inside
Kubernetes does not start, unless ``dev.allow_insecure`` (the local stack, tests) says it may.
``__main__`` (through :func:`meshkit.rpc.server.boot`) passes the environment in as data.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Mapping
from typing import Any

from sqlalchemy.engine import make_url

from meshkit.settings.config import ENV_DELIMITER, ENV_PREFIX, MeshSettings

KUBERNETES_ENV = "KUBERNETES_SERVICE_HOST"
ALLOW = f"dev.allow_insecure=true ({ENV_PREFIX}DEV{ENV_DELIMITER}ALLOW_INSECURE)"


class StartupRefused(Exception):
    """The process must not start; the message is one line fit for stderr."""


def env_name(setting: str) -> str:
    """``MESH_ADMIN__TOKEN`` for ``admin.token``."""
    section, _, key = setting.partition(".")
    return f"{ENV_PREFIX}{section.upper()}{ENV_DELIMITER}{key.upper()}"


def in_kubernetes(environ: Mapping[str, str]) -> bool:
    """True inside a Kubernetes pod (the kubelet sets ``KUBERNETES_SERVICE_HOST`` in every container)."""
    return bool(environ.get(KUBERNETES_ENV))


def uses_sqlite(settings: MeshSettings) -> bool:
    """True when ``db.url`` names an SQLite database."""
    return make_url(settings.db.url).get_backend_name() == "sqlite"


def insecure_problems(settings: MeshSettings, environ: Mapping[str, str]) -> list[str]:
    """What is wrong for production with ``settings`` in the environment ``environ``, one phrase each."""
    problems = []
    empty = [name for name, secret in settings.required_secrets().items() if not secret.get_secret_value()]
    if empty:
        problems.append("empty " + ", ".join(f"{name} ({env_name(name)})" for name in empty))
    if uses_sqlite(settings) and in_kubernetes(environ):
        problems.append("db.url is SQLite inside Kubernetes (a pod's disk dies with it; use MySQL/MariaDB)")
    return problems


def refuse_insecure(settings: MeshSettings, environ: Mapping[str, str]) -> None:
    """Raise :class:`StartupRefused` naming every problem, unless ``dev.allow_insecure`` is on."""
    if settings.dev.allow_insecure:
        return
    problems = insecure_problems(settings, environ)
    if problems:
        raise StartupRefused(f"refusing to start: {'; '.join(problems)} (a dev run may set {ALLOW})")


def run_service(prog: str, main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run(main)``; a :class:`StartupRefused` on the way ends the process: one line, exit 2."""
    try:
        asyncio.run(main)
    except StartupRefused as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
