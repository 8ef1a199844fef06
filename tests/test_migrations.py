"""Alembic: one linear history that builds, on SQLite and PostgreSQL, exactly the models' schema.

These tests build their own databases (a fresh SQLite file, a fresh PostgreSQL
database) rather than reuse the session ones, so they see a migration run from empty.
They are synchronous: ``env.py`` runs its own event loop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from app import models  # noqa: F401 - registers every table on Base.metadata
from app.db import Base, make_engine
from app.migrate import alembic_config, upgrade
from tests.conftest import PG_ADMIN_URL


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(_dsn(PG_ADMIN_URL))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def fresh_sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"


@pytest.fixture
def fresh_pg(pg_database: str) -> Iterator[str]:
    """An empty PostgreSQL database of our own (``pg_database`` skips or fails when the
    server is unreachable, as everywhere else)."""
    name = f"pledgeline_mig_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(
        "fresh_pg" if request.param == "postgresql" else "fresh_sqlite"
    )
    return url


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def _on(url: str, work: Any) -> Any:
    """Run ``work(sync_connection)`` on the database at ``url``."""

    async def _run() -> Any:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(_run())


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _differences(conn: Connection) -> list[Any]:
    # The options migrations/env.py gives autogenerate: what it sees, a new revision would hold.
    context = MigrationContext.configure(
        conn, opts={"target_metadata": Base.metadata, "compare_type": True}
    )
    return list(compare_metadata(context, Base.metadata))


def test_history_has_exactly_one_head_and_one_base() -> None:
    script = _script()
    assert len(script.get_heads()) == 1, script.get_heads()
    assert len(script.get_bases()) == 1, script.get_bases()
    revisions = list(script.walk_revisions())
    assert revisions, "no migrations"
    # Linear: no merge points, no branches, every revision reachable from head.
    assert all(not r.is_merge_point and not r.is_branch_point for r in revisions)
    assert {r.revision for r in revisions} == {
        r.revision for r in script.iterate_revisions(script.get_current_head(), "base")
    }


def test_upgrade_from_empty_matches_the_models(fresh_url: str) -> None:
    assert _on(fresh_url, _tables) == set()
    upgrade(fresh_url)
    assert _on(fresh_url, _current) == _script().get_current_head()
    tables = _on(fresh_url, _tables)
    assert set(Base.metadata.tables) <= tables
    assert tables - set(Base.metadata.tables) == {"alembic_version"}
    differences = _on(fresh_url, _differences)
    assert differences == [], "\n".join(map(repr, differences))
    # Running it again is a no-op.
    upgrade(fresh_url)
    assert _on(fresh_url, _differences) == []


def test_downgrade_to_base_and_back(fresh_url: str) -> None:
    upgrade(fresh_url)
    command.downgrade(alembic_config(fresh_url), "base")
    assert _on(fresh_url, _tables) <= {"alembic_version"}
    assert _on(fresh_url, _current) is None
    upgrade(fresh_url)
    assert _on(fresh_url, _current) == _script().get_current_head()
    assert _on(fresh_url, _differences) == []


def test_every_revision_upgrades_one_step_at_a_time(fresh_sqlite: str) -> None:
    script = _script()
    steps = [r.revision for r in reversed(list(script.walk_revisions()))]
    for revision in steps:
        upgrade(fresh_sqlite, revision)
        assert _on(fresh_sqlite, _current) == revision
    assert _on(fresh_sqlite, _differences) == []
