"""While the database cannot be reached, every endpoint answers 503
``database_unreachable`` (never a 500), and the app serves again once it is back.

PostgreSQL only: the test database stops accepting connections
(``ALLOW_CONNECTIONS false``) and the app's connections are cut, as a database
restart would; then connections are allowed again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import make_engine
from tests.conftest import PG_ADMIN_URL, Hotline, _pg_dsn, setup_campaign

pytestmark = pytest.mark.pg_only


@asynccontextmanager
async def database_away(url: str) -> AsyncIterator[None]:
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(_pg_dsn(PG_ADMIN_URL))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_every_endpoint_answers_503_while_the_database_is_away(
    hotline: Hotline, database_url: str
) -> None:
    setup = await setup_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    async with database_away(database_url):
        answers = [
            await hotline.http.get("/readyz"),
            await hotline.http.get(f"/agents/{agent_id}"),
            await hotline.http.post(f"/agents/{agent_id}/ready"),
            await hotline.incoming("away-1"),
            await hotline.http.get("/queues"),
        ]
        for r in answers:
            assert r.status_code == 503, (r.request.url, r.status_code, r.text)
            assert r.json()["code"] == "database_unreachable", r.text
        assert (await hotline.http.get("/healthz")).status_code == 200  # alive, not ready
    # Back: the pool reconnects by itself.
    assert (await hotline.http.get("/readyz")).status_code == 200
    assert (await hotline.http.post(f"/agents/{agent_id}/ready")).status_code == 200
    assert (await hotline.incoming("back-1")).json()["call"]["state"] == "offered"


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_an_idle_pooled_connection_that_died_is_replaced_before_use(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool pings a connection that sat idle (app/db.py), not every checkout:
    a connection the server dropped while idle is replaced, the request never sees it.
    (``pg_terminate_backend`` with a timeout returns once the backend has gone.)"""
    engine = make_engine(database_url, pool_size=1)
    admin = await asyncpg.connect(_pg_dsn(PG_ADMIN_URL))
    try:
        monkeypatch.setattr("app.db.IDLE_PING_SECONDS", 0.0)  # idle at all: pinged
        first = await _backend_pid(engine)
        await admin.execute("SELECT pg_terminate_backend($1, 10000)", first)
        assert await _backend_pid(engine) != first
        # Not idle long enough to be pinged: the dead connection is used and fails.
        monkeypatch.setattr("app.db.IDLE_PING_SECONDS", 3600.0)
        second = await _backend_pid(engine)
        await admin.execute("SELECT pg_terminate_backend($1, 10000)", second)
        with pytest.raises(DBAPIError):
            await _backend_pid(engine)
    finally:
        await admin.close()
        await engine.dispose()


async def test_a_burst_keeps_every_connection_it_opened(pg_database: str) -> None:
    """A burst as wide as the pool opens each connection once: handed back, none is
    closed (an overflow connection would be, and the next burst would open it anew)."""
    engine = make_engine(pg_database, pool_size=4)
    try:

        async def burst() -> set[int]:
            ready = asyncio.Event()
            pids: set[int] = set()

            async def hold() -> None:
                async with engine.connect() as conn:
                    pids.add((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
                    if len(pids) == 4:
                        ready.set()
                    await ready.wait()  # all four held at once

            await asyncio.gather(*(hold() for _ in range(4)))
            return pids

        first = await burst()
        assert len(first) == 4
        assert await burst() == first
    finally:
        await engine.dispose()
