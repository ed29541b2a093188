"""A coordinator replica as a child process (``python -m coordinator``), for crash tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from meshctl.stack.embedded import free_port, log_tail
from meshkit.rpc.health import wait_serving
from tests.integration.creds import ENV as CREDENTIALS_ENV

START_SECONDS = 30.0


class CoordinatorProcess:
    """``python -m coordinator`` configured through ``MESH_*`` variables, logging to ``log_path``."""

    def __init__(
        self,
        db_url: str,
        log_path: Path,
        *,
        nats_url: str | None = None,
        replica: str = "",
        port: int | None = None,
        **section: object,
    ) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
        env.update(
            {
                "MESH_SERVER__HOST": "127.0.0.1",
                "MESH_SERVER__PORT": str(self.port),
                "MESH_SERVER__GRACE_SECONDS": "0.5",
                "MESH_DB__URL": db_url,
                "MESH_NATS__ENABLED": "true" if nats_url else "false",
                "MESH_NATS__URL": nats_url or "nats://127.0.0.1:1",
                "MESH_LOG__LEVEL": "INFO",
                "MESH_COORDINATOR__REPLICA_ID": replica,
                "MESH_COORDINATOR__RETRY_INTERVAL_SECONDS": "0.05",
                "MESH_COORDINATOR__MAX_RETRY_INTERVAL_SECONDS": "0.5",
                "MESH_COORDINATOR__REQUEST_TIMEOUT_SECONDS": "1",
                "MESH_COORDINATOR__LEASE_SECONDS": "0.5",
                "MESH_COORDINATOR__SWEEP_INTERVAL_SECONDS": "0.2",
                **CREDENTIALS_ENV,
            }
        )
        env.update({f"MESH_COORDINATOR__{k.upper()}": str(v) for k, v in section.items()})
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process (without waiting for it to serve)."""
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "coordinator"],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self._proc

    async def start(self) -> CoordinatorProcess:
        """Start and wait until it answers health checks with SERVING."""
        proc = self.spawn()

        def exited() -> str | None:
            code = proc.poll()
            return None if code is None else f"coordinator exited with {code}: {log_tail(self.log_path)}"

        await wait_serving([self.address], START_SECONDS, give_up=exited)
        return self

    async def exit_code(self, within: float) -> int | None:
        """The process's exit code once it exits, or None if it still runs after ``within`` seconds."""
        deadline = time.monotonic() + within
        while self._proc is not None and time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.1)
        return None if self._proc is None else self._proc.poll()

    def kill9(self) -> None:
        """``kill -9``: no chance to clean up."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM and wait (kill -9 if it does not stop in time)."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill9()
