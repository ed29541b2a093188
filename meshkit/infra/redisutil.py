"""Small helpers for values read from Redis (replies arrive as bytes unless the client decodes them)."""

from __future__ import annotations


def as_text(value: object) -> str:
    """A Redis reply value as ``str``: bytes decoded as UTF-8 (undecodable bytes replaced), else ``str()``."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else str(value)
