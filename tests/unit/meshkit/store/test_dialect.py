"""The store's SQL written once in qmark style: dialect helpers and the MySQL placeholder translation."""

from __future__ import annotations

import pymysql
import pytest

from meshkit.errors import TransientError
from meshkit.store import MYSQL, SQLITE
from meshkit.store.dialect import to_format_style
from meshkit.store.errors import mysql_transient


def test_insert_ignore_ignores_only_key_conflicts_on_sqlite() -> None:
    assert (
        SQLITE.insert_ignore("t", ("a", "b")) == "INSERT INTO t (a, b) VALUES (?, ?) ON CONFLICT DO NOTHING"
    )


def test_insert_ignore_on_mysql() -> None:
    assert MYSQL.insert_ignore("t", ("a", "b")) == "INSERT IGNORE INTO t (a, b) VALUES (?, ?)"


def test_share_lock_only_on_mysql() -> None:
    assert (SQLITE.share_lock, MYSQL.share_lock) == ("", " LOCK IN SHARE MODE")


def test_for_update_only_on_mysql() -> None:
    assert (SQLITE.for_update, MYSQL.for_update) == ("", " FOR UPDATE")


def test_placeholders_translated_and_percent_signs_kept() -> None:
    sql = "SELECT name FROM t WHERE name LIKE 'a%' AND n = ? AND m = ?"

    assert to_format_style(sql) == "SELECT name FROM t WHERE name LIKE 'a%%' AND n = %s AND m = %s"


@pytest.mark.parametrize("code", [1205, 1213, 2006, 2013])
def test_mysql_lock_and_connection_errors_are_transient(code: int) -> None:
    assert isinstance(mysql_transient(pymysql.err.OperationalError(code, "x")), TransientError)


def test_mysql_closed_connection_is_transient() -> None:
    assert isinstance(mysql_transient(pymysql.err.InterfaceError(0, "")), TransientError)


def test_mysql_duplicate_key_is_not_transient() -> None:
    assert mysql_transient(pymysql.err.IntegrityError(1062, "Duplicate entry")) is None
