"""Alembic revisions of the ``stock`` component (applied by :func:`meshkit.migrate.upgrade`)."""

from pathlib import Path

# Pass to meshkit.migrate.upgrade(engine, "stock", STOCK_VERSIONS).
STOCK_VERSIONS = Path(__file__).resolve().parent / "versions"
