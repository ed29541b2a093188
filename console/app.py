"""The Starlette application factory: routes, the login gate, security headers and error pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console import present
from console.admin_client import AdminError, AdminTarget
from console.auth import LoginLimiter, current_user
from console.config import ConsoleSection
from console.filters import FilterError
from console.views import actions, live, login, pages
from console.views.common import ConsoleState, admin_error_page, error_page, filter_error_page
from meshctl.audit.clients import MeshAddresses
from meshkit.runtime.clock import Clock

HERE = Path(__file__).parent
SESSION_COOKIE = "mesh_console"
PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = ("/login", "/healthz")
SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none';"
        b" form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders:
    """Adds a strict CSP and friends to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the answer's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


class LoginGate:
    """Without a login: a page (GET) redirects to ``/login``; anything else answers 401."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Let a logged-in or public request through; answer the others here."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = request.url.path
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) or current_user(request):
            await self.app(scope, receive, send)
            return
        response: Response
        if request.method in ("GET", "HEAD") and not path.startswith("/live/"):
            wanted = path + (f"?{request.url.query}" if request.url.query else "")
            response = RedirectResponse(f"/login?{urlencode({'next': wanted})}", status_code=303)
        else:
            response = PlainTextResponse("log in first", status_code=401)
        await response(scope, receive, send)


def templates() -> Jinja2Templates:
    """The Jinja2 environment: autoescape on for every template, the presentation filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, keep_trailing_newline=False
    )
    env.filters.update(
        status_name=present.status_name,
        mode_name=present.mode_name,
        when=present.when,
        span=present.span,
        clock=present.clock,
        age=present.age,
        duration=present.duration,
        flags=present.tx_flags,
        why_stuck=present.why_stuck,
        ms_of=present.ms_of,
    )
    return Jinja2Templates(env=env)


async def _admin_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AdminError)
    return admin_error_page(request, exc)


async def _filter_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FilterError)
    return filter_error_page(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    titles = {403: "forbidden", 404: "not found", 405: "method not allowed"}
    if request.method not in ("GET", "HEAD") and exc.status_code in (403, 405):
        return PlainTextResponse(exc.detail, status_code=exc.status_code)
    return error_page(request, exc.status_code, titles.get(exc.status_code, "error"), exc.detail)


async def healthz(_request: Request) -> Response:
    """Liveness for Kubernetes (no login)."""
    return PlainTextResponse("ok")


def routes() -> list[Route | Mount]:
    """Every endpoint of the console."""
    return [
        Route("/", pages.overview),
        Route("/transactions", pages.transactions),
        Route("/tx/{gid}", pages.detail),
        Route("/tx/{gid}/act", actions.act, methods=["POST"]),
        Route("/stuck", pages.stuck),
        Route("/audit", pages.audit),
        Route("/live/overview", live.overview),
        Route("/live/tx/{gid}", live.detail),
        Route("/login", login.login_page),
        Route("/login", login.login, methods=["POST"]),
        Route("/logout", login.logout, methods=["POST"]),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


def create_app(
    section: ConsoleSection,
    session_secret: str,
    target: AdminTarget,
    addresses: MeshAddresses | None,
    clock: Clock,
) -> Starlette:
    """The console application for the coordinator at ``target`` (the services at ``addresses``)."""
    state = ConsoleState(
        target=target,
        addresses=addresses,
        clock=clock,
        limiter=LoginLimiter(clock, section.login_failures, section.login_window_seconds),
        templates=templates(),
        section=section,
    )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        state.open()
        try:
            yield
        finally:
            await state.close()

    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=session_secret,
                session_cookie=SESSION_COOKIE,
                max_age=section.session_max_age_seconds,
                same_site="strict",
                https_only=section.secure_cookie,
            ),
            Middleware(LoginGate),
        ],
        exception_handlers={
            AdminError: _admin_error,
            FilterError: _filter_error,
            HTTPException: _http_error,
        },
        lifespan=lifespan,
    )
    app.state.console = state
    return app
