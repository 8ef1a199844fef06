"""Transfers: to another queue with the context kept, and to an outside number."""

from __future__ import annotations

from tests.conftest import Hotline, setup_campaign, wait_for


async def _connected_call(hotline: Hotline, agent_id: int, provider_id: str) -> int:
    r = await hotline.incoming(provider_id)
    call_id: int = r.json()["call"]["id"]

    async def offered() -> bool:
        return (await hotline.http.get(f"/calls/{call_id}")).json()["state"] == "offered"

    await wait_for(offered)
    await hotline.telephony({"type": "seat.answered", "call_id": provider_id})
    assert (await hotline.http.get(f"/agents/{agent_id}")).json()["state"] == "on_call"
    return call_id


async def test_transfer_to_queue_opens_a_new_leg_with_context(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=2, skill_levels=[1, 1])
    first, specialist = setup["agent_ids"]
    r = await hotline.http.post(
        "/queues",
        json={
            "campaign_id": setup["campaign_id"],
            "name": "specialists",
            "required_skill": "specialist",
        },
    )
    specialists_id = r.json()["id"]
    await hotline.http.patch(f"/agents/{specialist}", json={"skills": {"specialist": 1}})
    await hotline.http.post(f"/agents/{first}/ready")
    call_id = await _connected_call(hotline, first, "t-1")

    r = await hotline.http.post(f"/agents/{first}/transfer", json={"queue_id": specialists_id})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "wrap_up"
    old = (await hotline.http.get(f"/calls/{call_id}")).json()
    assert old["state"] == "transferred"

    rows = await hotline.sql(
        "select id, state, leg, parent_call_id from calls where provider_call_id = 't-1'"
        " order by leg"
    )
    assert [(r[2], r[3]) for r in rows] == [(0, None), (1, call_id)]
    new_id = rows[1][0]
    await hotline.http.post(f"/agents/{specialist}/ready")

    async def offered_to_specialist() -> bool:
        call = (await hotline.http.get(f"/calls/{new_id}")).json()
        return call["state"] == "offered" and call["agent_id"] == specialist

    await wait_for(offered_to_specialist)
    # Caller-side events now address the new leg.
    await hotline.telephony({"type": "seat.answered", "call_id": "t-1"})
    assert (await hotline.http.get(f"/calls/{new_id}")).json()["state"] == "connected"
    # The first volunteer finishes wrap-up without touching the transferred leg.
    r = await hotline.http.post(f"/agents/{first}/wrap-up/end", json={})
    assert r.json()["state"] == "available"
    assert (await hotline.http.get(f"/calls/{call_id}")).json()["state"] == "transferred"


async def test_transfer_out_sends_a_transfer_command(hotline: Hotline) -> None:
    # The campaign allows this partner helpline (tests/test_transfer_numbers.py: the rest).
    setup = await setup_campaign(hotline, agents=1, campaign={"transfer_numbers": ["+33142000000"]})
    agent_id = setup["agent_ids"][0]
    await hotline.http.post(f"/agents/{agent_id}/ready")
    call_id = await _connected_call(hotline, agent_id, "t-2")
    r = await hotline.http.post(f"/agents/{agent_id}/transfer", json={"number": "+33142000000"})
    assert r.status_code == 200, r.text
    assert (await hotline.http.get(f"/calls/{call_id}")).json()["state"] == "transferred"
    commands = await hotline.sql(
        "select command from telephony_commands where provider_call_id = 't-2' order by id"
    )
    assert [c[0] for c in commands][-1] == "transfer"


async def test_transfer_needs_exactly_one_target(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    r = await hotline.http.post(f"/agents/{agent_id}/transfer", json={})
    assert r.status_code == 422
    assert r.json()["field"] == "queue_id"
    r = await hotline.http.post(f"/agents/{agent_id}/transfer", json={"queue_id": 1})
    assert r.status_code == 409
    assert r.json()["code"] == "no_current_call"
