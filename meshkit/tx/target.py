"""Branch targets: ``host:port/package.Service/Method`` (DESIGN.md section 3), parsed without grpc.

The coordinator validates targets with :func:`parse_target` before it records a transaction, and the
generic branch caller (:mod:`meshkit.tx.branchcall`) uses the parsed form to pick a channel and a method.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_TARGET_LEN = 512

_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9\-.]{0,252}[A-Za-z0-9])?)"
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_TARGET_RE = re.compile(
    rf"(?P<host>{_HOST}):(?P<port>[0-9]{{1,5}})/(?P<service>{_IDENT}(?:\.{_IDENT})*)/(?P<method>{_IDENT})"
)


class TargetError(ValueError):
    """A target string is not ``host:port/package.Service/Method``."""


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed branch target."""

    host: str
    port: int
    service: str
    method: str

    @property
    def address(self) -> str:
        """``host:port``: what a channel connects to."""
        return f"{self.host}:{self.port}"

    @property
    def method_path(self) -> str:
        """``/package.Service/Method``: the gRPC method path."""
        return f"/{self.service}/{self.method}"

    def __str__(self) -> str:
        return f"{self.address}{self.method_path}"


def parse_target(text: str) -> Target:
    """Parse ``host:port/package.Service/Method``; raises :class:`TargetError` saying what is wrong."""
    if not text:
        raise TargetError("missing (want host:port/package.Service/Method)")
    if len(text) > MAX_TARGET_LEN:
        raise TargetError(f"longer than {MAX_TARGET_LEN} characters")
    match = _TARGET_RE.fullmatch(text)
    if match is None:
        raise TargetError(f"{text!r} is not host:port/package.Service/Method")
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise TargetError(f"{text!r}: port {port} is not in 1..65535")
    return Target(host=match["host"], port=port, service=match["service"], method=match["method"])
