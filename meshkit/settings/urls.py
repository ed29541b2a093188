"""Shape checks of the store URLs in the settings (``db.url``, ``redis.url``, ``nats.url``).

Each check raises :class:`ValueError` with a one-line reason; the settings validators turn it into a
message naming the setting. No message repeats the URL: it may hold a password.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# The drivers meshkit.infra.db runs (it switches the plain and pymysql ones to their async driver).
DB_DRIVERS = frozenset(
    {"sqlite", "sqlite+aiosqlite", "mysql", "mariadb", "mysql+pymysql", "mysql+aiomysql", "mariadb+aiomysql"}
)
DB_EXPECTED = "expected sqlite+aiosqlite:///path or mysql+aiomysql://user:pw@host/db"
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
REDIS_EXPECTED = "expected redis://host:port/db, rediss://... or unix:///path"
NATS_SCHEMES = frozenset({"nats", "tls", "ws", "wss"})
NATS_EXPECTED = "expected nats://host:port or tls://host:port, comma-separated for a cluster"


def _split(url: str, expected: str) -> SplitResult:
    """``url`` split, with a readable error for a bad port (urllib raises on ``.port`` only)."""
    try:
        parts = urlsplit(url.strip())
        _ = parts.port
    except ValueError:
        raise ValueError(f"bad host or port ({expected})") from None
    return parts


def check_db_url(url: str) -> str:
    """``url`` if it is an SQLAlchemy URL of a supported database, else :class:`ValueError`."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"not a database URL ({DB_EXPECTED})") from None
    if parsed.drivername not in DB_DRIVERS:
        raise ValueError(f"unsupported database driver {parsed.drivername!r} ({DB_EXPECTED})")
    if parsed.get_backend_name() != "sqlite" and not parsed.host:
        raise ValueError(f"no host ({DB_EXPECTED})")
    if not parsed.database:
        raise ValueError(f"no database name or file ({DB_EXPECTED})")
    return url


def check_redis_url(url: str) -> str:
    """``url`` if it is a ``redis://``, ``rediss://`` or ``unix://`` URL, else :class:`ValueError`."""
    parts = _split(url, REDIS_EXPECTED)
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(f"scheme must be redis, rediss or unix ({REDIS_EXPECTED})")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"no socket path ({REDIS_EXPECTED})")
        return url
    if not parts.hostname:
        raise ValueError(f"no host ({REDIS_EXPECTED})")
    database = parts.path.lstrip("/")
    if database and not database.isdigit():
        raise ValueError(f"database must be a number, not {database!r} ({REDIS_EXPECTED})")
    return url


def check_nats_urls(url: str) -> str:
    """``url`` if each comma-separated server is a NATS URL (or bare ``host:port``), else ValueError."""
    servers = [server.strip() for server in url.split(",") if server.strip()]
    if not servers:
        raise ValueError(f"no server ({NATS_EXPECTED})")
    for number, server in enumerate(servers, start=1):
        # nats-py reads a bare host:port as nats://host:port.
        parts = _split(server if "://" in server else f"nats://{server}", NATS_EXPECTED)
        where = f"server {number}: " if len(servers) > 1 else ""
        if parts.scheme not in NATS_SCHEMES:
            raise ValueError(f"{where}scheme must be nats, tls, ws or wss ({NATS_EXPECTED})")
        if not parts.hostname:
            raise ValueError(f"{where}no host ({NATS_EXPECTED})")
    return url
