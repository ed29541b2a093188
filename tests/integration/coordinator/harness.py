"""An in-process coordinator replica for tests: the real runtime behind a real MeshServer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc.aio
import pytest
from prometheus_client import CollectorRegistry

from coordinator.config import CoordinatorSection, CoordinatorServerSettings, CoordinatorSettings
from coordinator.runtime import CoordinatorRuntime, start_replica
from meshkit.rpc.auth import mesh_channel
from meshkit.rpc.server import MeshServer
from meshkit.runtime.clock import Clock
from meshkit.settings.config import AdminSettings, DbSettings, NatsSettings
from meshkit.tx.initiator import CoordinatorClient
from meshpb.coordinator.v1 import coordinator_pb2 as pb
from meshpb.coordinator.v1 import coordinator_pb2_grpc
from tests.integration.creds import AUTH

FINAL = (pb.STATUS_SUCCEEDED, pb.STATUS_FAILED)
COORDINATOR_SERVICE = pb.DESCRIPTOR.services_by_name["Coordinator"].full_name
ADMIN_SERVICE = pb.DESCRIPTOR.services_by_name["Admin"].full_name
ADMIN_TOKEN = "test-admin-token"

# Fast defaults for tests: short retries, leases and sweeps.
FAST: dict[str, Any] = {
    "retry_interval_seconds": 0.05,
    "max_retry_interval_seconds": 0.5,
    "request_timeout_seconds": 2.0,
    "sweep_interval_seconds": 0.2,
    "lease_seconds": 1.0,
    "default_timeout_seconds": 30.0,
}


def coordinator_settings(
    db_url: str, *, nats_url: str | None = None, port: int = 0, **section: Any
) -> CoordinatorSettings:
    """Settings of a test replica on ``db_url`` (NATS timers only when ``nats_url`` is given)."""
    section.setdefault("replica_id", f"test-{uuid.uuid4().hex[:8]}")
    return CoordinatorSettings(
        server=CoordinatorServerSettings(host="127.0.0.1", port=port, grace_seconds=0.5),
        db=DbSettings(url=db_url),
        nats=NatsSettings(url=nats_url or "nats://127.0.0.1:1", enabled=nats_url is not None),
        coordinator=CoordinatorSection(**{**FAST, **section}),
        admin=AdminSettings(token=ADMIN_TOKEN),
        auth=AUTH,
    )


@dataclass
class RunningCoordinator:
    """A started replica: its runtime, server, address and a stub on a channel to it."""

    runtime: CoordinatorRuntime
    server: MeshServer
    registry: CollectorRegistry
    channel: grpc.aio.Channel
    stub: Any  # CoordinatorAsyncStub
    admin: Any  # AdminAsyncStub (calls need admin_metadata())
    initiator: CoordinatorClient  # for tcc()/saga()/msg(): signs coordinator and branch calls

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.server.port}"

    @classmethod
    async def start(cls, settings: CoordinatorSettings, *, clock: Clock | None = None) -> RunningCoordinator:
        """Start the runtime and its server."""
        registry = CollectorRegistry()
        runtime, server = await start_replica(settings, registry, clock=clock)
        # An initiator's channel: mesh credentials, no admin token (Admin calls pass admin_metadata()).
        channel = mesh_channel(f"127.0.0.1:{server.port}", AUTH)
        return cls(
            runtime,
            server,
            registry,
            channel,
            coordinator_pb2_grpc.CoordinatorStub(channel),
            coordinator_pb2_grpc.AdminStub(channel),
            CoordinatorClient(f"127.0.0.1:{server.port}", auth=AUTH),
        )

    async def stop(self) -> None:
        """Stop the server (and with it the runtime)."""
        await self.initiator.close()
        await self.channel.close()
        await self.server.stop(0.5)

    async def query(self, gid: str) -> pb.Transaction:
        """The transaction as Query shows it."""
        reply: pb.QueryResponse = await self.stub.Query(pb.QueryRequest(gid=gid))
        return reply.transaction

    def metric(self, name: str, **labels: str) -> float:
        """A sample value from this replica's registry (0 when absent)."""
        value = self.registry.get_sample_value(name, labels)
        return float(value or 0.0)


def admin_metadata(token: str = ADMIN_TOKEN) -> tuple[tuple[str, str], ...]:
    """The metadata an admin call carries."""
    return (("authorization", f"Bearer {token}"),)


async def wait_for(
    check: Callable[[], object], within: float = 10.0, interval: float = 0.02, what: str = "condition"
) -> None:
    """Poll ``check`` (sync or async) until truthy; fail with ``what`` after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_final(coord: RunningCoordinator, gid: str, within: float = 10.0) -> pb.Transaction:
    """Poll Query until the transaction is final; returns it."""
    holder: list[pb.Transaction] = []

    async def final() -> bool:
        tx = await coord.query(gid)
        holder[:] = [tx]
        return tx.status in FINAL

    await wait_for(final, within, what=f"transaction {gid} to finish")
    return holder[0]
