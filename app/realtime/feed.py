"""The event feed of one process: committed events, in ``seq`` order, handed to the hub.

Where events come from:

* **This process's commits**, straight from memory: ``Database.on_events`` hands
  over the committed event objects (``seq`` set), and the feed turns them into
  screen messages. No table read.
* **Other processes' commits** (PostgreSQL): each process's ``Notifier`` announces
  its commits with a ``NOTIFY`` whose payload carries the campaigns and the exact
  ``seq`` runs of what it committed; a receiving process reads just those rows
  (``seq BETWEEN lo AND hi``, an index range).
* **A slow safety catch-up** (every ``event_catch_up_seconds``, and when the
  ``LISTEN`` connection comes back): one index range read of ``seq > delivered``.
  A missed notification, or a commit whose listeners never ran, is therefore
  delivered late, never lost.

Order. The feed keeps ``last_seq``: every event up to it has been delivered (or
judged rolled back). Events above it wait in ``_pending`` until the numbers below
them are known. On PostgreSQL a ``seq`` value is taken at insert time, so
transactions can commit out of ``seq`` order and a rolled-back one leaves a hole
that never fills; on SQLite two commits of this process can reach their
listeners out of order. So a hole is awaited up to ``GAP_GRACE``; then its range
is read from the table once (it may have committed unannounced) and what is still
missing is skipped. An event is delivered once: anything at or below ``last_seq``
or already pending is ignored, whichever way it arrives again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import asyncpg
import orjson
from sqlalchemy import func, or_, select

from app.background import BackgroundTask, FailedPasses, stop_tasks
from app.db import Database
from app.realtime.models import Event, message_of
from app.settings import settings_of

log = logging.getLogger(__name__)

CHANNEL = "pledgeline_events"
GAP_GRACE = 0.5
BATCH = 1000
CATCH_UP_SECONDS = 5.0
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
PAYLOAD_LIMIT = 7900
# Numbers kept for the next NOTIFY while it cannot be sent; beyond, catch-up reads.
UNSENT_LIMIT = 100_000

Subscriber = Callable[[list[dict[str, Any]]], None]
Run = tuple[int, int]


class Audience(Protocol):
    """The screens of this process, as the feed sees them (``app.realtime.hub.Hub``)."""

    added: list[Callable[[], None]]

    def publish(self, messages: list[dict[str, Any]]) -> None: ...

    def watches(self, campaign_ids: Iterable[int | None]) -> bool: ...


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def runs_of(seqs: Iterable[int]) -> list[Run]:
    """Sequence numbers as sorted runs of consecutive numbers: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    runs: list[Run] = []
    for seq in sorted(set(seqs)):
        if runs and runs[-1][1] == seq - 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


class EventFeed(BackgroundTask):
    def __init__(self, db: Database, catch_up_seconds: float | None = None) -> None:
        super().__init__()
        self.db = db
        if catch_up_seconds is None:
            catch_up_seconds = settings_of(db).event_catch_up_seconds
        self.catch_up_seconds = catch_up_seconds
        self.last_seq = 0
        # seq -> message, or None: committed, nothing to deliver (an unknown row).
        self._pending: dict[int, dict[str, Any] | None] = {}
        self._subscribers: list[Subscriber] = []
        self._wakeup = asyncio.Event()
        self._catch_up_requested = False
        self._announced: list[tuple[list[Run], bool]] = []
        # Announced numbers taken as delivered unread: no screen here wanted their campaigns.
        self._unread: set[int] = set()
        self._watches: Callable[[Iterable[int | None]], bool] = lambda _: True
        # Event types read from other processes whatever the screens watch (caches).
        self.always_read_types: tuple[str, ...] = ()
        self._hole_since: float | None = None
        self.table_reads = 0  # how many times the feed read the events table

    def knows(self, seq: int) -> bool:
        """Whether event ``seq`` has been delivered, skipped, or is waiting for its turn."""
        return seq <= self.last_seq or seq in self._pending

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def always_read(self, type_prefixes: Iterable[str]) -> None:
        """Events whose type starts so are read from other processes even when no
        screen here watches their campaign (a subscriber keeps a cache with them)."""
        self.always_read_types = (*self.always_read_types, *type_prefixes)

    def attach(self, audience: Audience) -> None:
        """Deliver to ``audience``, and read other processes' events only when it wants them."""
        self.subscribe(audience.publish)
        self._watches = audience.watches
        audience.added.append(self.screen_added)

    def wake(self) -> None:
        """Read the table for anything missed (the LISTEN connection was down)."""
        self._catch_up_requested = True
        self._wakeup.set()

    async def start(self) -> None:
        async with self.db.read() as session:
            self.last_seq = int((await session.execute(select(func.max(Event.seq)))).scalar() or 0)
        # First in line: screens hear of a commit before slower listeners run.
        self.db.on_events.insert(0, self._on_commit)
        self._launch(self._run, name="event-feed")

    async def stop(self) -> None:
        if self._on_commit in self.db.on_events:
            self.db.on_events.remove(self._on_commit)
        await super().stop()

    # --- arrivals -------------------------------------------------------------------

    async def _on_commit(self, events: list[Any]) -> None:
        """This process committed ``events``: publish them from memory."""
        self.take(message_of(event) for event in events)

    def take(self, messages: Iterable[dict[str, Any]]) -> None:
        """Committed events, in any order, possibly already known: deliver what is due."""
        for message in messages:
            seq = message["seq"]
            if seq > self.last_seq and self._pending.get(seq) is None:
                self._pending[seq] = message
                self._unread.discard(seq)
        self._flush()

    def announced(
        self,
        runs: list[Run],
        *,
        exact: bool,
        campaign_ids: Iterable[int | None] = (None,),
        forced: bool = False,
    ) -> None:
        """Another process committed the events in ``runs`` (exact: those and no others;
        ``forced``: some are of a type read whatever the screens watch)."""
        if not any(hi > self.last_seq for _, hi in runs):
            return
        if exact and not forced and not self._watches(campaign_ids):
            # No screen here wants them: known committed, not worth a read.
            for lo, hi in runs:
                for seq in range(max(lo, self.last_seq + 1), hi + 1):
                    if seq not in self._pending:
                        self._pending[seq] = None
                        self._unread.add(seq)
            self._flush()
            return
        self._announced.append((runs, exact))
        self._wakeup.set()

    def screen_added(self) -> None:
        """A screen joined: events passed over unread but not yet delivered must be read."""
        self._unread = {seq for seq in self._unread if seq in self._pending}
        if not self._unread:
            return
        for seq in self._unread:
            del self._pending[seq]  # a hole again, until the read below fills it
        self._announced.append((runs_of(self._unread), True))
        self._unread = set()
        self._wakeup.set()

    # --- delivery -------------------------------------------------------------------

    def _flush(self) -> None:
        """Deliver the run of consecutive events that follows ``last_seq``."""
        ready: list[dict[str, Any]] = []
        while self.last_seq + 1 in self._pending:
            self.last_seq += 1
            message = self._pending.pop(self.last_seq)
            self._unread.discard(self.last_seq)
            if message is not None:
                ready.append(message)
            self._hole_since = None
        if self._pending and self._hole_since is None:
            # A number below a known event is missing: give it GAP_GRACE to commit.
            self._hole_since = time.monotonic()
            self._wakeup.set()  # so the loop sets its timer
        if not ready:
            return
        for subscriber in self._subscribers:
            try:
                subscriber(ready)
            except Exception:
                log.exception("event subscriber failed")

    def _add_rows(self, rows: Iterable[Event]) -> None:
        for row in rows:
            if row.seq > self.last_seq and self._pending.get(row.seq) is None:
                self._pending[row.seq] = row.as_message()
                self._unread.discard(row.seq)

    async def _read(self, *conditions: Any, limit: int | None = None) -> list[Event]:
        self.table_reads += 1
        async with self.db.read() as session:
            stmt = select(Event).where(*conditions).order_by(Event.seq)
            if limit is not None:
                stmt = stmt.limit(limit)
            return list((await session.execute(stmt)).scalars())

    async def _read_announced(self) -> None:
        announced, self._announced = self._announced, []
        wanted: list[Run] = []
        exact: set[int] = set()
        for runs, is_exact in announced:
            for lo, hi in runs:
                lo = max(lo, self.last_seq + 1)
                missing = [s for s in range(lo, hi + 1) if self._pending.get(s) is None]
                if not missing:
                    continue  # all known already (this process's own, or read before)
                wanted.append((missing[0], missing[-1]))
                if is_exact:
                    exact.update(missing)
        if not wanted:
            return
        rows = await self._read(or_(*(Event.seq.between(lo, hi) for lo, hi in wanted)))
        self._add_rows(rows)
        # An announced number with no row was deleted meanwhile: nothing to wait for.
        for seq in exact - {row.seq for row in rows}:
            if seq > self.last_seq:
                self._pending.setdefault(seq, None)
        self._flush()

    async def _read_gap(self) -> None:
        """The hole below the first pending event outlived GAP_GRACE: read it, then skip it."""
        lo, hi = self.last_seq + 1, min(self._pending) - 1
        if self._watches((None,)):  # no screen here at all: nobody to read them for
            self._add_rows(await self._read(Event.seq.between(lo, hi)))
        if not self._pending:
            return  # filled from memory while the table was read
        first = min(self._pending)
        if first > self.last_seq + 1:
            log.debug("events %s..%s never committed; moving past", self.last_seq + 1, first - 1)
            self.last_seq = first - 1
        self._hole_since = None
        self._flush()

    async def _catch_up(self) -> None:
        after = self.last_seq
        while True:
            rows = await self._read(Event.seq > after, limit=BATCH)
            self._add_rows(rows)
            self._flush()
            if len(rows) < BATCH:
                return
            after = rows[-1].seq

    def _hole_expired(self, now: float) -> bool:
        return self._hole_since is not None and now - self._hole_since >= GAP_GRACE

    async def _run(self) -> None:
        next_catch_up = time.monotonic() + self.catch_up_seconds
        failures = FailedPasses("event feed pass")
        while True:
            now = time.monotonic()
            timeout = next_catch_up - now
            if self._hole_since is not None:
                timeout = min(timeout, self._hole_since + GAP_GRACE - now)
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=timeout)
            self._wakeup.clear()
            try:
                if self._announced:
                    await self._read_announced()
                if self._pending and self._hole_expired(time.monotonic()):
                    await self._read_gap()
                now = time.monotonic()
                if self._catch_up_requested or now >= next_catch_up:
                    self._catch_up_requested = False
                    next_catch_up = now + self.catch_up_seconds
                    await self._catch_up()
                failures.succeeded()
            except Exception:
                await asyncio.sleep(failures.failed())  # a database away: do not spin


def announcement(
    process: str, seqs: list[int], campaigns: set[int | None], forced: bool = False
) -> str:
    """The NOTIFY payload for committed events: who, which campaigns, which numbers,
    and (``f``) whether some must be read whatever the screens watch."""
    ids = sorted(campaigns, key=lambda c: (c is None, c or 0))
    runs = runs_of(seqs)
    body: dict[str, Any] = {"p": process, "c": ids, "s": runs}
    if forced:
        body["f"] = 1
    text = orjson.dumps(body).decode()
    if len(text) < PAYLOAD_LIMIT:
        return text
    # Too many runs for one payload: the whole range instead (the receiver reads it all).
    return orjson.dumps(
        {"p": process, "c": ids[:100], "s": [(runs[0][0], runs[-1][1])], "x": 1}
    ).decode()


class Notifier:
    """PostgreSQL only: tells the other processes which events this one committed.

    Announcements are coalesced: at most one ``NOTIFY`` per ``interval``, on a
    connection of its own, outside the transactions that wrote the events (so hot
    transactions never queue on the notify lock). This process's own announcements
    come back on ``LISTEN`` and are ignored: it published those from memory.
    """

    def __init__(self, db: Database, url: str, feed: EventFeed, interval: float = 0.005) -> None:
        self.db = db
        self.url = asyncpg_dsn(url)
        self.feed = feed
        self.interval = interval
        self.process = uuid.uuid4().hex[:12]
        self._unsent_seqs: list[int] = []
        self._unsent_campaigns: set[int | None] = set()
        self._unsent_forced = False
        self._pending = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.db.on_events.append(self._on_commit)
        self._tasks = [
            asyncio.create_task(self._announce(), name="notify-out"),
            asyncio.create_task(self._listen(), name="notify-in"),
        ]

    async def stop(self) -> None:
        if self._on_commit in self.db.on_events:
            self.db.on_events.remove(self._on_commit)
        await stop_tasks(self._tasks)

    async def _on_commit(self, events: list[Any]) -> None:
        if len(self._unsent_seqs) > UNSENT_LIMIT:
            # NOTIFY has been failing for long: the receivers' catch-up reads find these.
            self._unsent_seqs.clear()
            self._unsent_campaigns.clear()
        forced_types = self.feed.always_read_types
        for event in events:
            self._unsent_seqs.append(event.seq)
            self._unsent_campaigns.add(event.campaign_id)
            if forced_types and str(event.type).startswith(forced_types):
                self._unsent_forced = True
        self._pending.set()

    async def _announce(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self.url)
                try:
                    while True:
                        await self._pending.wait()
                        self._pending.clear()
                        seqs, campaigns = self._unsent_seqs, self._unsent_campaigns
                        forced = self._unsent_forced
                        self._unsent_seqs, self._unsent_campaigns = [], set()
                        self._unsent_forced = False
                        if seqs:
                            payload = announcement(self.process, seqs, campaigns, forced)
                            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
                        await asyncio.sleep(self.interval)
                finally:
                    conn.terminate()  # at once: a polite close can wait on the server
            except asyncio.CancelledError:
                raise
            except Exception:
                # What was not announced is found by the receivers' catch-up read.
                log.exception("NOTIFY connection failed; retrying")
                await asyncio.sleep(1.0)

    def _heard(self, payload: str) -> None:
        try:
            message = orjson.loads(payload)
            if message.get("p") == self.process:
                return
            runs = [(int(lo), int(hi)) for lo, hi in message["s"]]
            exact = not message.get("x")
            campaigns = [None if c is None else int(c) for c in message["c"]]
            forced = bool(message.get("f"))
        except Exception:
            log.warning("unreadable event announcement %r; catching up", payload[:200])
            self.feed.wake()
            return
        self.feed.announced(runs, exact=exact, campaign_ids=campaigns, forced=forced)

    async def _listen(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self.url)
                try:
                    closed = asyncio.Event()
                    conn.add_termination_listener(lambda *_, done=closed: done.set())
                    await conn.add_listener(CHANNEL, lambda *args: self._heard(args[-1]))
                    self.feed.wake()  # catch up on anything missed while disconnected
                    await closed.wait()
                finally:
                    conn.terminate()  # at once: a polite close can wait on the server
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("LISTEN connection failed; retrying")
                await asyncio.sleep(1.0)
