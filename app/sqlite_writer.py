"""SQLite: a write that is a fixed run of statements, in one trip to a thread of its own.

A unit of work on the async engine runs SQLAlchemy's async machinery (greenlets, the
ORM session) around each statement and makes a trip to its connection's thread for
each (``app/sqlite_driver.py``): for a pledge, several times SQLite's own work. A
write whose statements need nothing from the event loop between them (a new pledge:
its row, its roll-ups, its event, its audit row) runs here instead, whole: one
``BEGIN IMMEDIATE`` transaction on a connection of its own, in one thread reached
once. SQLite takes one writer at a time, so one thread loses nothing.

The statements are kept ones (``built_once``), compiled once for sqlite3 and sent
straight to it (``app/driver_statements.py``): SQLAlchemy's execution of each cost
more than SQLite's work on it, and that cost holds the GIL the requests need. The
connection is the writer engine's (opened as ``make_engine`` opens SQLite, with
its PRAGMAs); a failure is raised as SQLAlchemy's error of the same kind, never
with the parameters (donors' details).
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from app.driver_statements import Compiled

T = TypeVar("T")


class WriterConnection:
    """What a write is given: its transaction's connection, for kept statements."""

    def __init__(
        self, raw: sqlite3.Connection, compiled: Compiled, on_sent: list[Callable[[str], None]]
    ) -> None:
        self._raw = raw
        self._compiled = compiled
        self._on_sent = on_sent

    def rows(self, statement: Any, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Send ``statement``; its rows (``RETURNING``), converted by its columns' types."""
        driver = self._compiled(statement)
        arguments = driver.arguments(params)
        cursor = _send(self._raw, driver.sql, arguments, self._on_sent)
        if cursor.description is None:
            return []
        names = [description[0] for description in cursor.description]
        return driver.rows(names, cursor.fetchall())


def _send(
    raw: sqlite3.Connection,
    sql: str,
    arguments: list[Any] | tuple[()],
    on_sent: list[Callable[[str], None]],
) -> sqlite3.Cursor:
    for listener in on_sent:
        listener(sql)
    try:
        return raw.execute(sql, arguments)
    except sqlite3.Error as exc:
        # sqlite3's classes bear the DB-API names SQLAlchemy's own bear (IntegrityError...).
        raise DBAPIError.instance(sql, None, exc, sqlite3.Error, hide_parameters=True) from exc


class SQLiteWriter:
    """One thread and ``engine`` (a synchronous engine of one connection) for writes."""

    def __init__(self, engine: Engine, on_sent: list[Callable[[str], None]]) -> None:
        self.engine = engine
        self._on_sent = on_sent
        self._compiled = Compiled(engine.dialect)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")

    async def run(self, work: Callable[[WriterConnection], T]) -> T:
        """``work(connection)`` as one transaction in the writer's thread: committed
        when it returns, rolled back when it raises. A caller cancelled meanwhile does
        not stop it (as a statement sent to PostgreSQL is not)."""
        loop = asyncio.get_running_loop()
        # The caller's context goes along: what it set (a test's counting) holds there.
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._thread, context.run, self._transaction, work)

    def _transaction(self, work: Callable[[WriterConnection], T]) -> T:
        pooled = self.engine.raw_connection()
        try:
            raw = pooled.driver_connection
            assert isinstance(raw, sqlite3.Connection)  # in autocommit: BEGIN is ours
            _send(raw, "BEGIN IMMEDIATE", (), self._on_sent)
            try:
                done = work(WriterConnection(raw, self._compiled, self._on_sent))
            except BaseException:
                raw.rollback()
                raise
            _send(raw, "COMMIT", (), [])
            return done
        finally:
            pooled.close()

    async def close(self) -> None:
        """Close the connection in the thread that used it, then end the thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self.engine.dispose)
        self._thread.shutdown(wait=True)
