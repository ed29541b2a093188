"""Login with the admin token, the signed session, CSRF tokens and the failed-login rate limit.

The session lives in a signed cookie (Starlette's ``SessionMiddleware``: HttpOnly, SameSite=Strict).
It holds who logged in and the session's CSRF token, never the admin token. Every POST carries the
CSRF token as a form field (:func:`checked_form`); the login form too, against an anonymous session.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections import deque
from dataclasses import dataclass, field

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request

from meshkit.runtime.clock import Clock

USER_KEY = "user"
CSRF_KEY = "csrf"
CSRF_FIELD = "csrf_token"
MAX_FORM_FIELDS = 20
MAX_NAME_LEN = 64
NAME_RE = re.compile(r"^[\w .@-]{1,64}$")


def token_matches(given: str, expected: str) -> bool:
    """True when ``given`` is the admin token (compared in constant time; an empty token never matches)."""
    if not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def valid_name(name: str) -> bool:
    """True for a name fit for the history's actor (letters, digits, space, ``. @ - _``; 1..64)."""
    return bool(NAME_RE.match(name)) and bool(name.strip())


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    token = request.session.get(CSRF_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_KEY] = token
    return token


def current_user(request: Request) -> str | None:
    """Who is logged in on this request's session, or None."""
    user = request.session.get(USER_KEY)
    return user if isinstance(user, str) and user else None


def log_in(request: Request, name: str) -> None:
    """Start a fresh session for ``name`` (a new CSRF token too: no token survives a login)."""
    request.session.clear()
    request.session[USER_KEY] = name
    request.session[CSRF_KEY] = secrets.token_urlsafe(32)


def log_out(request: Request) -> None:
    """End the session."""
    request.session.clear()


async def checked_form(request: Request) -> FormData:
    """The POST's form once its CSRF token matches the session's; 403 otherwise."""
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    given = form.get(CSRF_FIELD)
    expected = request.session.get(CSRF_KEY)
    if (
        not isinstance(given, str)
        or not isinstance(expected, str)
        or not expected
        or not hmac.compare_digest(given.encode(), expected.encode())
    ):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    return form


@dataclass
class LoginLimiter:
    """At most ``failures`` failed logins per ``window_seconds`` from one client address."""

    clock: Clock
    failures: int
    window_seconds: float
    _seen: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, key: str) -> deque[float]:
        times = self._seen.setdefault(key, deque())
        horizon = self.clock.monotonic() - self.window_seconds
        while times and times[0] <= horizon:
            times.popleft()
        return times

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0 when it may now)."""
        times = self._recent(key)
        if len(times) < self.failures:
            if not times:
                self._seen.pop(key, None)
            return 0.0
        return max(times[0] + self.window_seconds - self.clock.monotonic(), 0.0)

    def failed(self, key: str) -> None:
        """Count a failed login of ``key``."""
        self._recent(key).append(self.clock.monotonic())

    def succeeded(self, key: str) -> None:
        """Forget ``key``'s failures."""
        self._seen.pop(key, None)
