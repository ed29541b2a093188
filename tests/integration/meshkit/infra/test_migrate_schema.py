"""Schema checks at start (meshkit.infra.migrate.prepare_schema) on real SQLite and MariaDB databases."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from meshkit.barrier import BARRIER_VERSIONS
from meshkit.infra.migrate import SchemaNotCurrent, prepare_schema, state, upgrade_all

REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "{name}"
down_revision = {parent!r}
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("{name}", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("{name}")
"""


def add_revision(folder: Path, name: str, parent: str | None) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(REVISION.format(name=name, parent=parent))


@pytest.fixture
def gadget_v1(tmp_path: Path) -> Path:
    folder = tmp_path / "gadget_v1"
    add_revision(folder, "gadget_0001", None)
    return folder


@pytest.fixture
def gadget_v2(tmp_path: Path) -> Path:
    folder = tmp_path / "gadget_v2"
    add_revision(folder, "gadget_0001", None)
    add_revision(folder, "gadget_0002", "gadget_0001")
    return folder


async def test_fresh_database_is_refused_when_migrate_on_start_is_off(
    db_engine: AsyncEngine, gadget_v1: Path
) -> None:
    with pytest.raises(SchemaNotCurrent) as refused:
        await prepare_schema(db_engine, [("barrier", BARRIER_VERSIONS), ("gadget", gadget_v1)], migrate=False)
    message = str(refused.value)
    assert "\n" not in message
    assert "'barrier' at no tables, this build needs barrier_0001" in message
    assert "python -m <process> migrate" in message


async def test_migrate_on_start_upgrades_then_the_check_passes(
    db_engine: AsyncEngine, gadget_v1: Path
) -> None:
    schema = [("barrier", BARRIER_VERSIONS), ("gadget", gadget_v1)]
    await prepare_schema(db_engine, schema, migrate=True)
    await prepare_schema(db_engine, schema, migrate=False)
    assert (await state(db_engine, "gadget", gadget_v1)).current == ("gadget_0001",)


async def test_database_behind_this_build_is_refused(
    db_engine: AsyncEngine, gadget_v1: Path, gadget_v2: Path
) -> None:
    await upgrade_all(db_engine, [("gadget", gadget_v1)])
    with pytest.raises(SchemaNotCurrent, match="'gadget' at gadget_0001, this build needs gadget_0002"):
        await prepare_schema(db_engine, [("gadget", gadget_v2)], migrate=False)


async def test_schema_of_a_newer_release_is_accepted_with_a_warning(
    db_engine: AsyncEngine, gadget_v1: Path, gadget_v2: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await upgrade_all(db_engine, [("gadget", gadget_v2)])
    with caplog.at_level(logging.WARNING, logger="meshkit.infra.migrate"):
        # The previous release still rolling out: neither the check nor a migrate-on-start fails.
        await prepare_schema(db_engine, [("gadget", gadget_v1)], migrate=False)
        await prepare_schema(db_engine, [("gadget", gadget_v1)], migrate=True)
    found = await state(db_engine, "gadget", gadget_v1)
    assert found.ahead
    assert found.current == ("gadget_0002",)
    assert any("newer than this build" in r.getMessage() for r in caplog.records)
