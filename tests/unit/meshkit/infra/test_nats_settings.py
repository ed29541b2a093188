"""NATS settings: one credential at a time, handed to nats-py's connect with TLS as configured."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from meshkit.infra.nats import auth_options
from meshkit.settings.config import NatsSettings

SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def test_no_credentials_and_plain_nats_by_default() -> None:
    assert auth_options(NatsSettings()) == {}
    assert NatsSettings().stream_replicas == 1


def test_user_and_password_reach_connect() -> None:
    options = auth_options(NatsSettings(user="mesh", password="pw"))
    assert options == {"user": "mesh", "password": "pw"}


def test_token_reaches_connect() -> None:
    assert auth_options(NatsSettings(token="tok")) == {"token": "tok"}


def test_creds_file_reaches_connect() -> None:
    assert auth_options(NatsSettings(creds_file="/var/run/nats/mesh.creds")) == {
        "user_credentials": "/var/run/nats/mesh.creds"
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"user": "a", "password": "b", "token": "t"}, "give one NATS credential"),
        ({"creds_file": "/x.creds", "token": "t"}, "give one NATS credential"),
        ({"user": "a"}, "user and password go together"),
        ({"password": "b"}, "user and password go together"),
        ({"tls_cert_file": "/c.pem"}, "tls_cert_file and tls_key_file go together"),
        ({"stream_replicas": 0}, "greater than or equal to 1"),
    ],
)
def test_conflicting_or_half_credentials_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        NatsSettings(**fields)  # type: ignore[arg-type]


@pytest.mark.skipif(not SYSTEM_CA.is_file(), reason="no system CA bundle")
def test_tls_ca_file_gives_a_verifying_context() -> None:
    options = auth_options(NatsSettings(tls_ca_file=str(SYSTEM_CA), tls_hostname="nats.internal"))
    context = options["tls"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert options["tls_hostname"] == "nats.internal"


def test_tls_scheme_alone_turns_tls_on() -> None:
    options = auth_options(NatsSettings(url="tls://h1:4222,tls://h2:4222"))
    assert isinstance(options["tls"], ssl.SSLContext)
    assert "tls_hostname" not in options


def test_unreadable_tls_file_fails_at_connect_with_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    with pytest.raises(OSError):
        auth_options(NatsSettings(tls_ca_file=str(missing)))
