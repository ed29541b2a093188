"""Run stock_svc: ``python -m stock_svc [--config settings.yaml]`` (``MESH_*`` environment wins)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc.aio

from meshkit.server import MeshServer, boot
from meshpb.stock.v1 import stock_pb2, stock_pb2_grpc
from stock_svc.config import StockSettings

SERVICE_NAME = stock_pb2.DESCRIPTOR.services_by_name["Stock"].full_name


def register(server: grpc.aio.Server) -> None:
    """Add the Stock servicer to ``server``.

    Until the service is implemented this is the generated base servicer, which answers
    ``UNIMPLEMENTED`` for every RPC.
    """
    servicer = stock_pb2_grpc.StockServicer()  # type: ignore[abstract]
    stock_pb2_grpc.add_StockServicer_to_server(servicer, server)


async def serve(settings: StockSettings) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully."""
    server = MeshServer(settings, "stock_svc", [register], [SERVICE_NAME])
    await server.run()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m stock_svc``."""
    settings = boot(StockSettings, "stock_svc", argv)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
