"""Run stock_svc: ``python -m stock_svc [--config settings.yaml]`` (``MESH_*`` environment wins)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from meshkit.rpc.server import MeshServer, boot
from meshkit.runtime.store_probe import redis_check, sql_check, watch_stores
from meshkit.settings.failfast import run_service
from stock_svc.config import StockSettings
from stock_svc.runtime import PROTECTED, SCHEMA, SERVICE_NAME, StockRuntime


async def serve(settings: StockSettings) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully (server first, then Redis and the database).

    Health is NOT_SERVING while Redis or the database does not answer.
    """
    registry = CollectorRegistry()
    runtime = await StockRuntime.start(settings, registry=registry)
    server = MeshServer(
        settings, "stock_svc", [runtime.register], [SERVICE_NAME], protected=PROTECTED, registry=registry
    )
    watch_stores(server, [redis_check(runtime.redis), sql_check(runtime.db)], runtime.clock)
    server.add_stop_hook(runtime.stop)
    await server.run()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m stock_svc``."""
    settings = boot(StockSettings, "stock_svc", argv, schema=SCHEMA)
    run_service("stock_svc", serve(settings))


if __name__ == "__main__":
    main()
