"""Alembic revisions of the ``stock`` component (applied by :func:`meshkit.infra.migrate.upgrade`)."""

from pathlib import Path

# Pass to meshkit.infra.migrate.upgrade(engine, "stock", STOCK_VERSIONS).
STOCK_VERSIONS = Path(__file__).resolve().parent / "versions"
