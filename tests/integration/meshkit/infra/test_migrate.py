"""The shared Alembic runner (meshkit.infra.migrate) on real SQLite and MariaDB databases."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from meshkit.barrier import BARRIER_VERSIONS
from meshkit.infra.db import create_engine
from meshkit.infra.migrate import MigrationError, upgrade, version_table
from meshkit.settings.config import DbSettings

TIMEOUT = 60.0

# A second component whose only revision creates a table; re-running it would fail on the existing table.
WIDGET_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "widget_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("widget", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("INSERT INTO widget (id) VALUES (1)")


def downgrade():
    op.drop_table("widget")
"""


def table_names(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def versions(engine: AsyncEngine, component: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(f"SELECT version_num FROM {version_table(component)}"))
        return [r[0] for r in rows]


@pytest.fixture
def widget_versions(tmp_path: Path) -> Path:
    folder = tmp_path / "widget_versions"
    folder.mkdir()
    (folder / "widget_0001_create.py").write_text(WIDGET_REVISION)
    return folder


async def test_upgrade_twice_is_a_noop(db_engine: AsyncEngine) -> None:
    await upgrade(db_engine, "barrier", BARRIER_VERSIONS)
    await upgrade(db_engine, "barrier", BARRIER_VERSIONS)

    async with db_engine.connect() as conn:
        assert {"tx_barrier", "alembic_version_barrier"} <= await conn.run_sync(table_names)
    assert await versions(db_engine, "barrier") == ["barrier_0001"]


async def test_components_keep_separate_histories(db_engine: AsyncEngine, widget_versions: Path) -> None:
    await upgrade(db_engine, "barrier", BARRIER_VERSIONS)
    await upgrade(db_engine, "widget", widget_versions)
    await upgrade(db_engine, "widget", widget_versions)

    assert await versions(db_engine, "barrier") == ["barrier_0001"]
    assert await versions(db_engine, "widget") == ["widget_0001"]
    async with db_engine.connect() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM widget"))).scalar_one() == 1


async def test_concurrent_upgrades_both_succeed(db_url: str, widget_versions: Path) -> None:
    # Two "replicas": separate engines (pools, connections) on the same database, started at once.
    engines = [create_engine(DbSettings(url=db_url)) for _ in range(2)]
    try:
        await asyncio.wait_for(
            asyncio.gather(*(upgrade(e, "barrier", BARRIER_VERSIONS) for e in engines)), TIMEOUT
        )
        await asyncio.wait_for(
            asyncio.gather(*(upgrade(e, "widget", widget_versions) for e in engines)), TIMEOUT
        )

        assert await versions(engines[0], "barrier") == ["barrier_0001"]
        assert await versions(engines[0], "widget") == ["widget_0001"]
        async with engines[0].connect() as conn:
            assert (await conn.execute(text("SELECT COUNT(*) FROM widget"))).scalar_one() == 1
    finally:
        for engine in engines:
            await engine.dispose()


async def test_bad_component_name_is_refused(db_engine: AsyncEngine) -> None:
    with pytest.raises(MigrationError, match="component"):
        await upgrade(db_engine, "Bad-Name", BARRIER_VERSIONS)


async def test_missing_versions_folder_is_refused(db_engine: AsyncEngine, tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="does not exist"):
        await upgrade(db_engine, "ghost", tmp_path / "nowhere")
