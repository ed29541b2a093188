"""The credentials of the test mesh: one mesh secret and one admin token every harness shares.

Services under test get :data:`AUTH` and :data:`ADMIN` in their settings (or :data:`ENV` in their
environment); a test client's channel from :func:`trusted_channel` carries both credentials, as the
coordinator and an operator would. A test that wants an unauthenticated caller opens a plain channel.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc.aio
from pydantic import SecretStr

from meshctl.stack.layout import MESH_SECRET_FILE
from meshkit.rpc.auth import AUTH_KEY, auth_header, mesh_channel
from meshkit.settings.config import AdminSettings, AuthSettings

MESH_SECRET = "test-mesh-secret-0123456789"
ADMIN_TOKEN = "test-admin-token-0123456789"
AUTH = AuthSettings(mesh_secret=SecretStr(MESH_SECRET))
ADMIN = AdminSettings(token=SecretStr(ADMIN_TOKEN))
# Test processes run on SQLite, also when the test run itself is inside a (CI) Kubernetes pod.
ENV = {
    "MESH_AUTH__MESH_SECRET": MESH_SECRET,
    "MESH_ADMIN__TOKEN": ADMIN_TOKEN,
    "MESH_DEV__ALLOW_INSECURE": "true",
}


def trusted_channel(address: str) -> grpc.aio.Channel:
    """A channel to ``address`` whose calls carry the mesh credentials and the admin token."""
    return mesh_channel(address, AUTH, admin_token=ADMIN_TOKEN)


def plain_channel(address: str) -> grpc.aio.Channel:
    """A channel without any credential: an outsider's."""
    return grpc.aio.insecure_channel(address)


def auth_item(
    method: str, gid: str = "", *, secret: str = MESH_SECRET, at_ms: int | None = None
) -> tuple[str, str]:
    """An ``x-mesh-auth`` header for ``method`` (full path) and ``gid``, signed now or at ``at_ms``."""
    stamp = int(time.time() * 1000) if at_ms is None else at_ms
    return (AUTH_KEY, auth_header(secret, stamp, method, [gid] if gid else []))


def stack_auth(data_dir: Path) -> AuthSettings:
    """The mesh credentials of a ``meshctl up`` stack in ``data_dir`` (its generated ``mesh.secret``)."""
    return AuthSettings(mesh_secret=SecretStr((data_dir / MESH_SECRET_FILE).read_text().strip()))
