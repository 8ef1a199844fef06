"""The event feed on both databases: how committed events reach the screens of a process.

The app runs for real (lifespan included) on a database built by Alembic; the
screens are the hub's own ``Screen`` objects, read from their queues, so what is
checked is exactly what a websocket writer would send. A second ``Database`` on
the same database plays another process (or a commit whose listeners never ran).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, insert

from app.db import Database, make_engine, utcnow
from app.main import create_app
from app.realtime import feed as feed_module
from app.realtime.feed import (
    CHANNEL,
    PAYLOAD_LIMIT,
    EventFeed,
    announcement,
    asyncpg_dsn,
    runs_of,
)
from app.realtime.hub import Hub, Screen
from app.realtime.models import Event
from app.realtime.outbox import emit
from tests.conftest import (
    Hotline,
    admin_token,
    make_settings,
    setup_campaign,
    truncate_all,
    wait_for,
)

EVENTS_READ = re.compile(r"\b(FROM|JOIN)\s+events\b", re.IGNORECASE)

StartApp = Callable[..., Awaitable[tuple[Hotline, FastAPI]]]


@pytest.fixture
async def start_app(database_url: str) -> AsyncIterator[StartApp]:
    """The real app on the emptied test database, and the app itself (its hub and feed)."""
    started: list[tuple[Any, httpx.AsyncClient]] = []

    async def _start(**overrides: Any) -> tuple[Hotline, FastAPI]:
        settings = make_settings(database_url, **overrides)
        scratch = Database(make_engine(database_url))
        try:
            await truncate_all(scratch)
        finally:
            await scratch.dispose()
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        token = await admin_token(app.state.db)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {token}"},
        )
        started.append((lifespan, client))
        return Hotline(client, app.state.db, settings), app

    yield _start
    for lifespan, client in reversed(started):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


class Watch:
    """A screen in the app's hub and the event messages it has been sent so far."""

    def __init__(self, hub: Hub, screen: Screen) -> None:
        self.screen = screen
        self.events: list[dict[str, Any]] = []
        hub.add(screen)

    def drain(self) -> list[dict[str, Any]]:
        new = []
        while not self.screen.queue.empty():
            message = json.loads(self.screen.queue.get_nowait().text)
            if message["seq"] is not None:  # events, not the once-a-second stats
                new.append(message)
        self.events.extend(new)
        return new

    async def until(self, type_: str, **data: Any) -> dict[str, Any]:
        async def seen() -> dict[str, Any] | None:
            self.drain()
            for message in self.events:
                if message["type"] == type_ and all(
                    message["data"].get(k) == v for k, v in data.items()
                ):
                    return message
            return None

        found: dict[str, Any] = await wait_for(seen)
        return found


def _feed(app: FastAPI) -> EventFeed:
    feed: EventFeed = app.state.feed
    return feed


async def _catch_up_done(app: FastAPI) -> None:
    """On PostgreSQL the feed reads the table once when its LISTEN connects: let it."""
    feed = _feed(app)
    if app.state.db.is_postgres:

        async def listened() -> bool:
            return feed.table_reads >= 1

        await wait_for(listened)


async def _seqs(hotline: Hotline, column: str, value: int, after: int) -> list[int]:
    rows = await hotline.sql(
        f"SELECT seq FROM events WHERE {column} = :v AND seq > :after ORDER BY seq",
        v=value,
        after=after,
    )
    return [int(r[0]) for r in rows]


def test_runs_of_groups_consecutive_numbers() -> None:
    assert runs_of([7, 1, 3, 2, 9, 8, 3]) == [(1, 3), (7, 9)]
    assert runs_of([]) == []


def test_an_announcement_names_the_campaigns_and_exact_numbers_within_notify_limits() -> None:
    payload = json.loads(announcement("p1", [12, 10, 11, 15], {4, None}))
    assert payload == {"p": "p1", "c": [4, None], "s": [[10, 12], [15, 15]]}
    scattered = list(range(1, 40_000, 2))  # too many runs for one NOTIFY
    text = announcement("p1", scattered, {4})
    assert len(text) < PAYLOAD_LIMIT
    assert json.loads(text) == {"p": "p1", "c": [4], "s": [[1, 39_999]], "x": 1}


async def test_a_call_reaches_the_screens_without_reading_the_events_table(
    start_app: StartApp,
) -> None:
    hotline, app = await start_app(event_catch_up_seconds=3600)
    setup = await setup_campaign(hotline, agents=1)
    campaign_id, agent_id = setup["campaign_id"], setup["agent_ids"][0]
    await _catch_up_done(app)
    feed = _feed(app)
    start = feed.last_seq
    agent = Watch(app.state.hub, Screen("agent", campaign_id, agent_id, session_id=-1))
    supervisor = Watch(app.state.hub, Screen("supervisor", campaign_id, None, session_id=-2))
    reads = feed.table_reads
    events_selects: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and EVENTS_READ.search(statement):
            events_selects.append(statement)

    sync_engine = hotline.db.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", count)
    try:
        http = hotline.http
        assert (await http.post(f"/agents/{agent_id}/ready")).status_code == 200
        assert (await hotline.incoming("feed-1")).status_code == 200
        offered = await agent.until("call.offered")
        assert (await http.post(f"/agents/{agent_id}/answer")).status_code == 200
        await agent.until("call.connected")
        assert (await http.post(f"/agents/{agent_id}/hangup")).status_code == 200
        await agent.until("call.wrap_up")
        r = await http.post(f"/agents/{agent_id}/wrap-up/end", json={"disposition": "pledge"})
        assert r.status_code == 200, r.text
        await agent.until("call.completed")
        await supervisor.until("call.completed")
    finally:
        event.remove(sync_engine, "before_cursor_execute", count)

    assert events_selects == []
    assert feed.table_reads == reads
    # Every event of the call reached each screen once, in order, as in the table.
    assert [m["seq"] for m in agent.events] == await _seqs(hotline, "agent_id", agent_id, start)
    assert [m["seq"] for m in supervisor.events] == await _seqs(
        hotline, "campaign_id", campaign_id, start
    )
    assert offered["data"]["campaign_id"] == campaign_id
    assert offered["data"]["agent_id"] == agent_id

    # The safety catch-up reads the table but sends nothing already published.
    feed.wake()

    async def caught_up() -> bool:
        return feed.table_reads > reads

    await wait_for(caught_up)
    assert agent.drain() == [] and supervisor.drain() == []


async def test_an_unannounced_commit_is_delivered_by_the_catch_up(
    start_app: StartApp, database_url: str
) -> None:
    """Another writer commits without telling this process (a lost NOTIFY): nothing lost."""
    hotline, app = await start_app(event_catch_up_seconds=0.2)
    setup = await setup_campaign(hotline, agents=1)
    campaign_id = setup["campaign_id"]
    supervisor = Watch(app.state.hub, Screen("supervisor", campaign_id, None, session_id=-1))
    elsewhere = Database(make_engine(database_url))  # no listeners: nobody is told
    try:
        async with elsewhere.unit_of_work() as uow:
            emit(uow, "supervisor.broadcast", campaign_id=campaign_id, data={"text": "lost"})
    finally:
        await elsewhere.dispose()
    message = await supervisor.until("supervisor.broadcast", text="lost")
    assert message["data"]["campaign_id"] == campaign_id
    # Later commits of this process follow it, once each.
    async with hotline.db.unit_of_work() as uow:
        emit(uow, "supervisor.broadcast", campaign_id=campaign_id, data={"text": "local"})
    await supervisor.until("supervisor.broadcast", text="local")
    seqs = [m["seq"] for m in supervisor.events]
    assert seqs == sorted(set(seqs))


async def _notify(url: str, seqs: list[int], campaign_id: int) -> None:
    """What another process's Notifier sends once it has committed ``seqs``."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        payload = announcement("another-process", seqs, {campaign_id})
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
    finally:
        await conn.close()


async def _insert_broadcast(session: Any, campaign_id: int, text: str) -> int:
    """An event row written in another process's transaction (a number taken now)."""
    stmt = (
        insert(Event)
        .values(
            type="supervisor.broadcast", at=utcnow(), campaign_id=campaign_id, data={"text": text}
        )
        .returning(Event.seq)
    )
    return int((await session.execute(stmt)).scalar_one())


@pytest.mark.pg_only
async def test_commits_out_of_seq_order_reach_screens_in_order(
    start_app: StartApp, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Process B takes a number, process A commits the next one first: A's screens wait."""
    monkeypatch.setattr(feed_module, "GAP_GRACE", 120.0)  # no slow machine skips the hole
    hotline, app = await start_app(event_catch_up_seconds=3600)
    setup = await setup_campaign(hotline, agents=1)
    campaign_id = setup["campaign_id"]
    await _catch_up_done(app)
    supervisor = Watch(app.state.hub, Screen("supervisor", campaign_id, None, session_id=-1))
    other = Database(make_engine(database_url))
    try:
        async with other.unit_of_work() as uow:
            first = await _insert_broadcast(uow.session, campaign_id, "first")
            async with hotline.db.unit_of_work() as mine:
                emit(mine, "supervisor.broadcast", campaign_id=campaign_id, data={"text": "second"})
            # Committed and published from memory, but held: number `first` is unknown yet.
            assert supervisor.drain() == []
        await _notify(database_url, [first], campaign_id)
    finally:
        await other.dispose()
    await supervisor.until("supervisor.broadcast", text="second")
    texts = [(m["seq"], m["data"]["text"]) for m in supervisor.events]
    assert texts == [(first, "first"), (first + 1, "second")]


@pytest.mark.pg_only
async def test_a_rolled_back_number_is_skipped_after_the_grace(
    start_app: StartApp, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_module, "GAP_GRACE", 0.05)
    hotline, app = await start_app(event_catch_up_seconds=3600)
    setup = await setup_campaign(hotline, agents=1)
    campaign_id = setup["campaign_id"]
    await _catch_up_done(app)
    supervisor = Watch(app.state.hub, Screen("supervisor", campaign_id, None, session_id=-1))
    other = Database(make_engine(database_url))
    try:
        async with other.engine.connect() as conn:  # never committed: rolled back on close
            await _insert_broadcast(conn, campaign_id, "rolled back")
            await conn.rollback()
    finally:
        await other.dispose()
    async with hotline.db.unit_of_work() as uow:
        emit(uow, "supervisor.broadcast", campaign_id=campaign_id, data={"text": "after"})
    await supervisor.until("supervisor.broadcast", text="after")
    assert [m["data"]["text"] for m in supervisor.events] == ["after"]


@pytest.mark.pg_only
async def test_events_no_screen_wants_are_read_once_a_screen_wants_them(
    start_app: StartApp, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Announced events of an unwatched campaign are not read, until a screen joins for it."""
    monkeypatch.setattr(feed_module, "GAP_GRACE", 120.0)
    hotline, app = await start_app(event_catch_up_seconds=3600)
    setup = await setup_campaign(hotline, agents=1)
    campaign_id = setup["campaign_id"]
    feed = _feed(app)
    Watch(app.state.hub, Screen("supervisor", campaign_id + 1000, None, session_id=-1))
    await _catch_up_done(app)
    reads = feed.table_reads
    held, other = Database(make_engine(database_url)), Database(make_engine(database_url))
    try:
        async with held.unit_of_work() as uow:
            first = await _insert_broadcast(uow.session, campaign_id, "first")
            async with other.unit_of_work() as uow2:
                second = await _insert_broadcast(uow2.session, campaign_id, "second")
            await _notify(database_url, [second], campaign_id)

            async def heard() -> bool:
                return feed.knows(second)

            await wait_for(heard)
            assert feed.table_reads == reads  # nobody here watches that campaign
            watcher = Watch(app.state.hub, Screen("supervisor", campaign_id, None, session_id=-2))

            async def read_again() -> bool:
                return feed.table_reads > reads and feed.knows(second)

            await wait_for(read_again)
            assert watcher.drain() == []  # still behind `first`, not committed yet
        await _notify(database_url, [first], campaign_id)
    finally:
        await held.dispose()
        await other.dispose()
    await watcher.until("supervisor.broadcast", text="second")
    texts = [(m["seq"], m["data"]["text"]) for m in watcher.events]
    assert texts == [(first, "first"), (second, "second")]
