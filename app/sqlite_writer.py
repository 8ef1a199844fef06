"""SQLite: a write that is a fixed run of statements, in one trip to a thread of its own.

A unit of work on the async engine runs SQLAlchemy's async machinery (greenlets, the
ORM session) around each statement and makes a trip to its connection's thread for
each (``app/sqlite_driver.py``): for a pledge, several times SQLite's own work. A
write whose statements need nothing from the event loop between them (a new pledge:
its row, its roll-ups, its event, its audit row) runs here instead, whole: one
transaction on SQLAlchemy's synchronous engine, on a connection of its own, in one
thread reached once. SQLite takes one writer at a time, so one thread loses nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")


class SQLiteWriter:
    """One thread and ``engine`` (a synchronous engine of one connection) for writes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")

    async def run(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` as one transaction in the writer's thread: committed
        when it returns, rolled back when it raises. A caller cancelled meanwhile does
        not stop it (as a statement sent to PostgreSQL is not)."""
        loop = asyncio.get_running_loop()
        # The caller's context goes along: what it set (a test's counting) holds there.
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._thread, context.run, self._transaction, work)

    def _transaction(self, work: Callable[[Connection], T]) -> T:
        with self.engine.begin() as connection:
            return work(connection)

    async def close(self) -> None:
        """Close the connection in the thread that used it, then end the thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self.engine.dispose)
        self._thread.shutdown(wait=True)
