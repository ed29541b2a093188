"""Clients of the infrastructure servers the services run on.

* :mod:`~meshkit.infra.db` - async SQL engines for SQLite (WAL) and MySQL/MariaDB.
* :mod:`~meshkit.infra.migrate` - the one Alembic runner, with :mod:`~meshkit.infra.migrations` as
  the shared environment of every component's migration history.
* :mod:`~meshkit.infra.nats` - NATS JetStream: connect, streams, scheduled messages, consumers.
* :mod:`~meshkit.infra.redisutil` - small helpers for values read from Redis.
"""
