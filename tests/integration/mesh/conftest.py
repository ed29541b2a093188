"""A whole local stack (the ``meshctl up`` launcher: Redis, NATS, coordinator, four services) per module.

The coordinator retries fast here (short backoff, frequent sweeps) so recoveries finish in seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshctl.audit.clients import MeshAddresses, MeshClients
from meshctl.stack import layout, stackfile
from meshctl.stack.endpoints import TOKEN_FILE
from meshctl.stack.launcher import StackLauncher, free_base_port
from meshctl.stack.procs import tail_lines
from meshctl.stack.stackfile import StackState
from meshkit.runtime.clock import SystemClock
from tests.integration.creds import stack_auth

FAST_COORDINATOR = {
    "MESH_COORDINATOR__RETRY_INTERVAL_SECONDS": "0.2",
    "MESH_COORDINATOR__MAX_RETRY_INTERVAL_SECONDS": "2",
    "MESH_COORDINATOR__SWEEP_INTERVAL_SECONDS": "1",
}


@dataclass
class Mesh:
    """A running stack, its launcher and clients for every service."""

    launcher: StackLauncher
    state: StackState
    clients: MeshClients

    @property
    def data_dir(self) -> Path:
        """The stack's data directory."""
        return self.launcher.data_dir

    def pid(self, service: str) -> int:
        """The pid ``service`` runs with now (restarts included)."""
        return next(p.pid for p in self.launcher_state().services() if p.name == service)

    def launcher_state(self) -> StackState:
        """The stack as its ``stack.json`` records it now (rewritten by a restart)."""
        state = stackfile.load(self.data_dir)
        assert state is not None
        return state

    def logs(self, lines: int = 30) -> str:
        """The tail of every service log, for failure messages."""
        return "\n".join(
            f"--- {spec.name}:\n{tail_lines(layout.log_path(self.data_dir, spec.name), lines)}"
            for spec in layout.SERVICES
        )


@pytest.fixture(scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    """A whole stack for the module's tests, stopped afterwards."""
    launcher = StackLauncher(
        tmp_path_factory.mktemp("mesh"),
        free_base_port(),
        SystemClock(),
        env_overrides={"coordinator": FAST_COORDINATOR},
    )
    state = await launcher.start(detached=True)
    clients = MeshClients(
        MeshAddresses.from_stack(state),
        (launcher.data_dir / TOKEN_FILE).read_text().strip(),
        stack_auth(launcher.data_dir),
    )
    try:
        yield Mesh(launcher, state, clients)
    finally:
        await clients.close()
        await launcher.stop()
