"""A service started as its own process (``python -m <module>``), as in production, for process tests."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from meshctl.stack.embedded import log_tail
from meshkit.rpc.health import wait_serving


async def spawn_module(module: str, env: Mapping[str, str], log_path: Path) -> asyncio.subprocess.Process:
    """``python -m module`` in its own session with ``env``; stdout and stderr appended to ``log_path``."""
    with log_path.open("ab") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def wait_module_serving(
    proc: asyncio.subprocess.Process, address: str, log_path: Path, seconds: float
) -> dict[str, str]:
    """Wait until ``address`` reports SERVING; fails at once (with the log's tail) if ``proc`` exits first."""

    def exited() -> str | None:
        code = proc.returncode
        return (
            None
            if code is None
            else f"the process of {log_path.name} exited with {code}: {log_tail(log_path)}"
        )

    return await wait_serving([address], seconds, give_up=exited)
