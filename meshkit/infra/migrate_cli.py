"""``python -m <process> migrate`` and the schema check at start, as process entry points.

The migrate command runs the process's migrations (:func:`meshkit.infra.migrate.upgrade_all`) and
exits: 0 when the schema is at this build's head, 1 with a one-line message otherwise. A Kubernetes
init container (or a Job) runs it before the server starts with ``db.migrate_on_start`` off; the
server then checks the schema first (:func:`check_command`) and exits 1 with one line when it lacks a
revision of this build.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from sqlalchemy.exc import SQLAlchemyError

from meshkit.infra.db import create_engine
from meshkit.infra.migrate import MigrationError, Schema, SchemaNotCurrent, check_current, upgrade_all
from meshkit.observability.redact import redact_urls
from meshkit.settings.config import MeshSettings

log = logging.getLogger(__name__)


async def migrate(settings: MeshSettings, schema: Schema) -> None:
    """Bring every component of ``schema`` in ``settings.db`` to this build's head."""
    engine = create_engine(settings.db)
    try:
        await upgrade_all(engine, schema)
    finally:
        await engine.dispose()
    log.info("schema migrated: %s", ", ".join(component for component, _ in schema))


def migrate_command(settings: MeshSettings, schema: Schema, prog: str) -> int:
    """Run :func:`migrate`; the exit status (0 done, 1 failed with one line on stderr)."""
    try:
        asyncio.run(migrate(settings, schema))
    except (MigrationError, SQLAlchemyError, OSError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"{prog} migrate: {redact_urls(first_line)}", file=sys.stderr)
        return 1
    return 0


async def check(settings: MeshSettings, schema: Schema) -> None:
    """Raise :class:`SchemaNotCurrent` unless ``settings.db`` has every revision of ``schema``."""
    engine = create_engine(settings.db)
    try:
        await check_current(engine, schema)
    finally:
        await engine.dispose()


def check_command(settings: MeshSettings, schema: Schema, prog: str) -> int:
    """Before serving with ``db.migrate_on_start`` off: 0 when the schema is current, else 1 (one line)."""
    try:
        asyncio.run(check(settings, schema))
    except SchemaNotCurrent as exc:
        print(f"{prog}: {str(exc).replace('<process>', prog)}", file=sys.stderr)
        return 1
    return 0
