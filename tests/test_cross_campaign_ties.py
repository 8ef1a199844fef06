"""Nothing of one campaign is tied to another campaign's rows.

A login of campaign A acting as an agent of campaign B would steer B's agent and see
B's callers while its permission checks look at A; so the user API refuses the tie,
at creation and at every change. Here too: a transfer to another campaign's queue and
a pledge naming another campaign than its call's. A seat of another campaign at login
and an overflow queue of another campaign are refused in tests/test_api.py
(``test_agent_login_at_a_seat``, ``test_overflow_queue_must_be_of_the_same_campaign``).
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Hotline, setup_campaign, wait_for
from tests.pledge_helpers import key, pledge_body, pledge_setup


async def _two_campaigns(hotline: Hotline) -> tuple[dict[str, Any], dict[str, Any]]:
    a = await setup_campaign(hotline, agents=1)
    b = await setup_campaign(hotline, agents=1, campaign={"dialled_numbers": ["+33800000002"]})
    return a, b


def _refused(r: httpx.Response, status: int, code: str, field: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert (body["code"], body["field"]) == (code, field), body


def _volunteer(campaign_id: int | None, agent_id: int | None, **fields: Any) -> dict[str, Any]:
    return {
        "username": "vol",
        "display_name": "Vol",
        "role": "agent",
        "secret": "246810",
        "campaign_id": campaign_id,
        "agent_id": agent_id,
        **fields,
    }


async def _users(hotline: Hotline) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = (await hotline.http.get("/users")).json()
    return users


async def test_a_login_is_never_created_for_another_campaigns_agent(hotline: Hotline) -> None:
    a, b = await _two_campaigns(hotline)
    before = await _users(hotline)
    foreign = b["agent_ids"][0]
    cases = [
        (_volunteer(a["campaign_id"], foreign), 422, "agent_of_another_campaign", "agent_id"),
        (
            _volunteer(a["campaign_id"], foreign, role="supervisor", secret="long-password"),
            422,
            "agent_of_another_campaign",
            "agent_id",
        ),
        (
            _volunteer(None, foreign, role="admin", secret="long-password"),
            422,
            "agent_of_another_campaign",
            "agent_id",
        ),
        (_volunteer(a["campaign_id"], 987654), 422, "invalid", "agent_id"),
        (_volunteer(987654, foreign), 422, "invalid", "campaign_id"),
    ]
    for body, status, code, field in cases:
        _refused(await hotline.http.post("/users", json=body), status, code, field)
    assert await _users(hotline) == before

    # Tied to an agent of its own campaign, the login is made, and only once per agent.
    r = await hotline.http.post("/users", json=_volunteer(b["campaign_id"], foreign))
    assert r.status_code == 201, r.text
    assert (r.json()["campaign_id"], r.json()["agent_id"]) == (b["campaign_id"], foreign)
    r = await hotline.http.post(
        "/users", json=_volunteer(b["campaign_id"], foreign, username="vol2")
    )
    _refused(r, 409, "already_exists", "agent_id")
    assert len(await _users(hotline)) == len(before) + 1


async def test_a_login_is_never_changed_to_another_campaigns_agent(hotline: Hotline) -> None:
    a, b = await _two_campaigns(hotline)
    r = await hotline.http.post("/users", json=_volunteer(a["campaign_id"], a["agent_ids"][0]))
    assert r.status_code == 201, r.text
    user = r.json()
    url = f"/users/{user['id']}"
    cases = [
        ({"agent_id": b["agent_ids"][0]}, "agent_of_another_campaign", "agent_id"),
        ({"campaign_id": b["campaign_id"]}, "agent_of_another_campaign", "campaign_id"),
        (
            {"campaign_id": a["campaign_id"], "agent_id": b["agent_ids"][0]},
            "agent_of_another_campaign",
            "agent_id",
        ),
        ({"role": "admin", "campaign_id": None}, "agent_of_another_campaign", "campaign_id"),
        ({"agent_id": 987654}, "invalid", "agent_id"),
        ({"campaign_id": 987654}, "invalid", "campaign_id"),
    ]
    for body, code, field in cases:
        _refused(await hotline.http.patch(url, json=body), 422, code, field)
        assert [u for u in await _users(hotline) if u["id"] == user["id"]] == [user], body

    # Moving the login to campaign B together with B's agent is a consistent change.
    r = await hotline.http.patch(
        url, json={"campaign_id": b["campaign_id"], "agent_id": b["agent_ids"][0]}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["campaign_id"], r.json()["agent_id"]) == (b["campaign_id"], b["agent_ids"][0])
    # An admin keeps no agent: the tie goes with the campaign.
    r = await hotline.http.patch(
        url, json={"role": "admin", "campaign_id": None, "agent_id": None, "secret": "a-long-pass"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["role"], r.json()["agent_id"]) == ("admin", None)


async def test_a_call_is_never_transferred_to_another_campaigns_queue(hotline: Hotline) -> None:
    a, b = await _two_campaigns(hotline)
    agent_id = a["agent_ids"][0]
    await hotline.http.post(f"/agents/{agent_id}/ready")
    r = await hotline.incoming("x-1")
    call_id = r.json()["call"]["id"]

    async def offered() -> bool:
        return (await hotline.http.get(f"/calls/{call_id}")).json()["state"] == "offered"

    await wait_for(offered)
    await hotline.telephony({"type": "seat.answered", "call_id": "x-1"})
    before = (await hotline.http.get(f"/calls/{call_id}")).json()
    assert before["state"] == "connected"

    r = await hotline.http.post(f"/agents/{agent_id}/transfer", json={"queue_id": b["queue_id"]})
    _refused(r, 409, "conflict", "queue_id")
    assert (await hotline.http.get(f"/calls/{call_id}")).json() == before
    assert (await hotline.http.get(f"/agents/{agent_id}")).json()["state"] == "on_call"
    legs = await hotline.sql("select count(*) from calls where provider_call_id = 'x-1'")
    assert legs[0][0] == 1

    # To a queue of its own campaign, the transfer goes through.
    r = await hotline.http.post(
        "/queues", json={"campaign_id": a["campaign_id"], "name": "specialists"}
    )
    r = await hotline.http.post(f"/agents/{agent_id}/transfer", json={"queue_id": r.json()["id"]})
    assert r.status_code == 200, r.text
    assert (await hotline.http.get(f"/calls/{call_id}")).json()["state"] == "transferred"


async def test_a_pledge_never_names_another_campaign_than_its_calls(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    other = await hotline.http.post("/campaigns", json={"name": "Other telethon"})
    body = pledge_body(setup["call_id"], campaign_id=other.json()["id"])
    r = await hotline.http.post("/pledges", json=body, headers=key())
    _refused(r, 422, "invalid", "campaign_id")
    assert (await hotline.sql("select count(*) from pledges"))[0][0] == 0
    body["campaign_id"] = setup["campaign_id"]
    r = await hotline.http.post("/pledges", json=body, headers=key())
    assert r.status_code == 201, r.text
    assert r.json()["campaign_id"] == setup["campaign_id"]
