"""Hide credentials in URLs wherever a URL may be logged or printed.

:func:`redact_urls` rewrites every ``scheme://user:password@`` in a text to ``scheme://user:***@``, so it
covers one URL, a comma-separated NATS server list (``nats://a:pw@h1:4222,nats://b:pw2@h2:4222``) and a
URL inside a log line or an error message alike. A NATS URL's bare user part is its token
(``nats://TOKEN@host``) and is hidden whole, a ``/`` in it too.

Passwords are often written unencoded (generated base64 secrets hold ``/``; ``@`` and ``:`` happen too), so
a password runs to the last ``@`` of the URL's authority, stopping only at white space or a comma (the next
URL of a server list). It may hold ``/`` and, before its first ``/``, ``?`` and ``#``; after a ``/`` the
``?`` or ``#`` begins a query or fragment, and after an ``@`` a ``/`` begins the path, so an ``@`` there
(``?mail=a@b``, ``mysql://u:pw@h/db@x``) is not taken for the end of the password. One shape is ambiguous:
``http://host:8080/a@b`` reads as user ``host`` with the password ``8080/a``; it is hidden, as leaking a
password is the worse mistake.
"""

from __future__ import annotations

import re

MASK = "***"
# Schemes whose bare user part (no ':password') is a secret token.
TOKEN_SCHEMES = frozenset({"nats", "tls", "ws", "wss"})
_CREDENTIALS = re.compile(
    r"""
    (?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)
    (?P<user>[^\s:/@,]*(?:/[^\s:@,?\#]*(?=@))?)   # a '/' only in a bare user (a NATS token) right before '@'
    (?::(?P<password>
        [^\s,@/]*             # up to a first '/': anything but white space and ','
        (?:/[^\s,@?\#]*)?     # from a '/' on: no '?' or '#' (they would begin a query or fragment)
        (?:@[^\s,@/?\#]*)*    # after an '@': no '/', '?' or '#' (they would begin the host's path)
    ))?
    @
    """,
    re.VERBOSE,
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
