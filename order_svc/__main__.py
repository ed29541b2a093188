"""Run order_svc: ``python -m order_svc [--config settings.yaml]`` (``MESH_*`` environment wins)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc.aio

from meshkit.server import MeshServer, boot
from meshpb.order.v1 import order_pb2, order_pb2_grpc
from order_svc.config import OrderSettings

SERVICE_NAME = order_pb2.DESCRIPTOR.services_by_name["Order"].full_name


def register(server: grpc.aio.Server) -> None:
    """Add the Order servicer to ``server``.

    Until the service is implemented this is the generated base servicer, which answers
    ``UNIMPLEMENTED`` for every RPC.
    """
    servicer = order_pb2_grpc.OrderServicer()  # type: ignore[abstract]
    order_pb2_grpc.add_OrderServicer_to_server(servicer, server)


async def serve(settings: OrderSettings) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully."""
    server = MeshServer(settings, "order_svc", [register], [SERVICE_NAME])
    await server.run()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m order_svc``."""
    settings = boot(OrderSettings, "order_svc", argv)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
