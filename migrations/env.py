"""Alembic environment: one history for SQLite and PostgreSQL.

The URL comes from ``PLEDGELINE_DATABASE_URL`` (or ``-x url=...``); SQLite uses batch
mode so ALTERs work by copying tables, with foreign keys off while it does (a copied
table is dropped: enforced, that would delete the rows referring to it).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from app import models  # noqa: F401 - registers every table on Base.metadata
from app.db import Base, make_engine
from app.settings import get_settings

target_metadata = Base.metadata


def _url() -> str:
    explicit = context.get_x_argument(as_dictionary=True).get("url")
    return (
        explicit
        or context.config.get_main_option("pledgeline.url")
        or (get_settings().database_url)
    )


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            _check_foreign_keys(connection)


def _check_foreign_keys(connection: Connection) -> None:
    """Foreign keys are off while SQLite migrates (see ``make_engine``): a migration
    must still leave every reference whole, or the upgrade is rolled back."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise RuntimeError(f"migration left broken references (table, rowid, parent): {broken}")


async def _run_async() -> None:
    engine = make_engine(_url(), foreign_keys=False)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
