"""Two server processes on one PostgreSQL: an event committed by one reaches a screen
connected to the other (through LISTEN/NOTIFY), and a silent screen is cut."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from tests.conftest import IN_CI
from tests.procs import fresh_pg_database, pg_unreachable, running_servers
from tests.test_sockets import ADMIN, Server, _add_admin, _bearer, _connect, _until, _volunteer

pytestmark = pytest.mark.pg_only


@pytest.fixture(scope="module")
async def two_servers() -> AsyncIterator[tuple[Server, Server]]:
    problem = await pg_unreachable()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL unreachable ({problem}); CI=true requires it")
        pytest.skip(f"PostgreSQL unreachable ({problem})")
    async with fresh_pg_database(prefix="pledgeline_ws2") as url:
        await _add_admin(url)
        settings = {"heartbeat_seconds": 1, "timer_poll_seconds": 0.05}
        async with running_servers(url, 2, settings=settings) as procs:
            pair = []
            clients = []
            for proc in procs:
                token = await _bearer(proc.base_url, *ADMIN)
                client = httpx.AsyncClient(
                    base_url=proc.base_url, headers={"Authorization": f"Bearer {token}"}
                )
                clients.append(client)
                pair.append(Server(proc.base_url, client))
            try:
                yield pair[0], pair[1]
            finally:
                for client in clients:
                    await client.aclose()
            for proc in procs:
                assert proc.errors() == [], proc.errors()


async def test_events_cross_processes(two_servers: tuple[Server, Server]) -> None:
    a, b = two_servers
    volunteer = await _volunteer(a)
    async with await _connect(a, "agent", volunteer.token) as ws:
        await ws.recv()  # snapshot from server A
        # The change is made through server B, in its own process.
        r = await b.admin.post(f"/agents/{volunteer.agent_id}/login", json={})
        assert r.status_code == 200, r.text
        r = await b.admin.post(f"/agents/{volunteer.agent_id}/ready")
        assert r.status_code == 200, r.text
        await ws.send(json.dumps({"type": "ping"}))
        seen = await _until(
            ws, lambda m: m["type"] == "agent.state" and m["data"]["state"] == "available"
        )
    states = [m["data"]["state"] for m in seen if m["type"] == "agent.state"]
    assert states == ["paused", "available"]


async def test_a_silent_screen_is_cut(two_servers: tuple[Server, Server]) -> None:
    a, _ = two_servers
    volunteer = await _volunteer(a)
    async with await _connect(a, "agent", volunteer.token) as ws:
        await ws.recv()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await _until(ws, lambda m: False, timeout=10)  # never ping: 3 heartbeats
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4010
