"""Run points_svc: ``python -m points_svc [--config settings.yaml]`` (``MESH_*`` environment wins)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from meshkit.rpc.server import MeshServer, boot
from meshkit.runtime.clock import SystemClock
from meshkit.runtime.store_probe import sql_check, watch_stores
from points_svc.config import PointsSettings
from points_svc.runtime import PROTECTED, SCHEMA, SERVICE_NAME, PointsRuntime

__all__ = ["SERVICE_NAME", "main", "serve"]


async def serve(settings: PointsSettings) -> None:
    """Migrate, serve until SIGTERM/SIGINT, then stop gracefully (server first, then the runtime)."""
    registry = CollectorRegistry()
    runtime = await PointsRuntime.start(settings, registry=registry)
    server = MeshServer(
        settings, "points_svc", [runtime.register], [SERVICE_NAME], protected=PROTECTED, registry=registry
    )
    watch_stores(server, [sql_check(runtime.db)], SystemClock())
    server.add_stop_hook(runtime.stop)
    await server.run()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m points_svc``."""
    settings = boot(PointsSettings, "points_svc", argv, schema=SCHEMA)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
