"""``/login`` and ``/logout``: the admin token in, a signed session cookie out."""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console.auth import checked_form, current_user, log_in, log_out, token_matches, valid_name
from console.views.common import render, state_of

ACTOR_SUFFIX = " (console)"


def _client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _safe_next(target: str) -> str:
    """Only a path of this console (never another site, never a scheme-relative URL)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


async def login_page(request: Request) -> Response:
    """The login form."""
    if current_user(request):
        return RedirectResponse("/", status_code=303)
    return render(request, "login.html", next=_safe_next(request.query_params.get("next", "/")))


async def login(request: Request) -> Response:
    """Check the token (constant time, rate-limited per client address) and start a session."""
    # The body is read (the only await) before the limit is checked: from here to limiter.failed nothing
    # yields, so requests racing in parallel cannot all pass the check before any failure is counted.
    form = await checked_form(request)
    console = state_of(request)
    key = _client_key(request)
    wait = console.limiter.retry_after(key)
    if wait > 0:
        response = render(
            request,
            "login.html",
            429,
            error=f"too many failed logins: try again in {math.ceil(wait)} s",
            next="/",
        )
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    name = str(form.get("name", "")).strip()
    token = str(form.get("token", ""))
    target = _safe_next(str(form.get("next", "/")))
    if not valid_name(name):
        return render(
            request, "login.html", 400, error="name: 1..64 letters, digits, spaces or . @ - _", next=target
        )
    if not token_matches(token, console.target.token):
        console.limiter.failed(key)
        return render(request, "login.html", 401, error="wrong admin token", next=target)
    console.limiter.succeeded(key)
    log_in(request, name + ACTOR_SUFFIX)
    return RedirectResponse(target, status_code=303)


async def logout(request: Request) -> Response:
    """End the session (a POST with the CSRF token)."""
    await checked_form(request)
    log_out(request)
    return RedirectResponse("/login", status_code=303)
