"""One Alembic migration runner for every component (barrier, coordinator store, each service).

Each component keeps its revisions in its own ``versions`` folder and its own version table
(``alembic_version_<component>``), so several components can share one database without their
histories mixing. All of them run in the shared environment in ``meshkit/infra/migrations/env.py``::

    await upgrade(engine, "barrier", BARRIER_VERSIONS)
    await upgrade(engine, "points", POINTS_VERSIONS)

Two replicas starting at once are safe: on MySQL/MariaDB the runner holds
``GET_LOCK('mesh_migrate_<component>', 60)`` for the whole upgrade; on SQLite the migration runs in
one ``BEGIN IMMEDIATE`` transaction, whose write lock serialises the replicas. The second one then
finds the version table at head and does nothing.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from meshkit.infra.db import is_mysql

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
LOCK_TIMEOUT_SECONDS = 60
_COMPONENT_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")


class MigrationError(RuntimeError):
    """A migration could not run (bad component name, missing folder, lock not obtained)."""


def version_table(component: str) -> str:
    """The Alembic version table of ``component``."""
    return f"alembic_version_{component}"


async def upgrade(engine: AsyncEngine, component: str, versions_dir: Path) -> None:
    """Bring ``component``'s tables to the newest revision found in ``versions_dir``.

    Idempotent: at head it does nothing. Raises :class:`MigrationError` when the component name is
    not ``[a-z][a-z0-9_]*`` (at most 40 characters), the folder is missing, or the MySQL lock is not
    obtained within 60 seconds; errors of a revision itself propagate and leave its transaction rolled
    back (MySQL commits DDL implicitly, so a half-applied revision there must be repaired by hand).
    """
    if not _COMPONENT_RE.fullmatch(component):
        raise MigrationError(f"component {component!r}: must match {_COMPONENT_RE.pattern}")
    async with engine.connect() as conn, _migration_lock(conn, component):
        await conn.run_sync(_upgrade_sync, component, versions_dir)


@asynccontextmanager
async def _migration_lock(conn: AsyncConnection, component: str) -> AsyncIterator[None]:
    """Hold MySQL's named lock for ``component``; on SQLite the transaction's write lock suffices."""
    if not is_mysql(conn.engine):
        yield
        return
    name = f"mesh_migrate_{component}"
    got = (
        await conn.execute(
            text("SELECT GET_LOCK(:name, :timeout)"), {"name": name, "timeout": LOCK_TIMEOUT_SECONDS}
        )
    ).scalar()
    await conn.commit()
    if got != 1:
        raise MigrationError(f"component {component!r}: migration lock {name} not obtained")
    try:
        yield
    finally:
        if not conn.invalidated:
            await conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
            await conn.commit()


def _alembic_config(connection: Connection, component: str, versions_dir: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", _ini_escape(str(MIGRATIONS_DIR)))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", _ini_escape(str(versions_dir)))
    config.attributes["connection"] = connection
    config.attributes["version_table"] = version_table(component)
    return config


def _upgrade_sync(connection: Connection, component: str, versions_dir: Path) -> None:
    if not versions_dir.is_dir():
        raise MigrationError(f"component {component!r}: versions folder {versions_dir} does not exist")
    config = _alembic_config(connection, component, versions_dir.resolve())
    if connection.in_transaction():
        connection.commit()
    # One transaction for the whole upgrade (BEGIN IMMEDIATE on SQLite): env.py sees it as external.
    with connection.begin():
        command.upgrade(config, "head")


def _ini_escape(value: str) -> str:
    """Escape ``%`` for Alembic's ConfigParser-backed options."""
    return value.replace("%", "%%")
