"""The shortest full path: a call comes in, reaches a volunteer, ends, volunteer free again."""

from __future__ import annotations

from tests.conftest import Hotline, setup_campaign, wait_for


async def test_call_reaches_agent_and_completes(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    assert (await hotline.http.post(f"/agents/{agent_id}/ready")).status_code == 200

    r = await hotline.incoming("p-1")
    assert r.status_code == 200, r.text
    call_id = r.json()["call"]["id"]

    async def offered() -> bool:
        return (await hotline.http.get(f"/calls/{call_id}")).json()["state"] == "offered"

    await wait_for(offered)
    assert (await hotline.telephony({"type": "seat.answered", "call_id": "p-1"})).status_code == 200
    assert (await hotline.http.get(f"/agents/{agent_id}")).json()["state"] == "on_call"
    assert (await hotline.telephony({"type": "call.hangup", "call_id": "p-1"})).status_code == 200
    assert (await hotline.http.get(f"/agents/{agent_id}")).json()["state"] == "wrap_up"
    r = await hotline.http.post(f"/agents/{agent_id}/wrap-up/end", json={"disposition": "pledge"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "available"
    call = (await hotline.http.get(f"/calls/{call_id}")).json()
    assert call["state"] == "completed"
    assert call["disposition"] == "pledge"
