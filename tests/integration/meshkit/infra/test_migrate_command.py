"""``python -m <process> migrate`` and the refusal to serve a schema that is not current (real processes)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc.aio
import pytest

from meshctl.stack.embedded import free_port
from meshkit.rpc.health import check_health

PROCESSES = ["coordinator", "order_svc", "stock_svc", "pay_svc", "points_svc"]
ROOT = Path(__file__).resolve().parents[4]


def environment(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env.update(
        MESH_DB__URL=db_url,
        MESH_ADMIN__TOKEN="admin-token-for-tests",
        MESH_AUTH__MESH_SECRET="mesh-secret-for-tests",
        MESH_PAY__CALLBACK_SECRET="callback-secret-for-tests",
        MESH_NATS__ENABLED="false",
        MESH_LOG__JSON="false",
        **extra,
    )
    return env


def run(process: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", process, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("process", PROCESSES)
def test_serving_an_unmigrated_database_exits_1_with_one_line(process: str, tmp_path: Path) -> None:
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'mesh.db'}", MESH_DB__MIGRATE_ON_START="false")
    done = run(process, [], env)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{process}: database schema not current: ")
    assert f"python -m {process} migrate" in lines[0]


@pytest.mark.parametrize("process", PROCESSES)
def test_migrate_command_migrates_and_exits_0_twice(process: str, tmp_path: Path) -> None:
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'mesh.db'}")
    first, second = run(process, ["migrate"], env), run(process, ["migrate"], env)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "schema migrated" in first.stderr


def test_migrate_command_reports_an_unreachable_database_in_one_line_without_its_password() -> None:
    port = free_port()
    env = environment(f"mysql+aiomysql://mesh:pw-4a7c@127.0.0.1:{port}/mesh_points")
    done = run("points_svc", ["migrate"], env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("points_svc migrate: ")
    assert "pw-4a7c" not in done.stderr


async def test_a_migrated_database_serves_with_migrate_on_start_off(tmp_path: Path) -> None:
    port = free_port()
    env = environment(
        f"sqlite+aiosqlite:///{tmp_path / 'mesh.db'}",
        MESH_DB__MIGRATE_ON_START="false",
        MESH_SERVER__PORT=str(port),
    )
    assert run("points_svc", ["migrate"], env).returncode == 0
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "points_svc", env=env, cwd=ROOT)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 60)  # the port opens once the schema passed
        assert await check_health(f"127.0.0.1:{port}") == "SERVING"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
