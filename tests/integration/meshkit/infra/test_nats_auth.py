"""nats.* credentials and stream replicas against real nats-servers that require them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.js.api import StreamConfig
from nats.js.errors import APIError

from meshctl.stack.embedded import NatsServer
from meshkit.infra.nats import connect, create_stream_if_missing
from meshkit.settings.config import NatsSettings


class AuthNatsServer(NatsServer):
    """The embedded JetStream nats-server with one credential required (``--user/--pass`` or ``--auth``)."""

    def __init__(self, data_dir: Path, auth: list[str]) -> None:
        super().__init__(data_dir)
        self._auth = auth

    def command(self) -> list[str]:
        return [*super().command(), *self._auth]


@pytest.fixture(scope="module")
def password_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = AuthNatsServer(tmp_path_factory.mktemp("nats-pw"), ["--user", "mesh", "--pass", "pw-9f1"])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = AuthNatsServer(tmp_path_factory.mktemp("nats-token"), ["--auth", "tok-77a"])
    server.start()
    yield server
    server.stop()


async def test_user_and_password_settings_connect_and_declare_a_stream(password_server: NatsServer) -> None:
    client = await connect(NatsSettings(url=password_server.url, user="mesh", password="pw-9f1"), "t-pw")
    try:
        js = client.jetstream()
        await create_stream_if_missing(js, StreamConfig(name="AUTHPW", subjects=["authpw.>"]), replicas=1)
        assert (await js.stream_info("AUTHPW")).config.num_replicas == 1
    finally:
        await client.close()


async def test_token_setting_connects(token_server: NatsServer) -> None:
    client = await connect(NatsSettings(url=token_server.url, token="tok-77a"), "t-token")
    try:
        assert client.is_connected
    finally:
        await client.close()


async def test_connect_log_hides_the_passwords_of_every_server_url(
    password_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    port = password_server.port
    url = f"nats://mesh:pw-9f1@127.0.0.1:{port},nats://mesh:pw-9f1@localhost:{port}"
    with caplog.at_level(logging.INFO, logger="meshkit.infra.nats"):
        client = await connect(NatsSettings(url=url), "t-url")
        await client.close()
    lines = [record.getMessage() for record in caplog.records if record.name == "meshkit.infra.nats"]
    assert any(f"nats://mesh:***@localhost:{port}" in line for line in lines)
    assert not any("pw-9f1" in line for line in lines)


async def test_stream_replicas_reach_the_server(nats_url: str) -> None:
    client = await connect(NatsSettings(url=nats_url), "t-replicas")
    try:
        js = client.jetstream()
        config = StreamConfig(name="REPLICAS3", subjects=["replicas3.>"])
        # A single server cannot hold R3: the server itself refuses what the setting asked for.
        with pytest.raises(APIError, match="replicas"):
            await create_stream_if_missing(js, config, replicas=3)
    finally:
        await client.close()
