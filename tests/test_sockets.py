"""The screens' websockets against a real uvicorn process, on both databases.

Covers the handshake (token, role, Origin), commands with ack or typed error,
replay of missed events on reconnect, resync when too far behind, revocation,
floods and bad input, and a vanished screen handing its call back.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from app import signing
from app.auth.service import Role, create_user
from app.db import Database, make_engine
from app.migrate import upgrade_async
from tests.conftest import IN_CI, wait_for
from tests.procs import DEFAULT_SECRET, fresh_pg_database, pg_unreachable, running_servers

SERVER_SETTINGS = {
    "replay_max_events": 8,
    "screen_grace_seconds": 1,
    "heartbeat_seconds": 5,
    "timer_poll_seconds": 0.05,
}
ADMIN = ("root-admin", "root-admin-password")


@dataclass
class Server:
    base_url: str
    admin: httpx.AsyncClient

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://")


async def _add_admin(url: str) -> None:
    db = Database(make_engine(url))
    try:
        async with db.unit_of_work() as uow:
            await create_user(
                uow, username=ADMIN[0], display_name="Admin", role=Role.ADMIN, secret=ADMIN[1]
            )
    finally:
        await db.dispose()


async def _bearer(base_url: str, username: str, secret: str, campaign_id: int | None = None) -> str:
    async with httpx.AsyncClient(base_url=base_url) as client:
        r = await client.post(
            "/auth/login",
            json={
                "username": username,
                "secret": secret,
                "campaign_id": campaign_id,
                "mode": "bearer",
            },
        )
        assert r.status_code == 200, r.text
        token: str = r.json()["token"]
        return token


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    if request.param == "postgresql":
        problem = await pg_unreachable()
        if problem:
            if IN_CI:
                pytest.fail(f"PostgreSQL unreachable ({problem}); CI=true requires it")
            pytest.skip(f"PostgreSQL unreachable ({problem})")
        database = fresh_pg_database(prefix="pledgeline_ws")
        url = await database.__aenter__()
    else:
        database = None
        url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'ws.db'}"
        await upgrade_async(url)
    try:
        await _add_admin(url)
        async with running_servers(url, 1, settings=SERVER_SETTINGS) as servers:
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


@dataclass
class Volunteer:
    campaign_id: int
    agent_id: int
    token: str
    dialled: str


async def _volunteer(server: Server, *, queue: dict[str, Any] | None = None) -> Volunteer:
    """A fresh campaign with one queue and one volunteer who can log in with a PIN."""
    admin = server.admin
    dialled = "+338001" + str(uuid.uuid4().int)[:5]
    c = await admin.post(
        "/campaigns", json={"name": f"C {uuid.uuid4().hex[:8]}", "dialled_numbers": [dialled]}
    )
    assert c.status_code == 201, c.text
    campaign_id = c.json()["id"]
    q = await admin.post(
        "/queues", json={"campaign_id": campaign_id, "name": "pledges", **(queue or {})}
    )
    assert q.status_code == 201, q.text
    a = await admin.post(
        "/agents", json={"campaign_id": campaign_id, "login": "v1", "display_name": "V 1"}
    )
    agent_id = a.json()["id"]
    token = await _agent_bearer(server, campaign_id, agent_id, "246810")
    return Volunteer(campaign_id, agent_id, token, dialled)


async def _agent_bearer(server: Server, campaign_id: int, agent_id: int, secret: str) -> str:
    """A user for the agent (PIN ``secret``), signed in: their bearer token."""
    username = f"v{uuid.uuid4().hex[:10]}"
    u = await server.admin.post(
        "/users",
        json={
            "username": username,
            "display_name": "V",
            "role": "agent",
            "secret": secret,
            "campaign_id": campaign_id,
            "agent_id": agent_id,
        },
    )
    assert u.status_code == 201, u.text
    return await _bearer(server.base_url, username, secret, campaign_id)


async def _supervisor_token(server: Server, campaign_id: int) -> str:
    username = f"s{uuid.uuid4().hex[:10]}"
    r = await server.admin.post(
        "/users",
        json={
            "username": username,
            "display_name": "S",
            "role": "supervisor",
            "secret": "supervisor-pass",
            "campaign_id": campaign_id,
        },
    )
    assert r.status_code == 201, r.text
    return await _bearer(server.base_url, username, "supervisor-pass")


async def _connect(
    server: Server, kind: str, bearer: str, last_seq: int | None = None, **kwargs: Any
) -> ClientConnection:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        r = await client.post("/auth/ws-token", headers={"Authorization": f"Bearer {bearer}"})
        assert r.status_code == 200, r.text
        ws_token = r.json()["token"]
    url = f"{server.ws_url}/ws/{kind}?token={ws_token}"
    if last_seq is not None:
        url += f"&last_seq={last_seq}"
    return await websockets.connect(url, **kwargs)


async def _until(
    ws: ClientConnection, match: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Messages received up to and including the first one that matches."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            seen.append(message)
            if match(message):
                return seen


def _is(type_: str, **data: Any) -> Callable[[dict[str, Any]], bool]:
    def check(m: dict[str, Any]) -> bool:
        return m["type"] == type_ and all(m["data"].get(k) == v for k, v in data.items())

    return check


async def _command(ws: ClientConnection, command: str, **args: Any) -> dict[str, Any]:
    client_id = uuid.uuid4().hex[:8]
    await ws.send(
        json.dumps({"type": "command", "client_id": client_id, "command": command, "args": args})
    )
    replies = await _until(
        ws, lambda m: m["type"] in ("ack", "error") and m["data"].get("client_id") == client_id
    )
    return replies[-1]


async def _incoming(server: Server, volunteer: Volunteer) -> str:
    provider_id = f"ws-{uuid.uuid4().hex[:10]}"
    body = json.dumps(
        {
            "event_id": f"e-{provider_id}",
            "type": "call.incoming",
            "call_id": provider_id,
            "caller": "01 23 45 67 89",
            "dialled": volunteer.dialled,
        }
    ).encode()
    r = await server.admin.post(
        "/telephony/events",
        content=body,
        headers={
            **signing.signed_headers(DEFAULT_SECRET, body),
            "Content-Type": "application/json",
        },
    )
    assert r.status_code == 200, r.text
    return provider_id


async def test_volunteer_takes_a_call_over_the_socket(server: Server) -> None:
    volunteer = await _volunteer(server)
    async with await _connect(server, "agent", volunteer.token) as ws:
        snapshot = json.loads(await ws.recv())
        assert snapshot["type"] == "snapshot"
        assert snapshot["data"]["agent"]["state"] == "logged_out"
        assert (await _command(ws, "ready"))["type"] == "ack"
        await _incoming(server, volunteer)
        offered = (await _until(ws, _is("call.offered")))[-1]
        assert offered["data"]["caller"] == "+33123456789"
        assert offered["data"]["auto_answer"] is True
        # The screen's breath before it answers (the queue's, 2 s by default).
        assert offered["data"]["auto_answer_seconds"] == 2
        assert (await _command(ws, "answer"))["type"] == "ack"
        await _until(ws, _is("agent.state", state="on_call"))
        assert (await _command(ws, "hangup"))["type"] == "ack"
        await _until(ws, _is("call.wrap_up"))
        ack = await _command(ws, "end_wrap_up", disposition="pledge")
        assert ack["type"] == "ack"
        await _until(ws, _is("agent.state", state="available"))
    call = (await server.admin.get(f"/calls/{offered['data']['call_id']}")).json()
    assert call["state"] == "completed"
    assert call["disposition"] == "pledge"


async def test_reconnect_replays_exactly_the_missed_events(server: Server) -> None:
    volunteer = await _volunteer(server)
    async with await _connect(server, "agent", volunteer.token) as ws:
        await ws.recv()  # snapshot
        await _command(ws, "ready")
        last = (await _until(ws, _is("agent.state", state="available")))[-1]["seq"]
    # While the screen is away, a supervisor pauses and readies the volunteer.
    for action in ("pause", "ready"):
        path = f"/agents/{volunteer.agent_id}/{action}"
        r = await server.admin.post(path, json={"reason": "break"} if action == "pause" else None)
        assert r.status_code == 200, r.text
    async with await _connect(server, "agent", volunteer.token, last_seq=last) as ws:
        replay = await _until(
            ws,
            lambda m: (
                m["type"] == "agent.state" and m["data"]["state"] == "available" and m["seq"] > last
            ),
        )
    rows = await server.admin.get("/agents/" + str(volunteer.agent_id))
    assert rows.json()["state"] == "available"
    states = [(m["type"], m["data"].get("state")) for m in replay]
    assert states == [("agent.state", "paused"), ("agent.state", "available")]
    seqs = [m["seq"] for m in replay]
    assert seqs == sorted(seqs) and seqs[0] > last


async def test_far_behind_gets_resync_and_snapshot(server: Server) -> None:
    volunteer = await _volunteer(server)
    async with await _connect(server, "agent", volunteer.token) as ws:
        first = json.loads(await ws.recv())
        last = first["seq"]
        await _command(ws, "ready")
        for _ in range(6):  # 12 agent events > replay_max_events (8)
            await _command(ws, "pause", reason="break")
            await _command(ws, "ready")
    async with await _connect(server, "agent", volunteer.token, last_seq=last) as ws:
        resync = json.loads(await ws.recv())
        snapshot = json.loads(await ws.recv())
    assert resync["type"] == "resync"
    assert resync["data"]["last_seq"] == last
    assert snapshot["type"] == "snapshot"
    assert snapshot["data"]["agent"]["state"] == "available"


async def test_refusals_speak_the_screens_language(server: Server) -> None:
    """A refusal on the socket is in the user's language as the REST API's are: the
    campaign's French here, English when the browser asks for it (docs/i18n.md)."""
    volunteer = await _volunteer(server)
    async with await _connect(server, "agent", volunteer.token) as ws:
        await ws.recv()
        await ws.send("{not json")
        refused = (await _until(ws, _is("error", code="malformed_json")))[-1]["data"]
        assert refused["message"] == "le message n'est pas du JSON valide"
        reply = await _command(ws, "hangup")
        assert reply["data"]["code"] == "no_current_call"
        assert reply["data"]["message"] == f"l'agent {volunteer.agent_id} n'a aucun appel en cours"
    english = {"additional_headers": {"Accept-Language": "en-GB,en;q=0.9"}}
    async with await _connect(server, "agent", volunteer.token, **english) as ws:
        await ws.recv()
        await ws.send("{not json")
        refused = (await _until(ws, _is("error", code="malformed_json")))[-1]["data"]
        assert refused["message"] == "the message is not valid JSON"


async def test_bad_input_gets_typed_errors_and_server_stays_up(server: Server) -> None:
    volunteer = await _volunteer(server)
    async with await _connect(server, "agent", volunteer.token) as ws:
        await ws.recv()
        await ws.send("{not json")
        assert (await _until(ws, _is("error", code="malformed_json")))[-1]["type"] == "error"
        await ws.send(json.dumps({"type": "dance"}))
        await _until(ws, _is("error", code="unknown_message_type"))
        reply = await _command(ws, "fly")
        assert reply["data"]["code"] == "unknown_command"
        reply = await _command(ws, "hangup")  # no call: not allowed in this state
        assert reply["data"]["code"] == "no_current_call"
        reply = await _command(ws, "pause", reason="NOT A REASON")
        assert reply["data"]["code"] == "invalid"
        assert reply["data"]["field"] == "args.reason"
        await ws.send(json.dumps({"type": "ping"}))
        await _until(ws, lambda m: m["type"] == "pong")


async def test_a_flood_is_cut_and_other_screens_carry_on(server: Server) -> None:
    flooder = await _volunteer(server)
    calm = await _volunteer(server)
    async with (
        await _connect(server, "agent", flooder.token) as noisy,
        await _connect(server, "agent", calm.token) as quiet,
    ):
        await noisy.recv()
        await quiet.recv()
        for n in range(300):
            await noisy.send(
                json.dumps(
                    {"type": "command", "client_id": f"f{n}", "command": "pause", "args": {}}
                )
            )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await _until(noisy, lambda m: False, timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4029
        assert (await _command(quiet, "ready"))["type"] == "ack"


async def test_handshake_refuses_bad_tokens_roles_and_origins(server: Server) -> None:
    volunteer = await _volunteer(server)
    async with websockets.connect(f"{server.ws_url}/ws/agent?token=forged.token") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    async with await _connect(server, "supervisor", volunteer.token) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
    with pytest.raises(websockets.InvalidStatus):
        await _connect(server, "agent", volunteer.token, origin="http://evil.example")


async def test_revoking_a_session_closes_its_socket(server: Server) -> None:
    volunteer = await _volunteer(server)
    async with await _connect(server, "agent", volunteer.token) as ws:
        await ws.recv()
        me = await server.admin.get("/users")
        user_id = next(u["id"] for u in me.json() if u["agent_id"] == volunteer.agent_id)
        r = await server.admin.post(f"/users/{user_id}/revoke")
        assert r.json()["revoked_sessions"] >= 1
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await _until(ws, lambda m: False, timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4009
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        r = await client.get("/auth/me", headers={"Authorization": f"Bearer {volunteer.token}"})
    assert r.status_code == 401


async def test_vanished_screen_hands_its_call_back_and_is_paused(server: Server) -> None:
    volunteer = await _volunteer(server, queue={"ring_timeout_seconds": 60})
    ws = await _connect(server, "agent", volunteer.token)
    await ws.recv()
    await _command(ws, "ready")
    await _incoming(server, volunteer)
    offered = (await _until(ws, _is("call.offered")))[-1]
    call_id = offered["data"]["call_id"]
    await ws.close()  # the lid closes while the call rings

    async def call_requeued() -> bool:
        return bool((await server.admin.get(f"/calls/{call_id}")).json()["state"] == "queued")

    async def agent_paused() -> bool:
        agent = (await server.admin.get(f"/agents/{volunteer.agent_id}")).json()
        return bool(agent["state"] == "paused")

    await wait_for(call_requeued)
    # Back to the head of the queue; the volunteer is paused once the grace is over.
    await wait_for(agent_paused)
    agent = (await server.admin.get(f"/agents/{volunteer.agent_id}")).json()
    assert agent["pause_reason"] == "disconnected"
    assert (await server.admin.get(f"/calls/{call_id}")).json()["agent_id"] is None


async def test_supervisor_sees_stats_and_can_only_act_in_their_campaign(server: Server) -> None:
    mine = await _volunteer(server)
    other = await _volunteer(server)
    token = await _supervisor_token(server, mine.campaign_id)
    async with await _connect(server, "supervisor", token) as ws:
        snapshot = json.loads(await ws.recv())
        assert snapshot["type"] == "snapshot"
        assert [a["id"] for a in snapshot["data"]["agents"]] == [mine.agent_id]
        stats = (await _until(ws, lambda m: m["type"] == "stats", timeout=5))[-1]
        assert stats["data"]["queues"][0]["queue"] == "pledges"
        reply = await _command(ws, "force_pause", agent_id=other.agent_id, reason="break")
        assert reply["data"]["code"] == "forbidden"
        await server.admin.post(f"/agents/{mine.agent_id}/login", json={})
        reply = await _command(ws, "force_ready", agent_id=mine.agent_id)
        assert reply["type"] == "ack"
        await _until(ws, _is("agent.state", state="available", agent_id=mine.agent_id))
        assert (await _command(ws, "broadcast", text="Appeal in 2 minutes"))["type"] == "ack"
        await _until(ws, _is("supervisor.broadcast", text="Appeal in 2 minutes"))


async def test_every_agent_action_of_the_api_is_a_socket_command(server: Server) -> None:
    """ready, pause, logout, answer, hangup, transfer, end/extend wrap-up: ack or typed error."""
    volunteer = await _volunteer(server, queue={"wrapup_seconds": 300})
    specialists = await server.admin.post(
        "/queues",
        json={
            "campaign_id": volunteer.campaign_id,
            "name": "specialists",
            "required_skill": "specialist",  # the volunteer lacks it: the caller waits there
        },
    )
    assert specialists.status_code == 201, specialists.text
    async with await _connect(server, "agent", volunteer.token) as ws:
        await ws.recv()  # snapshot
        # Without a call, each call action is refused with its code; nothing changes.
        for command, args, code in [
            ("answer", {}, "no_current_call"),
            ("hangup", {}, "no_current_call"),
            ("end_wrap_up", {"disposition": "pledge"}, "no_current_call"),
            ("transfer", {"queue_id": specialists.json()["id"]}, "no_current_call"),
            ("transfer", {}, "invalid"),
            ("extend_wrap_up", {"seconds": 30}, "illegal_agent_transition"),
            ("extend_wrap_up", {"seconds": 0}, "invalid"),
        ]:
            reply = await _command(ws, command, **args)
            assert (reply["type"], reply["data"]["code"]) == ("error", code), (command, reply)
        for command, args in [("ready", {}), ("pause", {"reason": "break"}), ("ready", {})]:
            assert (await _command(ws, command, **args))["type"] == "ack", command
        await _incoming(server, volunteer)
        offered = (await _until(ws, _is("call.offered")))[-1]
        assert (await _command(ws, "answer"))["type"] == "ack"
        await _until(ws, _is("call.connected"))
        transfer = await _command(ws, "transfer", queue_id=specialists.json()["id"])
        assert transfer["type"] == "ack", transfer
        seen = await _until(ws, _is("call.transferred", to_queue="specialists"))
        assert ("agent.state", "wrap_up") in [(m["type"], m["data"].get("state")) for m in seen]
        assert (await _command(ws, "extend_wrap_up", seconds=60))["type"] == "ack"
        await _until(ws, lambda m: m["type"] == "agent.wrap_up_extended")
        assert (await _command(ws, "end_wrap_up", disposition="transferred"))["type"] == "ack"
        await _until(ws, _is("agent.state", state="available"))
        assert (await _command(ws, "logout"))["type"] == "ack"
        await _until(ws, _is("agent.state", state="logged_out"))
    call = (await server.admin.get(f"/calls/{offered['data']['call_id']}")).json()
    assert call["state"] == "transferred"


async def test_oversized_and_deeply_nested_messages_close_the_socket(server: Server) -> None:
    volunteer = await _volunteer(server)
    nested_ok = {"type": "ping", "pad": [[[[1]]]]}
    too_deep = {"type": "ping", "x": 1}
    for _ in range(20):
        too_deep = {"type": "ping", "x": too_deep}
    cases = [
        (json.dumps({"type": "ping", "pad": "x" * (70 * 1024)}), 1009),
        (json.dumps(too_deep), 1008),
        ("[" * 5000 + "]" * 5000, 1008),  # beyond what the JSON parser itself accepts
    ]
    for text, code in cases:
        async with await _connect(server, "agent", volunteer.token) as ws:
            await ws.recv()
            await ws.send(json.dumps(nested_ok))
            assert (await _until(ws, _is("pong")))[-1]["type"] == "pong"
            await ws.send(text)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await _until(ws, lambda m: False, timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code, text[:40]
    # The server carries on for everybody else.
    async with await _connect(server, "agent", volunteer.token) as ws:
        await ws.recv()
        assert (await _command(ws, "ready"))["type"] == "ack"


async def test_pings_between_refused_commands_do_not_reset_the_flood_count(
    server: Server,
) -> None:
    volunteer = await _volunteer(server)
    async with await _connect(server, "agent", volunteer.token) as ws:
        await ws.recv()
        for n in range(120):
            await ws.send(json.dumps({"type": "command", "client_id": f"b{n}", "command": "nope"}))
            await ws.send(json.dumps({"type": "ping"}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await _until(ws, lambda m: False, timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4029


async def test_a_site_scoped_supervisor_sees_and_steers_its_site_only(server: Server) -> None:
    mine = await _volunteer(server)
    admin = server.admin
    sites = [
        (
            await admin.post(
                "/sites",
                json={"campaign_id": mine.campaign_id, "name": name, "organisation": name},
            )
        ).json()["id"]
        for name in ("Caen", "Paris")
    ]
    caen, paris = sites
    await admin.patch(f"/agents/{mine.agent_id}", json={"site_id": caen})
    elsewhere = await admin.post(
        "/agents",
        json={
            "campaign_id": mine.campaign_id,
            "login": "v2",
            "display_name": "V 2",
            "site_id": paris,
        },
    )
    other_id = elsewhere.json()["id"]
    username = f"s{uuid.uuid4().hex[:10]}"
    r = await admin.post(
        "/users",
        json={
            "username": username,
            "display_name": "S Caen",
            "role": "supervisor",
            "secret": "supervisor-pass",
            "campaign_id": mine.campaign_id,
            "site_id": caen,
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["site_id"] == caen
    token = await _bearer(server.base_url, username, "supervisor-pass")
    async with await _connect(server, "supervisor", token) as ws:
        snapshot = json.loads(await ws.recv())
        assert snapshot["type"] == "snapshot"
        assert [a["id"] for a in snapshot["data"]["agents"]] == [mine.agent_id]
        reply = await _command(ws, "force_pause", agent_id=other_id, reason="break")
        assert reply["data"]["code"] == "forbidden"
        # The other site's volunteer logs in first, then ours: only ours is seen.
        await admin.post(f"/agents/{other_id}/login", json={})
        await admin.post(f"/agents/{mine.agent_id}/login", json={})
        seen = await _until(ws, _is("agent.state", agent_id=mine.agent_id))
        assert [m for m in seen if m["data"].get("agent_id") == other_id] == []
        stats = (await _until(ws, lambda m: m["type"] == "stats", timeout=5))[-1]
        assert [a["id"] for a in stats["data"]["agents"]] == [mine.agent_id]
        assert (await _command(ws, "force_ready", agent_id=mine.agent_id))["type"] == "ack"
