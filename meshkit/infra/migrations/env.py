"""Alembic environment shared by every component; driven only by :func:`meshkit.infra.migrate.upgrade`.

The runner hands over an open SQLAlchemy connection (already inside a transaction) and the component's
version table through ``config.attributes``; this file only configures the context and runs the
migrations on that connection. Offline (SQL script) mode is not supported.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection


def run_online() -> None:
    """Run the pending migrations on the connection the runner passed in."""
    attributes = context.config.attributes
    connection = attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "meshkit migrations run through meshkit.infra.migrate.upgrade (no connection given)"
        )
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table=str(attributes["version_table"]),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("meshkit migrations do not support offline mode")
run_online()
