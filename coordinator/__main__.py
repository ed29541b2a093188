"""Run the coordinator: ``python -m coordinator [--config settings.yaml]`` (``MESH_*`` environment wins)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from coordinator.config import CoordinatorSettings
from coordinator.runtime import ADMIN_SERVICE, COORDINATOR_SERVICE, PROTECTED, CoordinatorRuntime
from meshkit.server import MeshServer, boot

__all__ = ["ADMIN_SERVICE", "COORDINATOR_SERVICE", "main", "serve"]


async def serve(settings: CoordinatorSettings) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully."""
    registry = CollectorRegistry()
    runtime = await CoordinatorRuntime.start(settings, registry)
    server = MeshServer(
        settings,
        "coordinator",
        [runtime.register],
        [COORDINATOR_SERVICE, ADMIN_SERVICE],
        registry=registry,
        protected=PROTECTED,
    )
    server.add_stop_hook(runtime.stop)
    await server.run()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m coordinator``."""
    settings = boot(CoordinatorSettings, "coordinator", argv)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
