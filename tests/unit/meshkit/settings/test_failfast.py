"""Fail fast on settings: bad store URLs name the setting in one line; insecure settings are refused."""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr

from meshkit.settings.config import (
    AdminSettings,
    AuthSettings,
    ConfigError,
    DbSettings,
    MeshSettings,
    load_settings,
)
from meshkit.settings.failfast import StartupRefused, insecure_problems, refuse_insecure
from pay_svc.config import PaySection, PaySettings

SECURE = {
    "admin": AdminSettings(token=SecretStr("admin-token")),
    "auth": AuthSettings(mesh_secret=SecretStr("mesh-secret")),
}
MYSQL = DbSettings(url="mysql+aiomysql://mesh:pw@127.0.0.1:3306/mesh")
IN_KUBERNETES = {"KUBERNETES_SERVICE_HOST": "127.0.0.1"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("MESH_"):
            monkeypatch.delenv(key)


def _load_error(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> str:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(MeshSettings)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_unsupported_database_url_names_db_url(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _load_error(monkeypatch, "MESH_DB__URL", "postgresql://mesh:hunter2@127.0.0.1/mesh")
    assert "db.url: unsupported database driver 'postgresql'" in message
    assert "hunter2" not in message


def test_database_url_that_is_no_url_names_db_url(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _load_error(monkeypatch, "MESH_DB__URL", "mesh.db")
    assert "db.url: not a database URL (expected sqlite+aiosqlite:///path" in message


def test_mysql_url_without_host_names_db_url(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _load_error(monkeypatch, "MESH_DB__URL", "mysql+aiomysql:///mesh")
    assert "db.url: no host" in message


def test_redis_url_with_a_bad_port_names_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _load_error(monkeypatch, "MESH_REDIS__URL", "redis://:hunter2@127.0.0.1:63x9/0")
    assert "redis.url: bad host or port" in message
    assert "hunter2" not in message


def test_redis_url_with_another_scheme_names_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _load_error(monkeypatch, "MESH_REDIS__URL", "http://127.0.0.1:6379")
    assert "redis.url: scheme must be redis, rediss or unix" in message


def test_redis_url_with_a_named_database_names_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _load_error(monkeypatch, "MESH_REDIS__URL", "redis://127.0.0.1:6379/stock")
    assert "redis.url: database must be a number, not 'stock'" in message


def test_nats_url_names_the_bad_server_of_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _load_error(monkeypatch, "MESH_NATS__URL", "nats://127.0.0.1:4222,http://127.0.0.1:4223")
    assert "nats.url: server 2: scheme must be nats, tls, ws or wss" in message


def test_nats_url_without_host_names_nats_url(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _load_error(monkeypatch, "MESH_NATS__URL", "nats://:4222")
    assert "nats.url: no host" in message


def test_every_bad_url_is_named_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_REDIS__URL", "tcp://127.0.0.1")
    message = _load_error(monkeypatch, "MESH_DB__URL", "oracle://127.0.0.1/x")
    assert "db.url: " in message
    assert "redis.url: " in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MESH_DB__URL", "sqlite+aiosqlite:///./mesh.db"),
        ("MESH_DB__URL", "sqlite:///var/lib/mesh/mesh.db"),
        ("MESH_DB__URL", "mysql+aiomysql://mesh:pw@127.0.0.1:3306/mesh?charset=utf8mb4"),
        ("MESH_DB__URL", "mysql://mesh@127.0.0.1/mesh"),
        ("MESH_REDIS__URL", "rediss://:pw@127.0.0.1:6380/2"),
        ("MESH_REDIS__URL", "unix:///run/redis.sock"),
        ("MESH_NATS__URL", "nats://a:pw@127.0.0.1:4222, tls://127.0.0.1:4223,127.0.0.1:4224"),
    ],
)
def test_good_store_urls_are_accepted(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    load_settings(MeshSettings)


def test_empty_admin_token_and_mesh_secret_are_refused() -> None:
    with pytest.raises(StartupRefused) as caught:
        refuse_insecure(MeshSettings(), {})
    message = str(caught.value)
    assert message.startswith("refusing to start: empty admin.token (MESH_ADMIN__TOKEN), ")
    assert "auth.mesh_secret (MESH_AUTH__MESH_SECRET)" in message
    assert "dev.allow_insecure=true (MESH_DEV__ALLOW_INSECURE)" in message
    assert "\n" not in message


def test_empty_callback_secret_is_refused_for_pay_svc() -> None:
    problems = insecure_problems(PaySettings(**SECURE), {})
    assert problems == ["empty pay.callback_secret (MESH_PAY__CALLBACK_SECRET)"]


def test_pay_svc_with_every_secret_starts() -> None:
    settings = PaySettings(**SECURE, pay=PaySection(callback_secret=SecretStr("cb")))
    refuse_insecure(settings, {})


def test_sqlite_inside_kubernetes_is_refused() -> None:
    problems = insecure_problems(MeshSettings(**SECURE), IN_KUBERNETES)
    assert problems == ["db.url is SQLite inside Kubernetes (a pod's disk dies with it; use MySQL/MariaDB)"]


def test_sqlite_outside_kubernetes_and_mysql_inside_are_accepted() -> None:
    refuse_insecure(MeshSettings(**SECURE), {})
    refuse_insecure(MeshSettings(**SECURE, db=MYSQL), IN_KUBERNETES)


def test_dev_flag_allows_empty_secrets_and_sqlite_inside_kubernetes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_DEV__ALLOW_INSECURE", "true")
    settings = load_settings(PaySettings)
    assert insecure_problems(settings, IN_KUBERNETES)  # still wrong for production ...
    refuse_insecure(settings, IN_KUBERNETES)  # ... but a dev run may start
