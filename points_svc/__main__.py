"""Run points_svc: ``python -m points_svc [--config settings.yaml]`` (``MESH_*`` environment wins)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc.aio

from meshkit.server import MeshServer, boot
from meshpb.points.v1 import points_pb2, points_pb2_grpc
from points_svc.config import PointsSettings

SERVICE_NAME = points_pb2.DESCRIPTOR.services_by_name["Points"].full_name


def register(server: grpc.aio.Server) -> None:
    """Add the Points servicer to ``server``.

    Until the service is implemented this is the generated base servicer, which answers
    ``UNIMPLEMENTED`` for every RPC.
    """
    servicer = points_pb2_grpc.PointsServicer()  # type: ignore[abstract]
    points_pb2_grpc.add_PointsServicer_to_server(servicer, server)


async def serve(settings: PointsSettings) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully."""
    server = MeshServer(settings, "points_svc", [register], [SERVICE_NAME])
    await server.run()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m points_svc``."""
    settings = boot(PointsSettings, "points_svc", argv)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
