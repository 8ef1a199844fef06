"""Two server processes on one PostgreSQL: a logout, revocation or role change made
through one process reaches the other's principal cache (through the events table),
and a websocket token opens one socket whichever process it is shown to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import IN_CI, wait_for
from tests.procs import fresh_pg_database, pg_unreachable, running_servers
from tests.test_sockets import ADMIN, Server, _add_admin, _bearer, _volunteer

pytestmark = pytest.mark.pg_only

# An hour: only an event can drop an entry within a test.
SETTINGS = {"principal_cache_seconds": 3600, "heartbeat_seconds": 5}


@pytest.fixture(scope="module")
async def two_servers() -> AsyncIterator[tuple[Server, Server]]:
    problem = await pg_unreachable()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL unreachable ({problem}); CI=true requires it")
        pytest.skip(f"PostgreSQL unreachable ({problem})")
    async with fresh_pg_database(prefix="pledgeline_auth2") as url:
        await _add_admin(url)
        async with running_servers(url, 2, settings=SETTINGS) as procs:
            clients = []
            for proc in procs:
                token = await _bearer(proc.base_url, *ADMIN)
                clients.append(
                    httpx.AsyncClient(
                        base_url=proc.base_url, headers={"Authorization": f"Bearer {token}"}
                    )
                )
            try:
                yield Server(procs[0].base_url, clients[0]), Server(procs[1].base_url, clients[1])
            finally:
                for client in clients:
                    await client.aclose()
            for proc in procs:
                assert proc.errors() == [], proc.errors()


async def _me(server: Server, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        return await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})


async def _user_id(server: Server, agent_id: int) -> int:
    users = (await server.admin.get("/users")).json()
    return int(next(u["id"] for u in users if u["agent_id"] == agent_id))


async def test_a_revocation_through_one_process_reaches_the_other(
    two_servers: tuple[Server, Server],
) -> None:
    a, b = two_servers
    volunteer = await _volunteer(a)
    assert (await _me(b, volunteer.token)).status_code == 200  # cached by B
    r = await a.admin.post(f"/users/{await _user_id(a, volunteer.agent_id)}/revoke")
    assert r.json()["revoked_sessions"] == 1

    async def refused_by_b() -> bool:
        return (await _me(b, volunteer.token)).status_code == 401

    await wait_for(refused_by_b, timeout=10)


async def test_a_role_change_through_one_process_reaches_the_other(
    two_servers: tuple[Server, Server],
) -> None:
    a, b = two_servers
    volunteer = await _volunteer(a)
    supervisor_name = f"sup{volunteer.agent_id}"
    r = await a.admin.post(
        "/users",
        json={
            "username": supervisor_name,
            "display_name": "S",
            "role": "supervisor",
            "secret": "supervisor-secret",
            "campaign_id": volunteer.campaign_id,
        },
    )
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    token = await _bearer(a.base_url, supervisor_name, "supervisor-secret")
    assert (await _me(b, token)).json()["role"] == "supervisor"  # cached by B
    r = await a.admin.patch(f"/users/{user_id}", json={"role": "organiser"})
    assert r.status_code == 200, r.text

    async def organiser_for_b() -> bool:
        return bool((await _me(b, token)).json()["role"] == "organiser")

    await wait_for(organiser_for_b, timeout=10)


async def _handshake(server: Server, token: str) -> Any:
    """The first message, or the close code when the socket is refused."""
    async with websockets.connect(f"{server.ws_url}/ws/agent?token={token}") as ws:
        try:
            return (await ws.recv())[:40]
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


async def test_a_websocket_token_opens_one_socket_across_processes(
    two_servers: tuple[Server, Server],
) -> None:
    a, b = two_servers
    volunteer = await _volunteer(a)
    for _ in range(3):
        async with httpx.AsyncClient(base_url=a.base_url) as client:
            r = await client.post(
                "/auth/ws-token", headers={"Authorization": f"Bearer {volunteer.token}"}
            )
        token = r.json()["token"]
        outcomes = await asyncio.gather(_handshake(a, token), _handshake(b, token))
        assert sorted(outcomes, key=str).count(4001) == 1, outcomes
        assert sum(isinstance(o, str) and '"snapshot"' in o for o in outcomes) == 1, outcomes
