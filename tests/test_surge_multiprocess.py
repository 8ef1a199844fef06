"""Two real server processes on one PostgreSQL database check the same queue's surge
thresholds every 50 ms: each switch into and out of surge happens once, with one
event, however the two monitors interleave (the conditional UPDATE ... WHERE surge =
false / true of app/surge/monitor.py)."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from sqlalchemy import text

from app import signing
from app.db import Database, make_engine
from tests.conftest import IN_CI, wait_for
from tests.procs import DEFAULT_SECRET, fresh_pg_database, pg_unreachable, running_servers
from tests.test_sockets import (
    ADMIN,
    SERVER_SETTINGS,
    Server,
    _add_admin,
    _bearer,
    _incoming,
    _volunteer,
)

pytestmark = pytest.mark.pg_only
CYCLES = 5


async def _hang_up(server: Server, provider_id: str) -> None:
    body = json.dumps(
        {"event_id": f"h-{uuid.uuid4().hex}", "type": "call.hangup", "call_id": provider_id}
    ).encode()
    headers = {**signing.signed_headers(DEFAULT_SECRET, body), "Content-Type": "application/json"}
    r = await server.admin.post("/telephony/events", content=body, headers=headers)
    assert r.status_code == 200, r.text


async def test_two_processes_switch_each_surge_once() -> None:
    problem = await pg_unreachable()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL unreachable ({problem}); CI=true requires it")
        pytest.skip(f"PostgreSQL unreachable ({problem})")
    async with fresh_pg_database(prefix="pledgeline_surge_mp") as url:
        await _add_admin(url)
        settings = {**SERVER_SETTINGS, "surge_check_seconds": 0.05}
        async with running_servers(url, 2, settings=settings) as servers:
            base = servers[0].base_url
            token = await _bearer(base, *ADMIN)
            async with httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {token}"}
            ) as admin:
                server = Server(base, admin)
                volunteer = await _volunteer(server)
                queues = (await admin.get(f"/queues?campaign_id={volunteer.campaign_id}")).json()
                queue_id = queues[0]["id"]
                r = await admin.put(
                    f"/queues/{queue_id}/surge", json={"enter_waiting": 1, "leave_waiting": 0}
                )
                assert r.status_code == 200, r.text

                async def surge_is(expected: bool) -> bool:
                    state = (await admin.get(f"/queues/{queue_id}/surge")).json()
                    return bool(state["surge"] is expected)

                for _ in range(CYCLES):
                    provider_id = await _incoming(server, volunteer)
                    await wait_for(lambda: surge_is(True))
                    await _hang_up(server, provider_id)
                    await wait_for(lambda: surge_is(False))
            for process in servers:
                assert process.errors() == [], process.errors()
        db = Database(make_engine(url))
        try:
            async with db.read() as session:
                rows = await session.execute(
                    text(
                        "SELECT type, count(*) FROM events WHERE type LIKE 'queue.surge_%' "
                        "AND queue_id = :q GROUP BY type"
                    ),
                    {"q": queue_id},
                )
                counts = dict(rows.all())
        finally:
            await db.dispose()
    assert counts == {
        "queue.surge_configured": 1,
        "queue.surge_started": CYCLES,
        "queue.surge_ended": CYCLES,
    }
