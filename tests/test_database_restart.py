"""A database restart in the middle of the show does not leave the line dead.

The test runs a PostgreSQL server of its own (tests/own_postgres.py), a real
uvicorn process with the simulated platform on it (callers, volunteers), and while
calls flow stops the database (fast shutdown: every session cut) for three
seconds and starts it again. Afterwards:

- ``/readyz`` went 503 while the database was away and is 200 again;
- calls keep arriving and completing;
- every conversation that was under way has ended (its hang-up was not lost), and
  every simulated volunteer is back in service (none left paused, none held by a
  call from before the restart);
- nothing acknowledged is lost: every webhook the app acknowledged has its effect
  in the database, each volunteer's ``calls_taken`` counter equals a recount of
  the calls they answered, and the pledge counters equal a recount of the pledges;
- no task died unseen ("Task exception was never retrieved").

Nothing asserts on timing: each condition is polled for with a generous deadline.
Without PostgreSQL's binaries (or a way to run them) the test is skipped with the
reason, and fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.db import Database, make_engine, utcnow
from app.seed import seed_demo
from tests import own_postgres, procs

pytestmark = pytest.mark.pg_only

IN_CI = os.environ.get("CI", "").lower() == "true"
OUTAGE_SECONDS = 3.0
SETTINGS = {
    "simulate": True,
    "sim_seed": 11,
    "sim_rate_per_minute": 150,
    "sim_spike_every_seconds": 0,
    "sim_talk_seconds": 0.6,
    "sim_wrapup_seconds": 0.3,
    "sim_patience_seconds": 30,
    "timer_poll_seconds": 0.2,
    "dispatch_sweep_seconds": 0.5,
    "stale_sweep_seconds": 0.5,
    "directory_url": "",
    "db_pool_size": 10,
}
LIVE_BEFORE_WRAP_UP = ("received", "queued", "offered", "connected")


async def _until(check: Callable[[], Awaitable[Any]], what: str, timeout: float) -> Any:
    """Poll ``check`` until truthy; fail naming ``what`` (and the last value) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {result!r})")
        await asyncio.sleep(0.2)


class Sql:
    """Plain queries on the test's database, one connection each (it may restart)."""

    def __init__(self, url: str) -> None:
        self.dsn = procs.pg_dsn(url)

    async def rows(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def value(self, query: str, *args: Any) -> Any:
        return (await self.rows(query, *args))[0][0]


async def _readyz(base_url: str) -> int:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        try:
            return (await client.get("/readyz")).status_code
        except httpx.HTTPError:
            return 0


async def test_the_line_survives_a_database_restart(tmp_path: Path) -> None:
    reason = own_postgres.unavailable()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"no PostgreSQL of the test's own: {reason}; CI=true requires it")
        pytest.skip(f"no PostgreSQL of the test's own: {reason}")
    pg = own_postgres.OwnPostgres()
    try:
        await pg.create()
        admin = await asyncpg.connect(pg.admin_url)
        await admin.execute('CREATE DATABASE "pledgeline"')
        await admin.close()
        url = procs.pg_dsn(pg.admin_url).rsplit("/", 1)[0] + "/pledgeline"
        url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
        await procs.migrate(url)
        seeding = Database(make_engine(url))
        try:
            await seed_demo(seeding)
        finally:
            await seeding.dispose()
        server = await procs.start_server(url, settings=SETTINGS, log_dir=tmp_path)
        try:
            await _blip_and_recover(pg, server, Sql(url))
        finally:
            await procs.stop_server(server)
        await _nothing_acknowledged_is_lost(Sql(url))
        log = server.log_text()
        assert "Task exception was never retrieved" not in log, log[-4000:]
        # No simulated caller or volunteer died of an error (app/telephony/simulated.py).
        assert re.search(r"simulated _\w+ failed", log) is None, log[-4000:]
    finally:
        await pg.destroy()


async def _blip_and_recover(
    pg: own_postgres.OwnPostgres, server: procs.ServerProcess, sql: Sql
) -> None:
    async def completed() -> int:
        return int(await sql.value("select count(*) from calls where state = 'completed'"))

    await _until(lambda: _at_least(completed, 5), "calls completing before the outage", 40)

    await pg.stop()
    assert await _until(
        lambda: _equals(_readyz(server.base_url), 503), "/readyz 503 while away", 20
    )
    await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for a result
    await pg.start()
    back = utcnow()
    await _until(lambda: _equals(_readyz(server.base_url), 200), "/readyz 200 once back", 30)

    async def arriving_and_completing() -> tuple[int, int] | None:
        received = await sql.value("select count(*) from calls where received_at > $1", back)
        done = await sql.value(
            "select count(*) from calls where state = 'completed' and received_at > $1", back
        )
        return (received, done) if received >= 5 and done >= 3 else None

    await _until(arriving_and_completing, "calls arriving and completing after the restart", 40)

    async def conversations_from_before() -> list[Any]:
        return await sql.rows(
            "select id, state, answered_at from calls"
            " where state in ('offered', 'connected', 'wrap_up') and coalesce(answered_at,"
            " offered_at) < $1",
            back,
        )

    await _until(
        lambda: _none(conversations_from_before), "conversations from before the outage ended", 40
    )

    async def volunteers_out_of_service() -> list[Any]:
        return await sql.rows(
            "select id, state, pause_reason, state_since from agents"
            " where login like 'volunteer%' and (state in ('paused', 'logged_out')"
            " or (state <> 'available' and state_since < $1))",
            back,
        )

    await _until(lambda: _none(volunteers_out_of_service), "every volunteer back in service", 40)
    assert await sql.value("select count(*) from agents where login like 'volunteer%'") == 20


async def _at_least(count: Callable[[], Awaitable[int]], n: int) -> int | None:
    value = await count()
    return value if value >= n else None


async def _equals(status: Awaitable[int], expected: int) -> bool:
    return await status == expected


async def _none(rows: Callable[[], Awaitable[list[Any]]]) -> bool:
    return not await rows()


async def _nothing_acknowledged_is_lost(sql: Sql) -> None:
    """The database after the server stopped: every acknowledged effect is there, and
    the running counters equal a recount."""
    # Each acknowledged incoming call has its call row.
    missing = await sql.rows(
        "select e.event_id from telephony_inbound e where e.type = 'call.incoming'"
        " and not exists (select 1 from calls c where c.provider_call_id = e.provider_call_id)"
    )
    assert missing == []
    # Each acknowledged hang-up ended the conversation (or the wait) it was about.
    live = await sql.rows(
        "select e.event_id, c.id, c.state from telephony_inbound e join calls c"
        " on c.provider_call_id = e.provider_call_id"
        " and c.leg = (select max(leg) from calls l where l.provider_call_id = c.provider_call_id)"
        " where e.type = 'call.hangup' and c.state = any($1::text[])",
        list(LIVE_BEFORE_WRAP_UP),
    )
    assert live == []
    # Each acknowledged answer that connected a call is on the call.
    answered = 0
    for (response,) in await sql.rows(
        "select response from telephony_inbound where type = 'seat.answered'"
    ):
        call = (json.loads(response) if isinstance(response, str) else response).get("call")
        if call and call["state"] == "connected":
            answered += 1
            answered_at = await sql.value("select answered_at from calls where id = $1", call["id"])
            assert answered_at is not None, call
    assert answered > 0
    # Volunteers' counters against a recount of the calls they answered.
    counters = await sql.rows(
        "select a.id, a.calls_taken, (select count(*) from calls c where c.agent_id = a.id"
        " and c.answered_at is not null) as recount from agents a"
        " where a.calls_taken <> (select count(*) from calls c where c.agent_id = a.id"
        " and c.answered_at is not null)"
    )
    assert counters == []
    # Pledge counters against a recount of the pledges.
    kept = await sql.rows(
        "select coalesce(sum(count), 0), coalesce(sum(promised_minor), 0) from pledge_rollups"
        " where dimension = 'all'"
    )
    recount = await sql.rows(
        "select count(*), coalesce(sum(amount_minor), 0) from pledges where status <> 'cancelled'"
    )
    assert tuple(kept[0]) == tuple(recount[0])
    assert recount[0][0] > 0
    # Every pledge belongs to a call that completed with it, one pledge a call.
    stray = await sql.rows(
        "select p.id from pledges p join calls c on c.id = p.call_id"
        " where c.state <> 'completed' or c.disposition <> 'pledge'"
    )
    assert stray == []
    twice = await sql.rows("select call_id from pledges group by call_id having count(*) > 1")
    assert twice == []
