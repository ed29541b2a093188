"""Service processes that must not start: one line on stderr naming the problem, exit code 2, no traceback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from meshctl.stack.embedded import free_port
from tests.integration.creds import ADMIN_TOKEN, MESH_SECRET
from tests.integration.processes import spawn_module, wait_module_serving

EXIT_SECONDS = 60.0
SECRETS = {"MESH_ADMIN__TOKEN": ADMIN_TOKEN, "MESH_AUTH__MESH_SECRET": MESH_SECRET}


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """A clean environment (no MESH_*, not in Kubernetes) plus a free port, a SQLite file and ``settings``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MESH_") and k != "KUBERNETES_SERVICE_HOST"
    }
    env.update(
        {
            "MESH_SERVER__HOST": "127.0.0.1",
            "MESH_SERVER__PORT": str(free_port()),
            "MESH_SERVER__GRACE_SECONDS": "0.5",
            "MESH_DB__URL": f"sqlite+aiosqlite:///{tmp_path / 'svc.db'}",
            "MESH_NATS__ENABLED": "false",
            **settings,
        }
    )
    return env


def _refused(module: str, env: dict[str, str]) -> str:
    """Run ``python -m module``; assert it exits 2 with one line on stderr and return that line."""
    done = subprocess.run(
        [sys.executable, "-m", module],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=EXIT_SECONDS,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{module}: ")
    return lines[0]


def test_empty_admin_token_stops_stock_svc(tmp_path: Path) -> None:
    env = _env(tmp_path, MESH_AUTH__MESH_SECRET=MESH_SECRET)
    line = _refused("stock_svc", env)
    assert "refusing to start: empty admin.token (MESH_ADMIN__TOKEN)" in line
    assert "mesh_secret" not in line


def test_empty_mesh_secret_stops_the_coordinator(tmp_path: Path) -> None:
    env = _env(tmp_path, MESH_ADMIN__TOKEN=ADMIN_TOKEN)
    line = _refused("coordinator", env)
    assert "refusing to start: empty auth.mesh_secret (MESH_AUTH__MESH_SECRET)" in line


def test_empty_callback_secret_stops_pay_svc(tmp_path: Path) -> None:
    line = _refused("pay_svc", _env(tmp_path, **SECRETS))
    assert "refusing to start: empty pay.callback_secret (MESH_PAY__CALLBACK_SECRET)" in line


def test_sqlite_inside_kubernetes_stops_points_svc(tmp_path: Path) -> None:
    env = _env(tmp_path, **SECRETS, KUBERNETES_SERVICE_HOST="127.0.0.1")
    line = _refused("points_svc", env)
    assert "db.url is SQLite inside Kubernetes" in line
    assert not (tmp_path / "svc.db").exists()  # refused before anything touched the database


def test_bad_db_url_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    env = _env(tmp_path, **SECRETS, MESH_DB__URL="mysql+aiomysql://mesh:hunter2@127.0.0.1:33o6/mesh")
    line = _refused("points_svc", env)
    assert "db.url: " in line
    assert "hunter2" not in line


def test_bad_redis_url_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    line = _refused("stock_svc", _env(tmp_path, **SECRETS, MESH_REDIS__URL="127.0.0.1:6379"))
    assert "redis.url: scheme must be redis, rediss or unix" in line


async def test_dev_flag_lets_points_svc_start_without_secrets(tmp_path: Path) -> None:
    env = _env(tmp_path, MESH_DEV__ALLOW_INSECURE="true", KUBERNETES_SERVICE_HOST="127.0.0.1")
    log_path = tmp_path / "points.log"
    proc = await spawn_module("points_svc", env, log_path)
    try:
        address = f"127.0.0.1:{env['MESH_SERVER__PORT']}"
        statuses = await wait_module_serving(proc, address, log_path, EXIT_SECONDS)
        assert set(statuses.values()) == {"SERVING"}
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), EXIT_SECONDS) == 0
