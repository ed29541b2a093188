"""The console's login gate, CSRF, rate limit and escaping (Starlette's TestClient, no coordinator).

The Admin client points at a loopback port nothing listens on: these tests never reach an Admin call
(or, where they do, check that an unreachable coordinator answers 503, not 500).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlencode

import httpx
import pytest
from starlette.testclient import TestClient

from console.admin_client import AdminTarget
from console.app import create_app
from console.config import ConsoleSection
from meshkit.runtime.clock import Clock

TOKEN = "unit-admin-token-0123456789"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class ManualClock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def client(clock: ManualClock) -> Iterator[TestClient]:
    # Port 9 (discard) on loopback: nothing answers gRPC there.
    target = AdminTarget("127.0.0.1:9", TOKEN, timeout_seconds=0.5)
    section = ConsoleSection(login_failures=3, login_window_seconds=60)
    app = create_app(section, "unit-session-secret", target, None, clock_of(clock))
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def clock_of(clock: ManualClock) -> Clock:
    return clock


def csrf_of(client: TestClient, path: str = "/login") -> str:
    match = CSRF_RE.search(client.get(path).text)
    assert match, "page without a CSRF token"
    return match.group(1)


def log_in(client: TestClient, token: str = TOKEN, name: str = "alice") -> int:
    csrf = csrf_of(client)
    reply = client.post(
        "/login", data={"csrf_token": csrf, "name": name, "token": token, "next": "/"}, follow_redirects=False
    )
    return reply.status_code


@pytest.mark.parametrize("path", ["/", "/transactions", "/tx/g-1", "/stuck", "/audit"])
def test_pages_redirect_to_login_without_a_session(client: TestClient, path: str) -> None:
    reply = client.get(path, follow_redirects=False)
    assert reply.status_code == 303
    assert reply.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/live/overview"), ("GET", "/live/tx/g-1"), ("POST", "/tx/g-1/act"), ("POST", "/logout")],
)
def test_actions_and_live_answer_401_without_a_session(client: TestClient, method: str, path: str) -> None:
    assert client.request(method, path, follow_redirects=False).status_code == 401


def test_login_sets_an_httponly_strict_cookie_and_no_token_in_the_url(client: TestClient) -> None:
    csrf = csrf_of(client)
    reply = client.post(
        "/login",
        data={"csrf_token": csrf, "name": "alice", "token": TOKEN, "next": "/stuck"},
        follow_redirects=False,
    )
    assert reply.status_code == 303
    assert reply.headers["location"] == "/stuck"
    cookie = reply.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert TOKEN not in reply.headers["set-cookie"]
    assert TOKEN not in reply.headers["location"]


def test_wrong_token_is_refused(client: TestClient) -> None:
    assert log_in(client, token="not-the-token") == 401
    assert client.get("/stuck", follow_redirects=False).status_code == 303


def test_login_without_csrf_token_is_refused(client: TestClient) -> None:
    reply = client.post("/login", data={"name": "alice", "token": TOKEN}, follow_redirects=False)
    assert reply.status_code == 403


def test_failed_logins_are_rate_limited_until_the_window_passes(
    client: TestClient, clock: ManualClock
) -> None:
    for _ in range(3):
        assert log_in(client, token="wrong") == 401
    assert log_in(client) == 429  # even the right token waits
    clock.t += 61
    assert log_in(client) == 303


def test_action_without_csrf_token_is_refused(client: TestClient) -> None:
    assert log_in(client) == 303
    reply = client.post(
        "/tx/g-1/act", data={"action": "pause", "reason": "x", "confirm": "yes"}, follow_redirects=False
    )
    assert reply.status_code == 403


def test_action_with_a_wrong_csrf_token_is_refused(client: TestClient) -> None:
    assert log_in(client) == 303
    reply = client.post(
        "/tx/g-1/act",
        data={"csrf_token": "forged", "action": "pause", "reason": "x", "confirm": "yes"},
        follow_redirects=False,
    )
    assert reply.status_code == 403


def test_logout_ends_the_session(client: TestClient) -> None:
    assert log_in(client) == 303
    csrf = csrf_of(client, "/transactions?status=bad")  # a page that needs no coordinator
    reply = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert reply.status_code == 303
    assert client.get("/stuck", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=<script>alert(1)</script>", "status"),
        ("mode=nope", "mode"),
        ("newer=yesterday", "newer"),
        ("older=-5m", "older"),
        ("gid=<b>x</b>", "gid"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("cursor=%00", "cursor"),
    ],
)
def test_bad_filters_answer_400_naming_the_field_escaped(client: TestClient, query: str, field: str) -> None:
    assert log_in(client) == 303
    reply = client.get(f"/transactions?{query}")
    assert reply.status_code == 400
    assert f"{field}:" in reply.text
    assert "<script>alert" not in reply.text
    assert "<b>x</b>" not in reply.text


def test_bad_stuck_filter_answers_400(client: TestClient) -> None:
    assert log_in(client) == 303
    reply = client.get("/stuck?min_attempts=lots")
    assert reply.status_code == 400
    assert "min_attempts:" in reply.text


def test_unreachable_coordinator_answers_503_not_500(client: TestClient) -> None:
    assert log_in(client) == 303
    assert client.get("/").status_code in (503, 504)


def test_name_is_escaped_in_every_page(client: TestClient) -> None:
    assert log_in(client, name="<img src=x>") == 400  # refused as a name
    assert log_in(client, name="bob") == 303
    page = client.get("/transactions?status=bad")
    assert "bob (console)" in page.text


def test_responses_carry_a_strict_content_security_policy(client: TestClient) -> None:
    reply = client.get("/login")
    assert "default-src 'self'" in reply.headers["content-security-policy"]
    assert reply.headers["x-frame-options"] == "DENY"


def test_next_cannot_send_the_browser_elsewhere(client: TestClient) -> None:
    csrf = csrf_of(client)
    reply = client.post(
        "/login",
        data={"csrf_token": csrf, "name": "alice", "token": TOKEN, "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert reply.headers["location"] == "/"


async def test_concurrent_failed_logins_cannot_bypass_the_limit(clock: ManualClock) -> None:
    """Every body is held back until all requests are in flight: only ``login_failures`` get checked."""
    section = ConsoleSection(login_failures=3, login_window_seconds=60)
    target = AdminTarget("127.0.0.1:9", TOKEN, timeout_seconds=0.5)
    app = create_app(section, "unit-session-secret", target, None, clock_of(clock))
    attempts = 20
    gate, all_waiting = asyncio.Event(), asyncio.Event()
    waiting = 0

    async def held_body(body: bytes) -> AsyncIterator[bytes]:
        nonlocal waiting
        waiting += 1
        if waiting == attempts:
            all_waiting.set()
        await gate.wait()
        yield body

    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client,
    ):
        match = CSRF_RE.search((await client.get("/login")).text)
        assert match
        headers = {"content-type": "application/x-www-form-urlencoded"}

        async def attempt(i: int) -> int:
            body = urlencode({"csrf_token": match.group(1), "name": "eve", "token": f"guess{i}"}).encode()
            reply = await client.post("/login", content=held_body(body), headers=headers)
            return reply.status_code

        tasks = [asyncio.create_task(attempt(i)) for i in range(attempts)]
        await all_waiting.wait()  # every request is in the app, waiting for its body
        gate.set()
        codes = await asyncio.gather(*tasks)
    assert sorted(codes) == [401] * 3 + [429] * (attempts - 3)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/transactions?limit=%C2%B2", "limit"),  # '²': str.isdigit() but not int()
        ("/transactions?limit=%D9%A3", "limit"),  # Arabic-Indic three: \d without re.ASCII
        ("/transactions?limit=" + "9" * 400, "limit"),
        ("/stuck?min_attempts=%C2%B2", "min_attempts"),
        ("/stuck?min_attempts=" + "9" * 400, "min_attempts"),
        ("/transactions?newer=" + "9" * 400, "newer"),  # float -> inf, round(inf) overflows
        ("/transactions?older=" + "9" * 400 + "d", "older"),
        ("/stuck?older=" + "9" * 400, "older"),
        ("/stuck?older=1." + "5" * 400, "older"),
        ("/transactions?newer=%C2%B2m", "newer"),
    ],
)
def test_non_ascii_digits_and_overlong_numbers_answer_400_naming_the_parameter(
    client: TestClient, path: str, field: str
) -> None:
    assert log_in(client) == 303
    reply = client.get(path)
    assert reply.status_code == 400
    assert f"{field}:" in reply.text
