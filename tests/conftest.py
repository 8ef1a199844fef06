"""Shared fixtures: the real app on real databases built by Alembic.

Every test that takes ``client`` runs twice, on SQLite and on PostgreSQL. The
PostgreSQL database is created for the session and dropped at the end; with
``CI=true`` an unreachable server fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import MetaData, text

from app import signing
from app.auth.service import Role
from app.cti.directory_server import DirectoryProcess
from app.db import Base, Database, make_engine
from app.main import create_app
from app.migrate import upgrade
from app.settings import Settings

# The browser tests' fixtures (browser, browser_hotline, new_page), for every module.
from tests.asterisk_pbx import Sipp
from tests.browser_fixtures import browser, browser_hotline, new_page  # noqa: F401
from tests.procs import PAYMENT_WEBHOOK_SECRET, SECRET_KEY
from tests.users import user_with_token

PG_ADMIN_URL = os.environ.get(
    "PLEDGELINE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SECRET = "test-telephony-Zq4mW8rT2vXb6nYc1pLk9sHd"  # 32+ bytes, as in production
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _pg_reachable() -> str | None:
    try:
        conn = await asyncpg.connect(_pg_dsn(PG_ADMIN_URL), timeout=5)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the whole session, migrated to head."""
    problem = asyncio.run(_pg_reachable())
    if problem is not None:
        message = f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({problem})"
        if IN_CI:
            pytest.fail(message + "; CI=true requires it", pytrace=False)
        pytest.skip(message + "; set PLEDGELINE_TEST_PG_URL to run these tests")
    name = f"pledgeline_test_{uuid.uuid4().hex[:8]}"

    async def _admin(sql: str) -> None:
        conn = await asyncpg.connect(_pg_dsn(PG_ADMIN_URL))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    url = f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    upgrade(url)
    yield url
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "pledgeline.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.node.get_closest_marker("pg_only") and request.param == "sqlite":
        pytest.skip("PostgreSQL only")
    name = "pg_database" if request.param == "postgresql" else "sqlite_database"
    url: str = request.getfixturevalue(name)
    return url


@contextlib.asynccontextmanager
async def sqlite_with(path: Path, metadata: MetaData) -> AsyncIterator[Database]:
    """A database of its own in SQLite file ``path`` with ``metadata``'s tables."""
    database = Database(make_engine(f"sqlite+aiosqlite:///{path}"))
    async with database.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        yield database
    finally:
        await database.dispose()


async def truncate_all(db: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    async with db.engine.begin() as conn:
        if db.is_postgres:
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                await conn.execute(text(f"DELETE FROM {table}"))


ADMIN_USERNAME = "test-admin"
ADMIN_PASSWORD = "test-admin-password"


async def admin_token(db: Database) -> str:
    """Create the admin user and log it in (bearer), as an operator would at set-up."""
    _, token = await user_with_token(
        db, username=ADMIN_USERNAME, display_name="Admin", role=Role.ADMIN, secret=ADMIN_PASSWORD
    )
    return token


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "telephony_secret": SECRET,
        "secret_key": SECRET_KEY,
        "payment_webhook_secret": PAYMENT_WEBHOOK_SECRET,
        "timer_poll_seconds": 0.05,
        "dispatch_sweep_seconds": 0.5,
        "db_pool_size": 10,  # as many as a test server ever had (5 kept + 5 overflow)
        # No directory unless a test starts one (tests/test_cti_*): no look-ups.
        "directory_url": "",
        **overrides,
    }
    return Settings(**values)


class Hotline:
    """The running app, reached over HTTP, plus the database it writes to."""

    def __init__(
        self, client: httpx.AsyncClient, db: Database, settings: Settings, app: Any = None
    ) -> None:
        self.http = client
        self.app = app
        self.db = db
        self.settings = settings
        self._event_ids = 0

    async def telephony(self, event: dict[str, Any], *, sign: bool = True) -> httpx.Response:
        """POST a signed telephony event (an event_id is added when missing)."""
        if "event_id" not in event:
            self._event_ids += 1
            event = {"event_id": f"evt-{uuid.uuid4().hex}", **event}
        body = json.dumps(event).encode()
        headers = {"Content-Type": "application/json"}
        if sign:
            headers.update(signing.signed_headers(SECRET, body))
        return await self.http.post("/telephony/events", content=body, headers=headers)

    async def incoming(
        self, call_id: str, caller: str | None = "0123456789", dialled: str = "+33800000001"
    ) -> httpx.Response:
        return await self.telephony(
            {"type": "call.incoming", "call_id": call_id, "caller": caller, "dialled": dialled}
        )

    async def sql(self, query: str, **params: Any) -> list[Any]:
        async with self.db.read() as session:
            return list((await session.execute(text(query), params)).all())


async def wait_for(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 10.0, interval: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)


@pytest.fixture
async def hotline_factory(
    database_url: str,
) -> AsyncIterator[Callable[..., Awaitable[Hotline]]]:
    """Start the real app (lifespan included) on the test database, emptied first."""
    started: list[tuple[Any, httpx.AsyncClient, Any]] = []

    async def _start(**overrides: Any) -> Hotline:
        settings = make_settings(database_url, **overrides)
        # Empty the database before the app starts: its event feed begins at the
        # newest event seen at start-up.
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
        started.append((lifespan, client, app.state.db.engine.pool))
        return Hotline(client, app.state.db, settings, app)

    yield _start
    for lifespan, client, pool in reversed(started):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
        # A connection still out once the app has stopped was leaked by a task that
        # outlived shutdown (on SQLite it could keep the next test's set-up waiting).
        assert pool.checkedout() == 0, f"{pool.checkedout()} connection(s) left checked out"


@pytest.fixture(scope="module")
def directory() -> Iterator[DirectoryProcess]:
    """The built-in directory as a process of its own, with fault injection on."""
    with DirectoryProcess(faults=True) as process:
        yield process


@pytest.fixture
async def hotline(hotline_factory: Callable[..., Awaitable[Hotline]]) -> Hotline:
    return await hotline_factory()


async def setup_campaign(
    hotline: Hotline,
    *,
    agents: int = 2,
    queue: dict[str, Any] | None = None,
    campaign: dict[str, Any] | None = None,
    skill_levels: list[int] | None = None,
) -> dict[str, Any]:
    """A campaign on +33800000001 with one queue ``pledges`` and logged-in, paused agents."""
    http = hotline.http
    c = await http.post(
        "/campaigns",
        json={
            "name": f"Telethon {uuid.uuid4().hex[:6]}",
            "dialled_numbers": ["+33800000001"],
            **(campaign or {}),
        },
    )
    assert c.status_code == 201, c.text
    campaign_id = c.json()["id"]
    q = await http.post(
        "/queues",
        json={
            "campaign_id": campaign_id,
            "name": "pledges",
            "required_skill": "pledges",
            **(queue or {}),
        },
    )
    assert q.status_code == 201, q.text
    agent_ids = []
    for n in range(agents):
        level = skill_levels[n] if skill_levels else 1
        a = await http.post(
            "/agents",
            json={
                "campaign_id": campaign_id,
                "login": f"vol{n}",
                "display_name": f"Vol {n}",
                "skills": {"pledges": level},
            },
        )
        assert a.status_code == 201, a.text
        agent_id = a.json()["id"]
        r = await http.post(f"/agents/{agent_id}/login", json={})
        assert r.status_code == 200, r.text
        agent_ids.append(agent_id)
    return {"campaign_id": campaign_id, "queue_id": q.json()["id"], "agent_ids": agent_ids}


@pytest.fixture
async def sipps() -> AsyncIterator[list[Sipp]]:
    """Every SIPp a test starts is stopped at its end, whatever happens."""
    started: list[Sipp] = []
    yield started
    for sipp in started:
        sipp.stop()
