"""URL credentials are hidden wherever a URL is logged: one URL, server lists, log lines."""

from __future__ import annotations

import io
import logging

import pytest

from meshkit.observability.logging import setup_logging
from meshkit.observability.redact import redact_urls
from meshkit.settings.config import LogSettings, MeshSettings, NatsSettings, redacted


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "nats://a:pw@h1:4222,nats://b:pw2@h2:4222",
            "nats://a:***@h1:4222,nats://b:***@h2:4222",
        ),
        ("tls://u:p@h1:4222, tls://v:q@h2:4222", "tls://u:***@h1:4222, tls://v:***@h2:4222"),
        ("nats://s3cr3ttoken@h:4222", "nats://***@h:4222"),
        ("nats://h1:4222,nats://h2:4222", "nats://h1:4222,nats://h2:4222"),
        ("mysql+aiomysql://app:hunter2@db:3306/orders", "mysql+aiomysql://app:***@db:3306/orders"),
        ("mysql+aiomysql://root@db:3306/x", "mysql+aiomysql://root@db:3306/x"),
        ("redis://:redispw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://:p@ss@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://user:pw@cache:6380", "rediss://user:***@cache:6380"),
        (
            "cannot connect to mysql://u:pw@h/db, then redis://:x@r:6379 failed",
            "cannot connect to mysql://u:***@h/db, then redis://:***@r:6379 failed",
        ),
        ("no url here: a:b@c", "no url here: a:b@c"),
    ],
)
def test_every_password_in_every_url_is_hidden(text: str, shown: str) -> None:
    assert redact_urls(text) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # '/' in the password (review b49a7aa: printed in clear); base64 secrets often hold it.
        ("mysql+aiomysql://app:Ab/9xQ+z@db:3306/orders", "mysql+aiomysql://app:***@db:3306/orders"),
        ("mysql://app:a/b/c==@db/orders?charset=utf8mb4", "mysql://app:***@db/orders?charset=utf8mb4"),
        ("redis://:k+9/x@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        # '@' in the password (unencoded), alone and with '/'.
        ("mysql://app:p@ss@db/orders", "mysql://app:***@db/orders"),
        ("mysql://app:a/b@c@db/orders", "mysql://app:***@db/orders"),
        # ':' in the password; '?' and '#' before any '/'.
        ("mysql://app:a:b:c@db/orders", "mysql://app:***@db/orders"),
        ("mysql://app:ab?c#d@db/orders", "mysql://app:***@db/orders"),
        # multi-server lists, each with a '/' in its password, with and without spaces.
        (
            "nats://a:x/1@h1:4222,nats://b:y/2@h2:4222",
            "nats://a:***@h1:4222,nats://b:***@h2:4222",
        ),
        ("tls://u:p/q@h1:4222, tls://v:r@s@h2:4222", "tls://u:***@h1:4222, tls://v:***@h2:4222"),
        # token-only NATS URLs, alone and in a list.
        ("nats://s3cr3t-tok@h1:4222,nats://h2:4222", "nats://***@h1:4222,nats://h2:4222"),
        ("wss://tok@h:443/ws", "wss://***@h:443/ws"),
        ("nats://t0k/en+=@h:4222", "nats://***@h:4222"),
        # URLs in the middle of a log message or a JSON line.
        (
            "engine for mysql://app:Ab/9x@db/orders failed: timeout; retry in 2 s",
            "engine for mysql://app:***@db/orders failed: timeout; retry in 2 s",
        ),
        (
            '{"msg":"lost redis://:a/b@r:6379/0","peer":"nats://t/k@n:4222"}',
            '{"msg":"lost redis://:***@r:6379/0","peer":"nats://***@n:4222"}',
        ),
        # an '@' in the path or the query is not the end of the password, nor of a host:port.
        ("mysql://app:pw@db/orders@x", "mysql://app:***@db/orders@x"),
        ("mysql://app:pw@db/orders?init=a@b", "mysql://app:***@db/orders?init=a@b"),
        ("http://api:8080/notify?to=ops@example.com", "http://api:8080/notify?to=ops@example.com"),
        ("https://api/users/a@example.com", "https://api/users/a@example.com"),
        ("https://api/a:b@example.com", "https://api/a:b@example.com"),
    ],
)
def test_passwords_with_slash_at_colon_are_hidden_and_path_at_signs_kept(text: str, shown: str) -> None:
    assert redact_urls(text) == shown


def test_settings_log_hides_the_second_password_of_a_nats_cluster_url() -> None:
    settings = MeshSettings(
        nats=NatsSettings(url="nats://a:first-pw@h1:4222,nats://b:second-pw@h2:4222", token="tok-123")
    )
    shown = repr(redacted(settings))
    assert "first-pw" not in shown
    assert "second-pw" not in shown
    assert "tok-123" not in shown
    assert redacted(settings)["nats"]["url"] == "nats://a:***@h1:4222,nats://b:***@h2:4222"


@pytest.mark.parametrize("json_lines", [True, False], ids=["json", "text"])
def test_every_log_line_hides_url_passwords(json_lines: bool) -> None:
    out = io.StringIO()
    handler = setup_logging(LogSettings(level="INFO", json=json_lines), out)
    try:
        log = logging.getLogger("test_redact")
        log.warning("lost nats://a:pw-one@h1:4222,nats://b:pw-two@h2:4222 (%s)", "mysql://u:pw-three@db/x")
        log.info("extra", extra={"url": "redis://:pw-four@r:6379/0"})
        try:
            raise ConnectionError("redis://:pw-five@r:6379/0 refused")
        except ConnectionError:
            log.exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    text = out.getvalue()
    for secret in ("pw-one", "pw-two", "pw-three", "pw-four", "pw-five"):
        assert secret not in text
    assert "nats://b:***@h2:4222" in text
