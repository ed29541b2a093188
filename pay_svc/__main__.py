"""Run pay_svc: ``python -m pay_svc [--config settings.yaml]`` (``MESH_*`` environment wins)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from meshkit.rpc.server import MeshServer, boot
from meshkit.runtime.store_probe import sql_check, watch_stores
from pay_svc.config import PaySettings
from pay_svc.runtime import PROTECTED, SCHEMA, SERVICE_NAME, PayRuntime

__all__ = ["SERVICE_NAME", "main", "serve"]


async def serve(settings: PaySettings) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully."""
    registry = CollectorRegistry()
    runtime = await PayRuntime.start(settings, registry=registry)
    server = MeshServer(
        settings, "pay_svc", [runtime.register], [SERVICE_NAME], protected=PROTECTED, registry=registry
    )
    watch_stores(server, [sql_check(runtime.db)], runtime.clock)
    server.add_stop_hook(runtime.stop)
    try:
        port = await server.start()
    except BaseException:
        await runtime.stop()
        raise
    runtime.bind(port)
    server.install_signal_handlers()
    await server.wait_for_termination()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m pay_svc``."""
    settings = boot(PaySettings, "pay_svc", argv, schema=SCHEMA)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
