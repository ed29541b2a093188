"""The storage hot path: units of work on the process's own database, one hop each, close to the driver.

A *unit of work* is a plain synchronous function of a :class:`Conn` (prepared SQL, ``?`` placeholders);
a :class:`StoreRunner` (one per process and database) runs it in one transaction off the event loop and
commits it. The SQL barrier on top of it is :class:`meshkit.barrier.RunnerBarrier`.

* :mod:`~meshkit.store.conn` - :class:`Conn` (what a unit may do) and the :data:`Unit` type.
* :mod:`~meshkit.store.dialect` - :class:`Dialect`: insert-ignore and share locks per database.
* :mod:`~meshkit.store.runner` - :class:`StoreRunner`: ``await runner.run(unit)``, ``runner.read(unit)``.
* :mod:`~meshkit.store.group_commit` - the SQLite writer thread: many units per transaction, one
  SAVEPOINT each (:class:`StoreStats` counts its commits).
* :mod:`~meshkit.store.sqlite` - SQLite connections (stdlib ``sqlite3``) and the reader threads.
* :mod:`~meshkit.store.mysql` - the MySQL/MariaDB pool (PyMySQL, one transaction per unit).
* :mod:`~meshkit.store.errors` - which driver errors become :class:`~meshkit.errors.TransientError`;
  :class:`UnitTransactionError` (a unit may not begin, commit or roll back itself).
* :mod:`~meshkit.store.delivery` - results back to the awaiting asyncio futures, one hop per batch.

Usage::

    runner = StoreRunner.open(settings.db.url, settings.store)

    def rename(conn: Conn) -> int:
        return conn.execute("UPDATE item SET name = ? WHERE id = ?", (name, item_id))

    changed = await runner.run(rename)
    await runner.close()

Schemas and migrations stay with SQLAlchemy/Alembic (:mod:`meshkit.infra.migrate`).
"""

from meshkit.store.conn import Conn, Params, Row, Unit
from meshkit.store.dialect import MYSQL, SQLITE, Dialect
from meshkit.store.errors import UnitTransactionError
from meshkit.store.group_commit import StoreStats
from meshkit.store.runner import StoreRunner

__all__ = [
    "MYSQL",
    "SQLITE",
    "Conn",
    "Dialect",
    "Params",
    "Row",
    "StoreRunner",
    "StoreStats",
    "Unit",
    "UnitTransactionError",
]
