"""The event feed of one process: tails the events table and hands rows to the hub.

Receivers read events from the table by sequence number, so a missed wake-up loses
nothing. Wake-ups come from this process's own commits (in-process) and, on
PostgreSQL, from ``LISTEN`` on a channel where every process announces its newest
sequence number (``Notifier``). A slow poll is the last resort.

On PostgreSQL a sequence number can become visible after a higher one (two
transactions committing out of order). The feed delivers in order and waits up to
``GAP_GRACE`` for a missing number before deciding it was rolled back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy import func, select

from app.background import BackgroundTask, stop_tasks
from app.db import Database
from app.realtime.models import Event

log = logging.getLogger(__name__)

CHANNEL = "pledgeline_events"
GAP_GRACE = 0.5
BATCH = 1000
POLL_SECONDS = 1.0

Subscriber = Callable[[list[dict[str, Any]]], Awaitable[None]]


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class EventFeed(BackgroundTask):
    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self.last_seq = 0
        self._subscribers: list[Subscriber] = []
        self._wakeup = asyncio.Event()
        self._gap_since: float | None = None

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def wake(self) -> None:
        self._wakeup.set()

    async def start(self) -> None:
        async with self.db.read() as session:
            self.last_seq = int((await session.execute(select(func.max(Event.seq)))).scalar() or 0)

        async def _on_commit(_: list[Any]) -> None:
            self.wake()

        self.db.on_events.append(_on_commit)
        self._launch(self._run(), name="event-feed")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=POLL_SECONDS)
            self._wakeup.clear()
            try:
                while await self._pump():
                    pass
            except Exception:
                log.exception("event feed pass failed")

    async def _pump(self) -> bool:
        """Deliver the next run of consecutive events; True when there may be more."""
        async with self.db.read() as session:
            stmt = select(Event).where(Event.seq > self.last_seq).order_by(Event.seq).limit(BATCH)
            rows = list((await session.execute(stmt)).scalars())
        if not rows:
            return False
        ready: list[Event] = []
        expected = self.last_seq + 1
        for row in rows:
            if row.seq != expected and not self._gap_expired():
                break  # wait for the missing number, it may still commit
            ready.append(row)
            expected = row.seq + 1
            self._gap_since = None
        if not ready:
            if self._gap_since is None:
                self._gap_since = time.monotonic()
            # Look again once the grace period may have passed.
            asyncio.get_running_loop().call_later(GAP_GRACE, self.wake)
            return False
        self.last_seq = ready[-1].seq
        messages = [row.as_message() for row in ready]
        for subscriber in self._subscribers:
            try:
                await subscriber(messages)
            except Exception:
                log.exception("event subscriber failed")
        return len(ready) == len(rows) == BATCH or len(ready) < len(rows)

    def _gap_expired(self) -> bool:
        if self.db.is_sqlite:
            return True  # one writer: numbers commit in order, a hole is a rollback
        return self._gap_since is not None and time.monotonic() - self._gap_since >= GAP_GRACE


class Notifier:
    """PostgreSQL only: tells every process (this one too) that new events exist.

    Announcements are coalesced: at most one ``NOTIFY`` per ``interval`` carrying the
    newest sequence number, on a connection of its own, outside the transactions
    that wrote the events (so hot transactions never queue on the notify lock).
    """

    def __init__(self, db: Database, url: str, feed: EventFeed, interval: float = 0.005) -> None:
        self.db = db
        self.url = asyncpg_dsn(url)
        self.feed = feed
        self.interval = interval
        self._pending = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        async def _on_commit(_: list[Any]) -> None:
            self._pending.set()

        self.db.on_events.append(_on_commit)
        self._tasks = [
            asyncio.create_task(self._announce(), name="notify-out"),
            asyncio.create_task(self._listen(), name="notify-in"),
        ]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)

    async def _announce(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self.url)
                try:
                    while True:
                        await self._pending.wait()
                        self._pending.clear()
                        await conn.execute("SELECT pg_notify($1, 'new')", CHANNEL)
                        await asyncio.sleep(self.interval)
                finally:
                    conn.terminate()  # at once: a polite close can wait on the server
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("NOTIFY connection failed; retrying")
                await asyncio.sleep(1.0)

    async def _listen(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self.url)
                try:
                    closed = asyncio.Event()
                    conn.add_termination_listener(lambda *_, done=closed: done.set())
                    await conn.add_listener(CHANNEL, lambda *_: self.feed.wake())
                    self.feed.wake()  # catch up on anything missed while disconnected
                    await closed.wait()
                finally:
                    conn.terminate()  # at once: a polite close can wait on the server
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("LISTEN connection failed; retrying")
                await asyncio.sleep(1.0)
