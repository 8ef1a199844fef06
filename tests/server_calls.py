"""A volunteer on a connected call, made through the API of a real server process
(tests/procs.py), as an operator and the telephony platform would make it."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from app import signing
from tests.procs import DEFAULT_SECRET

DIALLED = "+33800000001"
AGENT_PIN = "246810"


@dataclass
class ConnectedCall:
    campaign_id: int
    queue_id: int
    agent_id: int
    call_id: int
    agent_token: str


async def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    body: dict[str, Any] = response.json()
    return body


async def telephony(
    http: httpx.AsyncClient, event: dict[str, Any], secret: str = DEFAULT_SECRET
) -> httpx.Response:
    """POST a signed telephony event (with a fresh event_id)."""
    body = json.dumps({"event_id": f"evt-{uuid.uuid4().hex}", **event}).encode()
    headers = {"Content-Type": "application/json", **signing.signed_headers(secret, body)}
    return await http.post("/telephony/events", content=body, headers=headers)


async def connected_call(http: httpx.AsyncClient, *, secret: str = DEFAULT_SECRET) -> ConnectedCall:
    """A campaign, a queue, one volunteer (with a PIN login) on a connected call.

    ``http`` carries an admin's bearer token.
    """
    campaign = await _ok(
        await http.post(
            "/campaigns",
            json={"name": f"Telethon {uuid.uuid4().hex[:6]}", "dialled_numbers": [DIALLED]},
        ),
        201,
    )
    queue = await _ok(
        await http.post(
            "/queues",
            json={"campaign_id": campaign["id"], "name": "pledges", "required_skill": "pledges"},
        ),
        201,
    )
    login = f"vol-{uuid.uuid4().hex[:6]}"
    agent = await _ok(
        await http.post(
            "/agents",
            json={
                "campaign_id": campaign["id"],
                "login": login,
                "display_name": "Volunteer",
                "skills": {"pledges": 1},
            },
        ),
        201,
    )
    await _ok(await http.post(f"/agents/{agent['id']}/login", json={}))
    await _ok(await http.post(f"/agents/{agent['id']}/ready"))
    await _ok(
        await http.post(
            "/users",
            json={
                "username": login,
                "display_name": "Volunteer",
                "role": "agent",
                "secret": AGENT_PIN,
                "campaign_id": campaign["id"],
                "agent_id": agent["id"],
            },
        ),
        201,
    )
    provider_id = f"call-{uuid.uuid4().hex[:8]}"
    incoming = await _ok(
        await telephony(
            http,
            {
                "type": "call.incoming",
                "call_id": provider_id,
                "caller": "0612345678",
                "dialled": DIALLED,
            },
            secret,
        )
    )
    call_id = incoming["call"]["id"]
    state = ""
    for _ in range(200):  # offered in the call's own transaction, or soon by the router
        state = (await _ok(await http.get(f"/calls/{call_id}")))["state"]
        if state == "offered":
            break
        await asyncio.sleep(0.05)
    assert state == "offered", state
    answered = await _ok(
        await telephony(http, {"type": "seat.answered", "call_id": provider_id}, secret)
    )
    assert answered["call"]["state"] == "connected", answered
    token = await _ok(
        await http.post(
            "/auth/login",
            json={
                "username": login,
                "secret": AGENT_PIN,
                "campaign_id": campaign["id"],
                "mode": "bearer",
            },
        )
    )
    return ConnectedCall(campaign["id"], queue["id"], agent["id"], call_id, token["token"])


def pledge_body(call_id: int, n: int) -> dict[str, Any]:
    """The ``n``-th pledge form of a call: an amount of its own, so totals tell them apart."""
    return {
        "call_id": call_id,
        "first_name": "Marie",
        "last_name": "Curie",
        "postcode": "75002",
        "city": "Paris",
        "email": "marie@example.org",
        "amount_minor": 1000 + n,
        "consent_contact": True,
    }
