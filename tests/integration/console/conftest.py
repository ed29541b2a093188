"""A real stack with its console (the ``meshctl up`` launcher), and headless Debian chromium.

The browser tests are skipped only when ``/usr/bin/chromium`` is missing (``.ci/run`` installs it).
"""

from __future__ import annotations

import io
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc.aio
import pytest
from playwright.async_api import async_playwright
from rich.console import Console as RichConsole

from meshctl.audit.clients import MeshAddresses, MeshClients
from meshctl.demo.narrate import Narrator
from meshctl.demo.story import DemoStory
from meshctl.stack.endpoints import TOKEN_FILE
from meshctl.stack.launcher import StackLauncher, free_base_port
from meshkit.rpc.auth import mesh_channel
from meshkit.runtime.clock import SystemClock
from meshpb.coordinator.v1 import coordinator_pb2_grpc
from tests.integration.creds import stack_auth
from tests.integration.mesh.conftest import FAST_COORDINATOR

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The live pages refresh every second; the stuck page lists flagged transactions only.
FAST_CONSOLE = {"MESH_CONSOLE__REFRESH_SECONDS": "1", "MESH_CONSOLE__STUCK_MIN_ATTEMPTS": "0"}
DOCS_SHOTS = Path(__file__).resolve().parents[3] / "docs" / "console"
# The committed screenshots change only on purpose (`make screenshots`); other runs write them aside.
SHOTS = (
    DOCS_SHOTS
    if os.environ.get("MESH_UPDATE_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / f"saga-mesh-console-shots-{os.getuid()}"
)
SHOTS.mkdir(parents=True, exist_ok=True)

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
)


@dataclass
class Stack:
    """The running stack, its admin token, and mesh-credentialed stubs to set transactions up."""

    launcher: StackLauncher
    console_url: str
    token: str
    coordinator_address: str
    channel: grpc.aio.Channel
    admin_channel: grpc.aio.Channel
    coordinator: Any  # CoordinatorAsyncStub (mesh credentials)
    admin: Any  # AdminAsyncStub (admin token)


@dataclass
class Console:
    """The console serving ``stack`` at ``url``."""

    url: str
    stack: Stack


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """A whole stack (Redis, NATS, coordinator, four services) for the module."""
    launcher = StackLauncher(
        tmp_path_factory.mktemp("console-mesh"),
        free_base_port(),
        SystemClock(),
        env_overrides={"coordinator": FAST_COORDINATOR, "console": FAST_CONSOLE},
        with_console=True,
    )
    state = await launcher.start(detached=True)
    address = MeshAddresses.from_stack(state).coordinator
    token = (launcher.data_dir / TOKEN_FILE).read_text().strip()
    channel = mesh_channel(address, stack_auth(launcher.data_dir))
    admin_channel = mesh_channel(address, None, admin_token=token)
    web = state.console()
    assert web is not None
    try:
        yield Stack(
            launcher,
            web.address.rstrip("/"),
            token,
            address,
            channel,
            admin_channel,
            coordinator_pb2_grpc.CoordinatorStub(channel),
            coordinator_pb2_grpc.AdminStub(admin_channel),
        )
    finally:
        await channel.close()
        await admin_channel.close()
        await launcher.stop()


@pytest.fixture(scope="module")
def console(stack: Stack) -> Console:
    """The console ``meshctl up`` started for the stack (``python -m console``)."""
    return Console(stack.console_url, stack)


@pytest.fixture(scope="module")
async def demo_traffic(stack: Stack) -> None:
    """Real orders through the mesh (the ``meshctl demo`` story), so the pages have something to show."""
    addresses = MeshAddresses.for_base_port(stack.launcher.base_port)
    narrator = Narrator(RichConsole(file=io.StringIO()), as_json=True)
    async with MeshClients(addresses, stack.token) as clients:
        story = DemoStory(clients, narrator, SystemClock(), uuid.uuid4().hex[:6])
        assert await story.run(), [s.to_json() for s in narrator.steps if not s.ok]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    """Headless chromium driven by Playwright."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def gid() -> str:
    """A fresh gid per test."""
    return f"console-{uuid.uuid4().hex[:12]}"
