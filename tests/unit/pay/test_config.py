"""pay_svc settings: the callback secret comes from the environment and never shows in logs."""

from __future__ import annotations

import pytest

from meshkit.settings.config import load_settings, redacted
from pay_svc.adapters.grpc_clients import own_address
from pay_svc.config import PaySettings


def test_callback_secret_from_environment_is_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_PAY__CALLBACK_SECRET", "s3cr3t-value")
    monkeypatch.setenv("MESH_PAY__NOTIFY_INTERVAL_SECONDS", "0.5")

    settings = load_settings(PaySettings)

    assert settings.pay.callback_secret.get_secret_value() == "s3cr3t-value"
    assert settings.pay.notify_interval_seconds == 0.5
    assert "s3cr3t-value" not in str(redacted(settings))


def test_secret_defaults_to_empty() -> None:
    assert PaySettings().pay.callback_secret.get_secret_value() == ""


@pytest.mark.parametrize(
    ("host", "address"),
    [("127.0.0.1", "127.0.0.1:5"), ("0.0.0.0", "127.0.0.1:5"), ("::", "[::1]:5"), ("::1", "[::1]:5")],
)
def test_own_address(host: str, address: str) -> None:
    assert own_address(host, 5) == address
