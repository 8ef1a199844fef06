"""SQLite for the async engine: aiosqlite, with one trip to its thread per statement.

aiosqlite runs a ``sqlite3`` connection in a thread of its own and makes every call
on a cursor (open, execute, fetch, close) a trip there and back through the event
loop; SQLAlchemy's adapter makes four such trips for each statement. Each trip costs
more CPU than SQLite's own work for a small statement (a queue, a thread switch, a
wake-up of the loop). Here a
statement is executed, its first rows read and, once they are all read, its cursor
closed, in one trip (:func:`_execute_here`). Rows past the first ``FIRST_ROWS`` are
read by further trips as they are asked for, so a streamed result (a server-side
cursor, ``AsyncConnection.stream``) still holds only a batch at a time.

Only the cursor changes: connecting, ``commit``, ``rollback`` and closing are
aiosqlite's own (one trip each already). A call's path on SQLite costs about 8 %
less server CPU for it (``docs/benchmarks.md``, pledges, 2026-12-07 19:28).
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import aiosqlite

# Rows read in the statement's own trip (more, if any, in trips of this size).
FIRST_ROWS = 256


class _Outcome:
    """What one trip brings back from the thread."""

    __slots__ = ("cursor", "description", "lastrowid", "rowcount", "rows")

    def __init__(self, cursor: sqlite3.Cursor, rows: list[Any], open_cursor: bool) -> None:
        self.description = cursor.description
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid
        self.rows = rows
        # Left open only while rows remain to be read.
        self.cursor: sqlite3.Cursor | None = cursor if open_cursor else None


def _execute_here(
    conn: sqlite3.Connection, operation: str, parameters: Any, many: bool
) -> _Outcome:
    """In the connection's thread: execute, read the first rows, close if all are read."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchmany(FIRST_ROWS) if cursor.description else []
    except BaseException:
        cursor.close()
        raise
    more = len(rows) == FIRST_ROWS
    outcome = _Outcome(cursor, rows, open_cursor=more)
    if not more:
        cursor.close()
    return outcome


def _fetch_here(cursor: sqlite3.Cursor, size: int | None) -> tuple[list[Any], bool]:
    """In the connection's thread: up to ``size`` more rows (None: all); whether the
    cursor is exhausted, in which case it is closed."""
    rows = cursor.fetchall() if size is None else cursor.fetchmany(size)
    done = size is None or len(rows) < size
    if done:
        cursor.close()
    return rows, done


def _close_here(cursor: sqlite3.Cursor) -> None:
    cursor.close()


class OneTripCursor:
    """The aiosqlite cursor interface SQLAlchemy's adapter uses, one trip a statement."""

    arraysize = 1

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._open: sqlite3.Cursor | None = None
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def execute(self, operation: str, parameters: Any = None) -> OneTripCursor:
        await self._run(_execute_here, operation, () if parameters is None else parameters, False)
        return self

    async def executemany(self, operation: str, parameters: Sequence[Any]) -> OneTripCursor:
        await self._run(_execute_here, operation, parameters, True)
        return self

    async def _run(self, fn: Callable[..., _Outcome], *args: Any) -> None:
        await self.close()  # a previous statement's rows left unread
        outcome: _Outcome = await self._connection.in_thread(fn, self._connection.sqlite, *args)
        self.description = outcome.description
        self.rowcount = outcome.rowcount
        self.lastrowid = outcome.lastrowid
        self._rows = deque(outcome.rows)
        self._open = outcome.cursor

    async def _read(self, size: int | None) -> None:
        """Read ``size`` more rows (None: all that remain) into the buffer."""
        if self._open is None:
            return
        rows, done = await self._connection.in_thread(_fetch_here, self._open, size)
        self._rows.extend(rows)
        if done:
            self._open = None

    async def fetchone(self) -> Any:
        if not self._rows:
            await self._read(FIRST_ROWS)
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        wanted = self.arraysize if size is None else size
        if len(self._rows) < wanted:
            await self._read(max(wanted - len(self._rows), FIRST_ROWS))
        return [self._rows.popleft() for _ in range(min(wanted, len(self._rows)))]

    async def fetchall(self) -> list[Any]:
        await self._read(None)
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def close(self) -> None:
        self._rows.clear()
        if self._open is not None:
            cursor, self._open = self._open, None
            await self._connection.in_thread(_close_here, cursor)


class OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors make one trip per statement."""

    # Trips made by this connection's cursors (what a statement costs, counted).
    trips = 0

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The ``sqlite3`` connection, to be used in the connection's thread only."""
        return self._conn

    async def in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` run in the connection's thread (aiosqlite's own queue: calls
        run in the order they were made)."""
        self.trips += 1
        return await self._execute(fn, *args)  # type: ignore[no-untyped-call]


def connector(database: str, **kwargs: Any) -> Callable[[], Any]:
    """The ``async_creator`` of an async engine: a new connected
    :class:`OneTripConnection` to ``database`` (``sqlite3.connect`` keyword arguments)."""

    async def connect() -> OneTripConnection:
        connection = OneTripConnection(lambda: sqlite3.connect(database, **kwargs), 64)
        # As SQLAlchemy does for aiosqlite: a connection never closed (a process
        # ending) must not keep the process waiting for its thread.
        connection._thread.daemon = True
        await connection  # starts the thread and opens the database in it
        return connection

    return connect
