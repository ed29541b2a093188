"""One Alembic migration runner for every component (barrier, coordinator store, each service).

Each component keeps its revisions in its own ``versions`` folder and its own version table
(``alembic_version_<component>``), so several components can share one database without their
histories mixing. All of them run in the shared environment in ``meshkit/infra/migrations/env.py``::

    await upgrade(engine, "barrier", BARRIER_VERSIONS)
    await upgrade(engine, "points", POINTS_VERSIONS)

A process's whole schema is a :data:`Schema`, its components in upgrade order. ``python -m <process>
migrate`` runs :func:`upgrade_all` and exits (a Kubernetes init container or Job); at start a process
calls :func:`prepare_schema`, which upgrades when ``db.migrate_on_start`` is on (the local stack) and
otherwise refuses a schema that lacks a revision of this build with :class:`SchemaNotCurrent`. A
schema *ahead* of this build (revisions it does not know: a newer release migrated, this one is the
previous release still rolling out) is accepted with a WARNING, since each release's migrations keep
the previous release working (expand first, contract a release later).

Two replicas starting at once are safe: on MySQL/MariaDB the runner holds
``GET_LOCK('mesh_migrate_<component>', 60)`` for the whole upgrade; on SQLite the migration runs in
one ``BEGIN IMMEDIATE`` transaction, whose write lock serialises the replicas. The second one then
finds the version table at head and does nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from meshkit.infra.db import is_mysql

log = logging.getLogger(__name__)

# (component, versions folder) of every component of a process's database, in upgrade order.
Schema = Sequence[tuple[str, Path]]
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
LOCK_TIMEOUT_SECONDS = 60
_COMPONENT_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")


class MigrationError(RuntimeError):
    """A migration could not run (bad component name, missing folder, lock not obtained)."""


class SchemaNotCurrent(MigrationError):
    """The database lacks revisions this build needs and migrating at start is off."""


@dataclass(frozen=True)
class SchemaState:
    """Where one component's tables stand against this build's revisions."""

    component: str
    current: tuple[str, ...]  # revisions recorded in the database (empty: never migrated)
    heads: tuple[str, ...]  # this build's newest revisions
    unknown: tuple[str, ...]  # recorded revisions this build does not know (a newer release's)

    @property
    def at_head(self) -> bool:
        """The database is exactly at this build's head."""
        return set(self.current) == set(self.heads)

    @property
    def ahead(self) -> bool:
        """The database holds revisions of a newer build."""
        return bool(self.unknown)

    def describe(self) -> str:
        """``component at X, this build needs Y``, for one-line messages."""
        at = ",".join(self.current) or "no tables"
        return f"{self.component!r} at {at}, this build needs {','.join(self.heads)}"


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


async def state(engine: AsyncEngine, component: str, versions_dir: Path) -> SchemaState:
    """Where ``component``'s tables stand (reads the version table only, changes nothing)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_state_sync, component, versions_dir)


async def upgrade_all(engine: AsyncEngine, schema: Schema) -> None:
    """:func:`upgrade` every component of ``schema`` in order; one a newer build migrated is left alone."""
    for component, versions_dir in schema:
        found = await state(engine, component, versions_dir)
        if found.ahead:
            log.warning("schema of %s (newer than this build); not migrated", found.describe())
            continue
        await upgrade(engine, component, versions_dir)


async def check_current(engine: AsyncEngine, schema: Schema) -> None:
    """Raise :class:`SchemaNotCurrent` (one line) unless every component has this build's revisions."""
    for component, versions_dir in schema:
        found = await state(engine, component, versions_dir)
        if found.ahead:
            log.warning("schema of %s (newer than this build); starting anyway", found.describe())
        elif not found.at_head:
            raise SchemaNotCurrent(
                f"database schema not current: {found.describe()}; run the migrate command "
                "(python -m <process> migrate) first, or set db.migrate_on_start=true"
            )


async def prepare_schema(engine: AsyncEngine, schema: Schema, *, migrate: bool) -> None:
    """At start: :func:`upgrade_all` if ``migrate`` (``db.migrate_on_start``), else :func:`check_current`."""
    if migrate:
        await upgrade_all(engine, schema)
    else:
        await check_current(engine, schema)


def _state_sync(connection: Connection, component: str, versions_dir: Path) -> SchemaState:
    if not versions_dir.is_dir():
        raise MigrationError(f"component {component!r}: versions folder {versions_dir} does not exist")
    script = ScriptDirectory.from_config(_alembic_config(connection, component, versions_dir.resolve()))
    with _quiet(logging.getLogger("alembic.runtime.migration")):  # no "Context impl ..." for a read
        context = MigrationContext.configure(connection, opts={"version_table": version_table(component)})
    current = tuple(context.get_current_heads())
    unknown = []
    for revision in current:
        try:
            script.get_revision(revision)
        except CommandError:
            unknown.append(revision)
    return SchemaState(component, current, tuple(script.get_heads()), tuple(unknown))


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


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
