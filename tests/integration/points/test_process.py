"""``python -m points_svc`` as a real process: migrates, serves, survives a kill -9, stops on SIGTERM.

The second process runs with a lower ``points.max_amount``: new movements obey it, while the confirm of
a hold made before (larger than the new limit) still goes through.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc.aio

from meshctl.stack.embedded import free_port, log_tail
from meshkit.rpc.health import wait_serving
from meshkit.tx.context import Op
from meshpb.points.v1 import points_pb2_grpc
from tests.integration.creds import ENV as CREDENTIALS_ENV
from tests.integration.creds import trusted_channel
from tests.integration.points.harness import PointsClient, expect_error, tcc

START_SECONDS = 30.0
INVALID = grpc.StatusCode.INVALID_ARGUMENT


class PointsProcess:
    """A points_svc child process configured through ``MESH_*`` variables."""

    def __init__(self, db_url: str, log_path: Path, max_amount: int) -> None:
        self.port = free_port()
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
        env.update(
            {
                "MESH_SERVER__HOST": "127.0.0.1",
                "MESH_SERVER__PORT": str(self.port),
                "MESH_SERVER__GRACE_SECONDS": "0.5",
                "MESH_DB__URL": db_url,
                "MESH_POINTS__MAX_AMOUNT": str(max_amount),
                **CREDENTIALS_ENV,
            }
        )
        self._env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process (without waiting for it to serve)."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "points_svc"],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.proc

    async def start(self) -> PointsProcess:
        """Spawn and wait for SERVING."""
        proc = self.spawn()

        def exited() -> str | None:
            code = proc.poll()
            return None if code is None else f"points_svc exited with {code}: {log_tail(self.log_path)}"

        await wait_serving([f"127.0.0.1:{self.port}"], START_SECONDS, give_up=exited)
        return self

    def signal(self, sig: signal.Signals) -> int:
        """Send ``sig`` and wait for the exit code."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=15)


async def test_points_process_keeps_its_state_across_a_kill_and_stops_on_sigterm(
    tmp_path: Path, user: str, gid: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'points.db'}"
    first = await PointsProcess(url, tmp_path / "points.log", max_amount=1000).start()
    try:
        async with trusted_channel(f"127.0.0.1:{first.port}") as channel:
            client = PointsClient(points_pb2_grpc.PointsStub(channel))
            await client.grant(user, 1000, f"grant-{gid}")
            await client.branch("TryFreeze", tcc(gid, Op.TRY), user, 300, gid)
            details = await expect_error(client.grant(user, 1001, f"grant-{gid}-big"), INVALID)
            assert details.startswith("amount:")
    finally:
        assert first.signal(signal.SIGKILL) == -signal.SIGKILL

    second = await PointsProcess(url, tmp_path / "points.log", max_amount=100).start()
    try:
        async with trusted_channel(f"127.0.0.1:{second.port}") as channel:
            client = PointsClient(points_pb2_grpc.PointsStub(channel))
            assert await client.account(user) == (700, 300)
            await expect_error(client.grant(user, 101, f"grant-{gid}-2"), INVALID)
            await client.branch("ConfirmFreeze", tcc(gid, Op.CONFIRM), user, 300, gid)
            assert await client.account(user) == (700, 0)
            assert (await client.balanced()).spent == 300
    finally:
        assert second.signal(signal.SIGTERM) == 0
