"""PostgreSQL: a kept statement sent straight to asyncpg (``Database.execute_alone``).

What SQLAlchemy would otherwise do is kept: a failure is raised as a
``sqlalchemy.exc.DBAPIError`` of the same kind (never with the parameters: donors'
details), a connection broken on the way is invalidated, not given back to the
pool; and listeners hear of every statement sent (``on_sent``), as the engine's
``before_cursor_execute`` listeners hear of the others, so the statement budgets
still count it. Compiling: ``app/driver_statements.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
from sqlalchemy.exc import (
    DatabaseError,
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from app.driver_statements import DriverStatement


async def fetch(
    conn: AsyncConnection,
    statement: DriverStatement,
    params: Mapping[str, Any],
    on_sent: list[Callable[[str], None]],
) -> list[dict[str, Any]]:
    """Send ``statement`` on ``conn`` (autocommit: a transaction of its own), its rows."""
    arguments = statement.arguments(params)
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    for listener in on_sent:
        listener(statement.sql)
    try:
        records = await driver.fetch(statement.sql, *arguments)
    except Exception as exc:
        # Not an answer from the server (a connection cut, refused, timed out): the
        # connection is dropped, not given back to the pool.
        broken = driver.is_closed() or not isinstance(exc, asyncpg.PostgresError)
        if broken:
            await conn.invalidate(exc)
        kind = OperationalError if broken else _error_class(exc)
        raise kind(
            statement.sql, None, exc, hide_parameters=True, connection_invalidated=broken
        ) from exc
    return statement.rows(list(records[0].keys()) if records else [], records)


# PostgreSQL's error classes (SQLSTATE) as SQLAlchemy names them, for the callers
# that tell a taken key from a failure (``IntegrityError``).
_ERROR_CLASSES: tuple[tuple[type[Exception], type[DBAPIError]], ...] = (
    (asyncpg.IntegrityConstraintViolationError, IntegrityError),
    (asyncpg.DataError, DataError),
    (asyncpg.SyntaxOrAccessError, ProgrammingError),
)


def _error_class(exc: Exception) -> type[DBAPIError]:
    for driver_class, error_class in _ERROR_CLASSES:
        if isinstance(exc, driver_class):
            return error_class
    return DatabaseError
