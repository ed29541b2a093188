"""Run the coordinator: ``python -m coordinator [--config settings.yaml]`` (``MESH_*`` environment wins)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from coordinator.config import CoordinatorSettings
from coordinator.runtime import CoordinatorRuntime
from meshkit.server import MeshServer, boot
from meshpb.coordinator.v1 import coordinator_pb2

COORDINATOR_SERVICE = coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"].full_name
ADMIN_SERVICE = coordinator_pb2.DESCRIPTOR.services_by_name["Admin"].full_name


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
    )
    server.add_stop_hook(runtime.stop)
    await server.run()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m coordinator``."""
    settings = boot(CoordinatorSettings, "coordinator", argv)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
