"""Fragments the live pages fetch every ``console.refresh_seconds`` (server-rendered, escaped HTML)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from console.views.common import state_of
from console.views.pages import detail_context, overview_context


def _fragment(request: Request, template: str, context: dict[str, object]) -> Response:
    console = state_of(request)
    response = console.templates.TemplateResponse(request, template, {"now_ms": console.now_ms(), **context})
    response.headers["Cache-Control"] = "no-store"
    return response


async def overview(request: Request) -> Response:
    """The overview's body."""
    return _fragment(request, "_overview_body.html", await overview_context(request))


async def detail(request: Request) -> Response:
    """The detail page's body (status, branches, history)."""
    return _fragment(request, "_detail_body.html", await detail_context(request))
