"""Shared set-up for the pledge tests: a campaign, a connected call, users by role."""

from __future__ import annotations

import uuid
from typing import Any

from app.auth.service import Role
from tests.conftest import Hotline, setup_campaign, wait_for
from tests.users import user_with_token


async def user_headers(
    hotline: Hotline,
    role: Role,
    *,
    campaign_id: int | None = None,
    agent_id: int | None = None,
) -> dict[str, str]:
    """A user of this role, logged in with a bearer token: its request headers."""
    username = f"{role}-{uuid.uuid4().hex[:6]}"
    secret = "123456" if role == Role.AGENT else "long-enough-secret"
    _, token = await user_with_token(
        hotline.db,
        username=username,
        role=role,
        secret=secret,
        campaign_id=campaign_id,
        agent_id=agent_id,
    )
    return {"Authorization": f"Bearer {token}"}


async def call_state(hotline: Hotline, call_id: int) -> str:
    rows = await hotline.sql("SELECT state FROM calls WHERE id = :id", id=call_id)
    return str(rows[0][0])


async def connected_call(
    hotline: Hotline, agent_id: int, provider_id: str, caller: str = "0612345678"
) -> int:
    """An incoming call offered to this (only ready) agent and answered: its id."""
    state = (await hotline.http.get(f"/agents/{agent_id}")).json()["state"]
    if state != "available":
        r = await hotline.http.post(f"/agents/{agent_id}/ready")
        assert r.status_code == 200, r.text
    r = await hotline.incoming(provider_id, caller=caller)
    assert r.status_code == 200, r.text
    call_id: int = r.json()["call"]["id"]

    async def offered() -> bool:
        return await call_state(hotline, call_id) == "offered"

    await wait_for(offered)
    r = await hotline.telephony({"type": "seat.answered", "call_id": provider_id})
    assert r.json()["call"]["state"] == "connected", r.text
    return call_id


async def pledge_setup(hotline: Hotline, **campaign: Any) -> dict[str, Any]:
    """A campaign with one volunteer (with a login) on a connected call."""
    setup = await setup_campaign(hotline, agents=1, campaign=campaign or None)
    agent_id = setup["agent_ids"][0]
    setup["agent_id"] = agent_id
    setup["call_id"] = await connected_call(hotline, agent_id, f"p-{uuid.uuid4().hex[:8]}")
    setup["agent_headers"] = await user_headers(
        hotline, Role.AGENT, campaign_id=setup["campaign_id"], agent_id=agent_id
    )
    return setup


def pledge_body(call_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "call_id": call_id,
        "first_name": "Marie",
        "last_name": "Curie",
        "address": "12 rue de la Paix",
        "postcode": "75002",
        "city": "Paris",
        "email": "marie@example.org",
        "phone": "06 12 34 56 78",
        "amount_minor": 2500,
        "consent_contact": True,
        **fields,
    }


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}
