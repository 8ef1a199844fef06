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
from dataclasses import dataclass
from typing import Any, TypeVar, cast

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


@dataclass
class _Write:
    """One caller's write: its work, its context (what it set holds in the thread)."""

    work: Callable[[WriterConnection], Any]
    context: contextvars.Context
    outcome: tuple[bool, Any] | None = None  # (succeeded, its value or its exception)
    dropped: bool = False  # its caller was cancelled before it ran


class SQLiteWriter:
    """One thread and ``engine`` (a synchronous engine of one connection) for writes.

    **Group commit.** Writes that arrive while another runs are run together, in one
    transaction, by whichever caller next holds the write lock: one ``BEGIN
    IMMEDIATE``, one ``COMMIT`` and one trip to the thread for all of them. If one of
    them fails the whole transaction is rolled back and each is run again alone, in
    a transaction of its own, so one write's failure never undoes another's.
    """

    def __init__(self, engine: Engine, on_sent: list[Callable[[str], None]]) -> None:
        self.engine = engine
        self._on_sent = on_sent
        self._compiled = Compiled(engine.dialect)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._pending: list[_Write] = []

    async def run(self, work: Callable[[WriterConnection], T], lock: asyncio.Lock) -> T:
        """``work(connection)`` in a transaction of the writer's thread, under ``lock``
        (the process's one writer at a time): committed when it returns, rolled back
        when it raises. A caller cancelled once its write has started does not stop
        it (as a statement sent to PostgreSQL is not)."""
        # The caller's context goes along: what it set (a test's counting) holds there.
        write = _Write(work, contextvars.copy_context())
        self._pending.append(write)
        try:
            async with lock:
                if write.outcome is None:  # not run by an earlier holder of the lock
                    writes, self._pending = self._pending, []
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(self._thread, self._run_all, writes)
        except asyncio.CancelledError:
            write.dropped = True  # not run if it has not been yet
            raise
        assert write.outcome is not None
        succeeded, value = write.outcome
        if not succeeded:
            raise value
        return cast(T, value)

    def _run_all(self, writes: list[_Write]) -> None:
        writes = [write for write in writes if not write.dropped]
        if not writes:
            return
        pooled = self.engine.raw_connection()
        try:
            raw = pooled.driver_connection
            assert isinstance(raw, sqlite3.Connection)  # in autocommit: BEGIN is ours
            if not self._in_one_transaction(raw, writes) and len(writes) > 1:
                # Each again alone: one write's failure undoes no other.
                for write in writes:
                    self._in_one_transaction(raw, [write])
        finally:
            pooled.close()

    def _in_one_transaction(self, raw: sqlite3.Connection, writes: list[_Write]) -> bool:
        """``writes`` in one transaction: committed, each given its value; or, when one
        fails, all rolled back (a lone write given its failure). False if one failed."""
        values = []
        try:
            writes[0].context.run(_send, raw, "BEGIN IMMEDIATE", (), self._on_sent)
            connection = WriterConnection(raw, self._compiled, self._on_sent)
            for write in writes:
                values.append(write.context.run(write.work, connection))
            _send(raw, "COMMIT", (), [])
        except Exception as exc:
            raw.rollback()
            if len(writes) == 1:
                writes[0].outcome = (False, exc)
            return False
        for write, value in zip(writes, values, strict=True):
            write.outcome = (True, value)
        return True

    async def close(self) -> None:
        """Close the connection in the thread that used it, then end the thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self.engine.dispose)
        self._thread.shutdown(wait=True)
