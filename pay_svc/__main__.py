"""Run pay_svc: ``python -m pay_svc [--config settings.yaml]`` (``MESH_*`` environment wins)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc.aio

from meshkit.server import MeshServer, boot
from meshpb.pay.v1 import pay_pb2, pay_pb2_grpc
from pay_svc.config import PaySettings

SERVICE_NAME = pay_pb2.DESCRIPTOR.services_by_name["Pay"].full_name


def register(server: grpc.aio.Server) -> None:
    """Add the Pay servicer to ``server``.

    Until the service is implemented this is the generated base servicer, which answers
    ``UNIMPLEMENTED`` for every RPC.
    """
    servicer = pay_pb2_grpc.PayServicer()  # type: ignore[abstract]
    pay_pb2_grpc.add_PayServicer_to_server(servicer, server)


async def serve(settings: PaySettings) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully."""
    server = MeshServer(settings, "pay_svc", [register], [SERVICE_NAME])
    await server.run()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m pay_svc``."""
    settings = boot(PaySettings, "pay_svc", argv)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
