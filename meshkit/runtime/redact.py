"""Hide credentials in URLs wherever a URL may be logged or printed.

:func:`redact_urls` rewrites every ``scheme://user:password@`` in a text to ``scheme://user:***@``, so it
covers one URL, a comma-separated NATS server list (``nats://a:pw@h1:4222,nats://b:pw2@h2:4222``) and a
URL inside a log line or an error message alike. A NATS URL's bare user part is its token
(``nats://TOKEN@host``) and is hidden whole. A password runs up to the last ``@`` before the next ``/``
or white space, so an unencoded ``@`` inside it is hidden too.
"""

from __future__ import annotations

import re

MASK = "***"
# Schemes whose bare user part (no ':password') is a secret token.
TOKEN_SCHEMES = frozenset({"nats", "tls", "ws", "wss"})
_CREDENTIALS = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^\s:/@,]*)(?::(?P<password>[^\s/]*))?@"
)


def _hide(match: re.Match[str]) -> str:
    scheme, user = match["scheme"], match["user"]
    if match["password"] is not None:
        return f"{scheme}{user}:{MASK}@"
    if user and scheme[:-3].lower() in TOKEN_SCHEMES:
        return f"{scheme}{MASK}@"
    return match[0]


def redact_urls(text: str) -> str:
    """``text`` with the password (or NATS token) of every URL in it replaced by ``***``."""
    if "://" not in text:
        return text
    return _CREDENTIALS.sub(_hide, text)
