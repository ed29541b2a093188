"""Run the coordinator: ``python -m coordinator [--config settings.yaml]`` (``MESH_*`` environment wins)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from coordinator.config import CoordinatorSettings
from coordinator.runtime import ADMIN_SERVICE, COORDINATOR_SERVICE, SCHEMA, start_replica
from meshkit.rpc.server import boot
from meshkit.runtime.store_probe import sql_check, watch_stores

log = logging.getLogger("coordinator")

__all__ = ["ADMIN_SERVICE", "COORDINATOR_SERVICE", "main", "serve"]


async def serve(settings: CoordinatorSettings) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully; exit 1 if the port is taken."""
    try:
        runtime, server = await start_replica(settings, CollectorRegistry())
    except RuntimeError as exc:
        # Most likely a live replica holds the port (and so this replica id): its leases stay its own.
        log.error("coordinator did not start: %s", exc)
        raise SystemExit(1) from None
    watch_stores(server, [sql_check(runtime.db)], runtime.clock)
    server.install_signal_handlers()
    await server.wait_for_termination()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m coordinator``."""
    settings = boot(CoordinatorSettings, "coordinator", argv, schema=SCHEMA)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
