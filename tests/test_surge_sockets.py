"""Paging over the real websockets: a uvicorn process per database, its surge monitor
running. A queue crosses its threshold, the shipped rule pages the standby
volunteer, the page reaches their screen, and their "I'm coming" is recorded."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.migrate import upgrade_async
from tests.conftest import IN_CI, wait_for
from tests.procs import fresh_pg_database, pg_unreachable, running_servers
from tests.test_sockets import (
    ADMIN,
    SERVER_SETTINGS,
    Server,
    _add_admin,
    _bearer,
    _command,
    _connect,
    _incoming,
    _is,
    _supervisor_token,
    _until,
    _volunteer,
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    if request.param == "postgresql":
        problem = await pg_unreachable()
        if problem:
            if IN_CI:
                pytest.fail(f"PostgreSQL unreachable ({problem}); CI=true requires it")
            pytest.skip(f"PostgreSQL unreachable ({problem})")
        database = fresh_pg_database(prefix="pledgeline_surge")
        url = await database.__aenter__()
    else:
        database = None
        url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'surge.db'}"
        await upgrade_async(url)
    try:
        await _add_admin(url)
        settings = {**SERVER_SETTINGS, "surge_check_seconds": 0.2}
        async with running_servers(url, 1, settings=settings) as servers:
            base = servers[0].base_url
            token = await _bearer(base, *ADMIN)
            async with httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {token}"}
            ) as admin:
                yield Server(base, admin)
            assert servers[0].errors() == [], servers[0].errors()
    finally:
        if database is not None:
            await database.__aexit__(None, None, None)


async def test_surge_pages_the_standby_volunteer_who_answers(server: Server) -> None:
    volunteer = await _volunteer(server)
    admin = server.admin
    queue_id = (await admin.get(f"/queues?campaign_id={volunteer.campaign_id}")).json()[0]["id"]
    r = await admin.put(f"/agents/{volunteer.agent_id}/standby", json={"standby": True})
    assert r.status_code == 200, r.text
    boss = await _connect(
        server, "supervisor", await _supervisor_token(server, volunteer.campaign_id)
    )
    ws = await _connect(server, "agent", volunteer.token)
    try:
        await _until(ws, _is("snapshot"))
        await _until(boss, _is("snapshot"))
        r = await admin.put(
            f"/queues/{queue_id}/surge", json={"enter_waiting": 1, "leave_waiting": 0}
        )
        assert r.status_code == 200, r.text
        await _incoming(server, volunteer)  # nobody serves the queue: it waits

        paged = (await _until(ws, _is("agent.paged", agent_id=volunteer.agent_id)))[-1]
        # In the campaign's language (French unless set otherwise).
        assert paged["data"]["message"].startswith("Appel aux dons à l'antenne"), paged
        page_id = paged["data"]["page_id"]
        started = (await _until(boss, _is("queue.surge_started", queue_id=queue_id)))[-1]
        assert started["data"]["reason"] == "waiting"

        ack = await _command(ws, "answer_page", page_id=page_id)
        assert ack["type"] == "ack" and ack["data"]["page_id"] == page_id
        await _until(boss, _is("agent.page_answered", page_id=page_id))
        again = await _command(ws, "answer_page", page_id=page_id)  # answered once
        assert again["type"] == "ack"
        assert again["data"]["answered_at"] == ack["data"]["answered_at"]
        bad = await _command(ws, "answer_page", page_id="first")
        assert bad["type"] == "error" and bad["data"]["code"] == "invalid"
        missing = await _command(ws, "answer_page", page_id=page_id + 1000)
        assert missing["type"] == "error" and missing["data"]["code"] == "not_found"

        async def answered() -> list[dict[str, object]]:
            pages = (await admin.get(f"/pages?campaign_id={volunteer.campaign_id}")).json()
            return [p for p in pages if p["answered_at"] is not None]

        [page] = await wait_for(answered)
        assert page["agent_id"] == volunteer.agent_id and page["paged_by"].startswith("rule:")
        assert page["standby_as"] == "standby"
    finally:
        await ws.close()
        await boss.close()


async def test_a_screen_opened_after_the_page_shows_it(server: Server) -> None:
    volunteer = await _volunteer(server)
    admin = server.admin
    queue_id = (await admin.get(f"/queues?campaign_id={volunteer.campaign_id}")).json()[0]["id"]
    await admin.put(f"/agents/{volunteer.agent_id}/standby", json={"standby": True})
    r = await admin.post(f"/queues/{queue_id}/surge/page", json={})
    assert r.json()["paged_agent_ids"] == [volunteer.agent_id]
    ws = await _connect(server, "agent", volunteer.token)
    try:
        snapshot = (await _until(ws, _is("snapshot")))[-1]
        assert [p["page_id"] for p in snapshot["data"]["pages"]] == r.json()["page_ids"]
    finally:
        await ws.close()
