"""What every view shares: the console's state, page rendering and error answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from console.admin_client import AdminClient, AdminError, AdminTarget
from console.auth import CSRF_FIELD, LoginLimiter, csrf_token, current_user
from console.config import ConsoleSection
from console.filters import FilterError
from meshctl.audit.clients import MeshAddresses, MeshClients
from meshkit.runtime.clock import Clock, now_ms

FLASH_KEY = "flash"


@dataclass
class ConsoleState:
    """Everything the views need, built once by the app factory (``request.app.state.console``).

    The gRPC channels are opened by :meth:`open` on the server's event loop (the app's lifespan).
    """

    target: AdminTarget
    addresses: MeshAddresses | None
    clock: Clock
    limiter: LoginLimiter
    templates: Jinja2Templates
    section: ConsoleSection
    _admin: AdminClient | None = None
    mesh: MeshClients | None = None

    def open(self) -> None:
        """Open the channels to the coordinator (and, for the audit page, to the services)."""
        self._admin = AdminClient(self.target)
        if self.addresses is not None:
            self.mesh = MeshClients(self.addresses, self.target.token)

    async def close(self) -> None:
        """Close the channels."""
        if self._admin is not None:
            await self._admin.close()
        if self.mesh is not None:
            await self.mesh.close()
        self._admin, self.mesh = None, None

    @property
    def admin(self) -> AdminClient:
        """The Admin client (open while the app runs)."""
        if self._admin is None:
            raise RuntimeError("the console's channels are not open (the app's lifespan has not started)")
        return self._admin

    def now_ms(self) -> int:
        """The injected clock's now in epoch milliseconds."""
        return now_ms(self.clock)


def state_of(request: Request) -> ConsoleState:
    """The console's state."""
    state: ConsoleState = request.app.state.console
    return state


def flash(request: Request, kind: str, text: str) -> None:
    """Show ``text`` once on the next page (``kind`` ok / refused)."""
    request.session[FLASH_KEY] = {"kind": kind, "text": text}


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """A page: ``template`` with the login, the CSRF token, the pending flash and ``context``."""
    console = state_of(request)
    shown = request.session.pop(FLASH_KEY, None) if current_user(request) else None
    base = {
        "user": current_user(request),
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_token(request),
        "flash": shown,
        "now_ms": console.now_ms(),
        "refresh_ms": int(console.section.refresh_seconds * 1000),
    }
    return console.templates.TemplateResponse(request, template, {**base, **context}, status_code=status_code)


def error_page(request: Request, status_code: int, title: str, message: str) -> Response:
    """An error page (or, for a live fragment, the bare message) with ``status_code``."""
    if request.url.path.startswith("/live/"):
        return state_of(request).templates.TemplateResponse(
            request, "_error.html", {"title": title, "message": message}, status_code=status_code
        )
    return render(request, "error.html", status_code, title=title, message=message)


def admin_error_page(request: Request, error: AdminError) -> Response:
    """The page of a failed Admin call."""
    return error_page(request, error.http_status, error.meaning, f"{error.code}: {error.details}")


def filter_error_page(request: Request, error: FilterError) -> Response:
    """400 for a malformed query parameter."""
    return error_page(request, 400, "bad filter", str(error))
