"""nats.stream_replicas on a real three-server JetStream cluster (127.0.0.1): R3 streams, R1 raised to R3."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js.api import RetentionPolicy, StreamConfig
from nats.js.errors import APIError

from meshctl.stack.embedded import LOCALHOST, NatsServer, _tcp_banner, free_port
from meshkit.infra.nats import connect, create_stream_if_missing
from meshkit.settings.config import NatsSettings

CLUSTER_READY_ATTEMPTS = 120  # ~30 s: electing the JetStream meta leader takes a few seconds


class ClusterNatsServer(NatsServer):
    """One server of a three-server JetStream cluster on 127.0.0.1."""

    def __init__(self, data_dir: Path, route_port: int, routes: list[int]) -> None:
        super().__init__(data_dir)
        self.route_port = route_port
        self.routes = routes

    def command(self) -> list[str]:
        routes = ",".join(f"nats://{LOCALHOST}:{port}" for port in self.routes)
        return [
            *super().command(),
            "--cluster_name",
            "mesh-test",
            "--cluster",
            f"nats://{LOCALHOST}:{self.route_port}",
            "--routes",
            routes,
        ]

    def is_ready(self) -> bool:
        """Accepting clients (JetStream is healthy only once the whole cluster formed)."""
        return _tcp_banner(self.host, self.port, b"INFO")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NatsServer]]:
    route_ports = [free_port() for _ in range(3)]
    servers = [
        ClusterNatsServer(tmp_path_factory.mktemp(f"nats-cluster{n}"), port, route_ports)
        for n, port in enumerate(route_ports)
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


async def cluster_client(servers: list[NatsServer]) -> Client:
    url = ",".join(server.url for server in servers)
    client = await connect(NatsSettings(url=url), "t-cluster")
    js = client.jetstream()
    for _ in range(CLUSTER_READY_ATTEMPTS):  # bounded: wait for the JetStream meta leader
        try:
            await js.account_info()
            return client
        except Exception:  # "JetStream not ready" comes in several forms
            await asyncio.sleep(0.25)
    await client.close()
    raise AssertionError("the JetStream cluster did not form")


async def test_streams_are_created_with_three_replicas(cluster: list[NatsServer]) -> None:
    client = await cluster_client(cluster)
    try:
        js = client.jetstream()
        config = StreamConfig(name="R3NEW", subjects=["r3new.>"], retention=RetentionPolicy.WORK_QUEUE)
        await create_stream_if_missing(js, config, replicas=3)
        info = await js.stream_info("R3NEW")
        assert info.config.num_replicas == 3
        assert info.cluster is not None
        assert len(info.cluster.replicas or []) == 2  # the leader plus two followers
    finally:
        await client.close()


async def test_an_existing_r1_stream_is_raised_to_three_replicas(cluster: list[NatsServer]) -> None:
    client = await cluster_client(cluster)
    try:
        js = client.jetstream()
        config = StreamConfig(name="R1OLD", subjects=["r1old.>"], retention=RetentionPolicy.WORK_QUEUE)
        await create_stream_if_missing(js, config, replicas=1)
        await js.publish("r1old.kept", b"survives the change")
        assert (await js.stream_info("R1OLD")).config.num_replicas == 1
        await create_stream_if_missing(js, config, replicas=3)
        info = await js.stream_info("R1OLD")
        assert info.config.num_replicas == 3
        assert info.state.messages == 1
    finally:
        await client.close()


async def test_more_replicas_than_servers_is_refused_by_the_cluster(cluster: list[NatsServer]) -> None:
    client = await cluster_client(cluster)
    try:
        with pytest.raises(APIError, match="no suitable peers"):
            await create_stream_if_missing(
                client.jetstream(), StreamConfig(name="R5", subjects=["r5.>"]), replicas=5
            )
    finally:
        await client.close()
