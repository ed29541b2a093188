"""The operator queries name, for MySQL/MariaDB, the index that serves their filters; SQLite: plain SQL."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import mysql, sqlite

from coordinator.engine.model import Mode, Status
from coordinator.store.queries import encode_cursor, list_statement, stats_statements, stuck_statement
from coordinator.store.retention import expired_statement

CASES = [
    ({}, "ix_trans_global_created"),
    ({"status": Status.PREPARED}, "ix_trans_global_status_created"),
    ({"mode": Mode.SAGA}, "ix_trans_global_mode_created"),
    ({"mode": Mode.MSG, "status": Status.FAILED}, "ix_trans_global_mode_status_created"),
]


@pytest.mark.parametrize(("filters", "index"), CASES)
def test_list_statement_forces_the_index_of_its_filters_on_mysql(
    filters: dict[str, object], index: str
) -> None:
    sql = str(list_statement(**filters).compile(dialect=mysql.dialect()))  # type: ignore[arg-type]
    assert f"FROM trans_global FORCE INDEX ({index})" in sql
    assert "ORDER BY trans_global.created_at DESC, trans_global.gid DESC" in sql


def test_statements_carry_no_hint_on_sqlite() -> None:
    statements = [
        list_statement(mode=Mode.TCC),
        stuck_statement(created_by=0, min_attempts=2),
        stats_statements()[1],
        expired_statement(0, 10),
    ]
    for stmt in statements:
        assert "INDEX" not in str(stmt.compile(dialect=sqlite.dialect()))


def test_list_cursor_bounds_created_at_so_the_index_seeks_to_it() -> None:
    stmt = list_statement(cursor=encode_cursor(1234, "g-9"))
    sql = str(stmt.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    assert "trans_global.created_at <= 1234" in sql
    assert "trans_global.created_at < 1234 OR trans_global.gid < 'g-9'" in sql


def test_stuck_and_retention_read_the_finished_index_on_mysql() -> None:
    for stmt in (
        stuck_statement(created_by=0, min_attempts=0),
        stats_statements()[1],
        expired_statement(0, 5),
    ):
        assert "FORCE INDEX (ix_trans_global_finished_created)" in str(stmt.compile(dialect=mysql.dialect()))
