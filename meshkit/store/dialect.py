"""SQL that differs between SQLite and MySQL/MariaDB, for units of work written once in qmark style."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Dialect:
    """One database family's spelling of the few statements that cannot be written portably."""

    name: str  # "sqlite" or "mysql"

    @property
    def is_mysql(self) -> bool:
        """True on MySQL/MariaDB."""
        return self.name == MYSQL.name

    def insert_ignore(self, table: str, columns: Sequence[str]) -> str:
        """``INSERT`` of one row into ``table`` that does nothing when the key exists (qmark style).

        ``execute`` of it answers 1 when the row was inserted, 0 when it was already there.
        """
        return _insert_ignore(self.name, table, tuple(columns))

    @property
    def share_lock(self) -> str:
        """Suffix of a ``SELECT`` that reads the newest committed row and holds it until commit.

        Empty on SQLite: the runner's single writer already serialises every write transaction.
        """
        return " LOCK IN SHARE MODE" if self.is_mysql else ""

    @property
    def for_update(self) -> str:
        """Suffix of a ``SELECT`` that reads the newest committed row and locks it for writing until commit.

        Empty on SQLite: the runner's single writer already serialises every write transaction.
        """
        return " FOR UPDATE" if self.is_mysql else ""


SQLITE = Dialect("sqlite")
MYSQL = Dialect("mysql")


@lru_cache(maxsize=256)
def _insert_ignore(dialect: str, table: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    if dialect == MYSQL.name:
        return f"INSERT IGNORE INTO {table} ({names}) VALUES ({marks})"
    # ON CONFLICT, not INSERT OR IGNORE: only a key conflict is ignored, a NOT NULL violation still fails.
    return f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"


@lru_cache(maxsize=1024)
def to_format_style(sql: str) -> str:
    """The qmark SQL ``sql`` in PyMySQL's format style: ``%`` doubled, ``?`` -> ``%s``.

    Every ``?`` is taken for a placeholder: put a literal question mark in a parameter, not in the SQL.
    """
    return sql.replace("%", "%%").replace("?", "%s")
