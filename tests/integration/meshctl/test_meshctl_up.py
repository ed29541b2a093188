"""``meshctl up --detach`` / ``status`` / ``down`` as real processes on free 127.0.0.1 ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshctl.exitcodes import ExitCode
from meshctl.stack import layout
from meshctl.stack.launcher import free_base_port
from meshctl.stack.procs import ProcRef, is_running, port_taken
from meshctl.stack.stackfile import load
from meshkit.rpc.health import check_health

SERVICE_NAMES = [s.name for s in layout.SERVICES]


def _meshctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshctl", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _live_procs_in(data_dir: Path) -> list[int]:
    """Pids of live (non-zombie) processes whose working directory is inside ``data_dir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = (entry / "cwd").resolve(strict=True)
        except OSError:
            continue
        if cwd.is_relative_to(data_dir.resolve()) and is_running(ProcRef(int(entry.name), None)):
            found.append(int(entry.name))
    return found


def _refs(data_dir: Path) -> list[ProcRef]:
    state = load(data_dir)
    assert state is not None
    return [p.ref for p in state.processes]


@pytest.fixture
def stack_dir(tmp_path: Path) -> Iterator[Path]:
    """A data directory whose stack (if any) is stopped after the test, whatever happened."""
    data_dir = tmp_path / "mesh"
    yield data_dir
    state = load(data_dir)
    if state is not None and state.running():
        _meshctl("down", "--data-dir", str(data_dir))


def _up(data_dir: Path, base: int) -> subprocess.CompletedProcess[str]:
    return _up_env(data_dir, base, {})


def _up_env(data_dir: Path, base: int, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _meshctl("up", "--base-port", str(base), "--data-dir", str(data_dir), "--detach", env=env)


async def test_up_detach_returns_with_all_five_serving(stack_dir: Path) -> None:
    base = free_base_port()
    done = _up(stack_dir, base)
    assert done.returncode == 0, done.stderr
    for spec in layout.SERVICES:
        assert await check_health(layout.address(base, spec)) == "SERVING", spec.name
    state = load(stack_dir)
    assert state is not None
    assert [p.name for p in state.services()] == SERVICE_NAMES
    assert {p.name for p in state.infra()} == {"redis", "nats"}
    web = state.console()
    assert web is not None
    assert web.address == f"http://127.0.0.1:{base + 80}/"
    assert f"console: {web.address}" in done.stdout
    assert sorted(_live_procs_in(stack_dir)) == sorted(p.pid for p in state.processes)
    assert oct((stack_dir / "admin.token").stat().st_mode & 0o777) == "0o600"
    for name in SERVICE_NAMES:
        assert (stack_dir / "logs" / f"{name}.log").stat().st_size > 0


def test_up_shows_progress_lines_on_stderr_when_not_a_terminal(stack_dir: Path) -> None:
    base = free_base_port()
    done = _up(stack_dir, base)
    assert done.returncode == 0, done.stderr
    steps = [line for line in done.stderr.splitlines() if line.startswith("... ")]
    assert steps[0] == f"... starting a stack in {stack_dir.resolve()}"
    assert any(line.startswith("... starting redis on port ") for line in steps)
    for name in SERVICE_NAMES:
        assert any(line.startswith(f"... starting {name} on 127.0.0.1:") for line in steps), name
    assert "answer SERVING" in steps[-2]
    assert steps[-1] == f"... starting the console on http://127.0.0.1:{base + 80}/"
    quiet = _meshctl("status", "--data-dir", str(stack_dir), "--json")
    assert quiet.returncode == 0
    assert json.loads(quiet.stdout)["healthy"] is True  # stdout stays the result alone


def test_status_json_reports_every_service_serving(stack_dir: Path) -> None:
    base = free_base_port()
    assert _up(stack_dir, base).returncode == 0
    done = _meshctl("status", "--data-dir", str(stack_dir), "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["healthy"] is True
    health = {row["service"]: row["health"] for row in doc["processes"]}
    assert health == {
        **dict.fromkeys(SERVICE_NAMES, "SERVING"),
        "redis": "RUNNING",
        "nats": "RUNNING",
        "console": "RUNNING",
    }
    metrics = {row["service"]: row["metrics"] for row in doc["processes"] if row["kind"] == "service"}
    assert metrics["stock_svc"] == f"http://127.0.0.1:{base + 102}/metrics"


def test_down_leaves_no_process_behind(stack_dir: Path) -> None:
    base = free_base_port()
    assert _up(stack_dir, base).returncode == 0
    refs = _refs(stack_dir)
    assert len(refs) == 8  # five services, the console, redis and nats
    assert all(is_running(r) for r in refs)
    done = _meshctl("down", "--data-dir", str(stack_dir))
    assert done.returncode == 0, done.stderr
    assert [r.pid for r in refs if is_running(r)] == []
    assert _live_procs_in(stack_dir) == []
    assert not (stack_dir / "stack.json").exists()
    assert not any(port_taken(layout.HOST, p) for p in (base, base + 1, base + 2, base + 3, base + 4))


def test_second_up_on_same_dir_refused(stack_dir: Path) -> None:
    base = free_base_port()
    assert _up(stack_dir, base).returncode == 0
    before = _refs(stack_dir)
    again = _up(stack_dir, free_base_port())
    assert again.returncode != 0
    assert "already running" in again.stderr
    assert _refs(stack_dir) == before
    assert all(is_running(r) for r in before)


def test_up_refused_when_a_port_is_taken(stack_dir: Path) -> None:
    base = free_base_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind((layout.HOST, base + 2))
        blocker.listen()
        done = _up(stack_dir, base)
    assert done.returncode != 0
    assert str(base + 2) in done.stderr
    assert load(stack_dir) is None
    assert not (stack_dir / "redis").exists()


def test_down_without_stack_fails_clearly(tmp_path: Path) -> None:
    done = _meshctl("down", "--data-dir", str(tmp_path))
    assert done.returncode == ExitCode.UNAVAILABLE
    assert "no stack is running" in done.stderr


def test_foreground_up_stops_everything_on_sigterm(stack_dir: Path) -> None:
    base = free_base_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshctl", "up", "--base-port", str(base), "--data-dir", str(stack_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while load(stack_dir) is None:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "stack did not come up"
            time.sleep(0.1)
        refs = _refs(stack_dir)
        assert all(is_running(r) for r in refs)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert [r.pid for r in refs if is_running(r)] == []
        assert load(stack_dir) is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_up_with_failing_service_prints_its_log_and_stops_everything(stack_dir: Path) -> None:
    base = free_base_port()
    done = _up_env(stack_dir, base, {"MESH_ORDER__PAY_TIMEOUT_SECONDS": "-1"})
    assert done.returncode == ExitCode.FAILED
    assert "order_svc" in done.stderr
    assert "order.pay_timeout_seconds" in done.stderr  # the tail of order_svc's own log
    assert load(stack_dir) is None
    assert _live_procs_in(stack_dir) == []
