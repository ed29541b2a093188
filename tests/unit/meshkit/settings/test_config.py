"""Typed settings: defaults < YAML < MESH_* environment, unknown keys named, secrets hidden."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from meshkit.settings.config import (
    ConfigError,
    MeshSettings,
    Section,
    load_settings,
    log_settings,
    redact_url,
    redacted,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("MESH_"):
            monkeypatch.delenv(key)


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment() -> None:
    settings = load_settings(MeshSettings)
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 50050
    assert settings.nats.enabled is True
    assert settings.admin.token.get_secret_value() == ""
    assert settings.barrier.retention_days == 7.0


def test_yaml_overrides_defaults_and_env_overrides_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _yaml(
        tmp_path, "server:\n  host: 0.0.0.0\n  port: 5000\n  worker_id: 3\nnats:\n  enabled: false\n"
    )
    monkeypatch.setenv("MESH_SERVER__PORT", "6000")
    monkeypatch.setenv("MESH_REDIS__URL", "redis://127.0.0.1:7000/1")
    settings = load_settings(MeshSettings, path)
    assert settings.server.port == 6000  # env beats YAML
    assert settings.server.host == "0.0.0.0"  # YAML beats default, kept beside the env value
    assert settings.server.worker_id == 3
    assert settings.server.grace_seconds == 5.0  # default
    assert settings.nats.enabled is False
    assert settings.redis.url == "redis://127.0.0.1:7000/1"  # env only


def test_environment_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("mesh_log__level", "DEBUG")
    assert load_settings(MeshSettings).log.level == "DEBUG"


def test_log_json_key_from_yaml_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _yaml(tmp_path, "log:\n  json: true\n")
    assert load_settings(MeshSettings, path).log.json_format is True
    monkeypatch.setenv("MESH_LOG__JSON", "false")
    assert load_settings(MeshSettings, path).log.json_format is False


def test_unknown_yaml_key_error_names_the_key(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "server:\n  prot: 1\n")
    with pytest.raises(ConfigError, match=r"server\.prot") as info:
        load_settings(MeshSettings, path)
    assert str(path) in str(info.value)


def test_unknown_yaml_section_error_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sever"):
        load_settings(MeshSettings, _yaml(tmp_path, "sever:\n  port: 1\n"))


def test_unknown_env_key_in_a_section_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_DB__URLL", "sqlite+aiosqlite:///x.db")
    with pytest.raises(ConfigError, match=r"db\.urll"):
        load_settings(MeshSettings)


def test_env_variable_for_a_misspelt_section_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_DBB__URL", "sqlite+aiosqlite:///x.db")
    with pytest.raises(ConfigError, match="MESH_DBB__URL"):
        load_settings(MeshSettings)


def test_env_variables_of_other_processes_and_without_a_section_are_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MESH_COORDINATOR__RETRY_LIMIT", "3")  # read by the coordinator only
    monkeypatch.setenv("MESH_REQUIRE_MYSQL", "1")  # not a setting at all
    assert load_settings(MeshSettings) == MeshSettings()


def test_invalid_value_error_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_SERVER__PORT", "70000")
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_settings(MeshSettings)


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(MeshSettings, _yaml(tmp_path, "- a\n- b\n"))


def test_missing_yaml_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(MeshSettings, tmp_path / "absent.yaml")


def test_subclass_adds_a_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class PaySection(Section):
        callback_secret: str = "dev"

    class PaySettings(MeshSettings):
        pay: PaySection = PaySection()

    monkeypatch.setenv("MESH_PAY__CALLBACK_SECRET", "from-env")
    settings = load_settings(PaySettings, _yaml(tmp_path, "server:\n  port: 1234\n"))
    assert settings.pay.callback_secret == "from-env"
    assert settings.server.port == 1234


def test_secrets_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_ADMIN__TOKEN", "t0ps3cret")
    monkeypatch.setenv("MESH_DB__URL", "mysql+aiomysql://app:hunter2@db.internal:3306/orders")
    settings = load_settings(MeshSettings)
    assert settings.admin.token.get_secret_value() == "t0ps3cret"
    shown = redacted(settings)
    assert "t0ps3cret" not in repr(shown) + repr(settings) + str(settings)
    assert "hunter2" not in repr(shown)
    assert shown["db"]["url"] == "mysql+aiomysql://app:***@db.internal:3306/orders"
    assert shown["admin"]["token"] != "t0ps3cret"


def test_log_settings_hides_secrets(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MESH_ADMIN__TOKEN", "t0ps3cret")
    monkeypatch.setenv("MESH_REDIS__URL", "redis://:redispw@127.0.0.1:6379/0")
    logger = logging.getLogger("test_config")
    with caplog.at_level(logging.INFO, logger="test_config"):
        log_settings(load_settings(MeshSettings), logger)
    record = caplog.records[-1]
    dumped = repr(record.__dict__)
    assert "t0ps3cret" not in dumped
    assert "redispw" not in dumped
    assert record.__dict__["settings"]["redis"]["url"] == "redis://:***@127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("mysql+aiomysql://root@127.0.0.1:3306/x", "mysql+aiomysql://root@127.0.0.1:3306/x"),
        ("nats://u:p@h:4222", "nats://u:***@h:4222"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
