"""``meshctl console`` as a real process against a real stack: it serves, a login works, pages answer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from meshctl.stack.embedded import free_port
from meshctl.stack.procs import port_taken
from tests.integration.console.conftest import Stack

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def served(stack: Stack) -> Iterator[str]:
    """``meshctl console`` on a free port, pointed at the stack by --coordinator and --data-dir."""
    port = free_port("127.0.0.1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meshctl",
            "console",
            "--coordinator",
            stack.coordinator_address,
            "--port",
            str(port),
            "--data-dir",
            str(stack.launcher.data_dir),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_taken("127.0.0.1", port):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "meshctl console did not listen within 30 s"
            time.sleep(0.1)  # a real process binding its port: nothing to move time for
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_meshctl_console_serves_the_stack_after_a_login(served: str, stack: Stack) -> None:
    with httpx.Client(base_url=served, timeout=10.0) as client:
        assert client.get("/stuck").status_code == 303
        csrf = CSRF_RE.search(client.get("/login").text)
        assert csrf
        reply = client.post(
            "/login",
            data={"csrf_token": csrf.group(1), "name": "carol", "token": stack.token, "next": "/stuck"},
        )
        assert reply.status_code == 303
        page = client.get("/stuck")
        assert page.status_code == 200
        assert "carol (console)" in page.text
        assert client.get("/").status_code == 200
        unknown = client.get("/tx/console-no-such-gid")
        assert unknown.status_code == 404
        assert "NOT_FOUND" in unknown.text
        bad = client.get("/tx/" + "x" * 300)
        assert bad.status_code == 400
        assert "INVALID_ARGUMENT" in bad.text
        assert client.get("/live/tx/console-no-such-gid").status_code == 404


def test_meshctl_console_without_a_token_exits_2(tmp_path: object) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    done = subprocess.run(
        [sys.executable, "-m", "meshctl", "console", "--data-dir", str(tmp_path), "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no admin token" in done.stderr
