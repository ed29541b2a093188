"""URL credentials are hidden wherever a URL is logged: one URL, server lists, log lines."""

from __future__ import annotations

import io
import logging

import pytest

from meshkit.runtime.config import LogSettings, MeshSettings, NatsSettings, redacted
from meshkit.runtime.logging import setup_logging
from meshkit.runtime.redact import redact_urls


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
