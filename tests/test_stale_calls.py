"""The safety net for lost hang-ups (app/acd/stale.py), on both databases.

Time is driven by the sweep's own clock (``sweep(db, now)`` takes the moment to
judge by) or, for the background sweeper, by moving ``answered_at`` back in the
database: no test waits for a limit to pass.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text

from app.acd import stale
from app.db import utcnow
from tests.conftest import Hotline, setup_campaign, wait_for
from tests.test_router import (
    _json,
    commands_for,
    event,
    get_agent,
    get_call,
    incoming,
    offered_to,
    ready,
    wait_agent,
)

LIMITS = {"stale_alert_seconds": 1800, "stale_end_seconds": 7200}


async def alerts(hotline: Hotline) -> list[dict[str, Any]]:
    rows = await hotline.sql(
        "select call_id, data from events where type = 'supervisor.alert' order by seq"
    )
    return [{"call_id": call_id, **_json(data)} for call_id, data in rows]


async def connected_call(hotline: Hotline, agent_id: int, provider_id: str) -> dict[str, Any]:
    await ready(hotline, agent_id)
    call_id = await incoming(hotline, provider_id)
    await offered_to(hotline, call_id, agent_id)
    await event(hotline, "seat.answered", provider_id)
    call = await get_call(hotline, call_id)
    assert call["state"] == "connected"
    return call


def at(call: dict[str, Any], seconds: float) -> dt.datetime:
    """``seconds`` after the call was answered."""
    return dt.datetime.fromisoformat(call["answered_at"]) + dt.timedelta(seconds=seconds)


async def test_campaign_limits_are_set_checked_and_shown(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=0)
    url = f"/campaigns/{setup['campaign_id']}"
    shown = (await hotline.http.get(url)).json()
    assert (shown["stale_alert_seconds"], shown["stale_end_seconds"]) == (1800, 7200)
    too_short = await hotline.http.patch(url, json={"stale_alert_seconds": 5})
    assert too_short.status_code == 422 and too_short.json()["field"] == "stale_alert_seconds"
    backwards = await hotline.http.patch(
        url, json={"stale_alert_seconds": 3600, "stale_end_seconds": 600}
    )
    assert backwards.status_code == 422 and backwards.json()["field"] == "stale_end_seconds"
    assert (await hotline.http.get(url)).json()["stale_alert_seconds"] == 1800  # unchanged
    ok = await hotline.http.patch(url, json={"stale_alert_seconds": 600, "stale_end_seconds": 900})
    assert ok.status_code == 200, ok.text
    assert (ok.json()["stale_alert_seconds"], ok.json()["stale_end_seconds"]) == (600, 900)


async def test_a_long_call_alerts_once_then_is_ended_as_stale(hotline_factory: Any) -> None:
    hotline: Hotline = await hotline_factory(stale_sweep_seconds=3600)  # driven by hand
    setup = await setup_campaign(hotline, agents=1, campaign=LIMITS)
    agent_id = setup["agent_ids"][0]
    call = await connected_call(hotline, agent_id, "long-1")

    # Within the limit: nothing happens.
    done = await stale.sweep(hotline.db, at(call, 1799))
    assert (done.alerted, done.ended, done.freed) == (0, 0, 0)
    assert await alerts(hotline) == []

    # Past the alert limit: supervisors are told once, however many sweeps look.
    assert (await stale.sweep(hotline.db, at(call, 1800))).alerted == 1
    assert (await stale.sweep(hotline.db, at(call, 3600))).alerted == 0
    [alert] = await alerts(hotline)
    assert alert["call_id"] == call["id"]
    assert alert["reason"] == "stale_call" and alert["about_agent_id"] == agent_id
    assert (await get_call(hotline, call["id"]))["state"] == "connected"  # not ended yet

    # Past the hard limit: ended as stale, the volunteer in wrap-up as after a hang-up,
    # the platform told to drop the line.
    done = await stale.sweep(hotline.db, at(call, 7200))
    assert (done.alerted, done.ended) == (0, 1)
    ended = await get_call(hotline, call["id"])
    assert (ended["state"], ended["end_reason"]) == ("wrap_up", "stale")
    agent = await get_agent(hotline, agent_id)
    assert (agent["state"], agent["current_call_id"]) == ("wrap_up", call["id"])
    assert [c for c, _ in await commands_for(hotline, "long-1")][-1] == "hangup"
    assert [a["reason"] for a in await alerts(hotline)] == ["stale_call", "stale_call_ended"]
    wrap_up = await hotline.sql(
        "select data from events where type = 'call.wrap_up' and call_id = :c", c=call["id"]
    )
    assert [_json(d)["by"] for (d,) in wrap_up] == ["stale"]
    # The volunteer's wrap-up ends as usual; a late hang-up from the platform changes nothing.
    await event(hotline, "call.hangup", "long-1")
    r = await hotline.http.post(f"/agents/{agent_id}/wrap-up/end", json={"disposition": "pledge"})
    assert r.status_code == 200, r.text
    assert (await get_agent(hotline, agent_id))["state"] == "available"
    assert (await stale.sweep(hotline.db, at(call, 9000))).ended == 0


async def test_limits_are_per_campaign(hotline_factory: Any) -> None:
    hotline: Hotline = await hotline_factory(stale_sweep_seconds=3600)
    strict = await setup_campaign(
        hotline, agents=1, campaign={"stale_alert_seconds": 60, "stale_end_seconds": 120}
    )
    call = await connected_call(hotline, strict["agent_ids"][0], "strict-1")
    other = await hotline.http.post(
        "/campaigns", json={"name": "Relaxed", "dialled_numbers": ["+33800000002"]}
    )
    assert other.status_code == 201, other.text
    q = await hotline.http.post(
        "/queues", json={"campaign_id": other.json()["id"], "name": "pledges"}
    )
    assert q.status_code == 201, q.text
    a = await hotline.http.post(
        "/agents",
        json={"campaign_id": other.json()["id"], "login": "relaxed", "display_name": "R"},
    )
    relaxed_agent = a.json()["id"]
    await hotline.http.post(f"/agents/{relaxed_agent}/login", json={})
    await ready(hotline, relaxed_agent)
    relaxed = (await hotline.incoming("relaxed-1", dialled="+33800000002")).json()["call"]
    await event(hotline, "seat.answered", "relaxed-1")
    assert (await get_call(hotline, relaxed["id"]))["state"] == "connected"

    done = await stale.sweep(hotline.db, at(call, 600))
    assert (done.alerted, done.ended) == (0, 1)  # the strict campaign's call only
    assert (await get_call(hotline, call["id"]))["end_reason"] == "stale"
    assert (await get_call(hotline, relaxed["id"]))["state"] == "connected"


async def test_a_volunteer_held_by_no_live_call_is_freed(hotline_factory: Any) -> None:
    hotline: Hotline = await hotline_factory(stale_sweep_seconds=3600)
    setup = await setup_campaign(hotline, agents=2)
    held, reserved = setup["agent_ids"]
    call = await connected_call(hotline, held, "held-1")
    # A hang-up the steps never saw: the call ended but the volunteer is still on it.
    async with hotline.db.unit_of_work() as uow:
        await uow.session.execute(
            text("update calls set state = 'completed', ended_at = :t where id = :c"),
            {"t": utcnow(), "c": call["id"]},
        )
        # And one reserved for no call at all.
        await uow.session.execute(
            text("update agents set state = 'reserved', current_call_id = null where id = :a"),
            {"a": reserved},
        )
    waiting = await incoming(hotline, "waiting-1")  # nobody free to take it
    assert (await get_call(hotline, waiting))["state"] == "queued"

    soon = utcnow() + dt.timedelta(seconds=30)
    assert (await stale.sweep(hotline.db, soon)).freed == 0  # within the margin

    later = utcnow() + stale.STRANDED_AFTER + dt.timedelta(seconds=1)
    assert (await stale.sweep(hotline.db, later)).freed == 2
    # Freed as the end of a call frees them: one of them takes the waiting call at once.
    states = sorted([(await get_agent(hotline, a))["state"] for a in (held, reserved)])
    assert states == ["available", "reserved"]
    assert (await get_call(hotline, waiting))["state"] == "offered"
    reasons = [a["reason"] for a in await alerts(hotline)]
    assert reasons == ["stranded_agent", "stranded_agent"]
    # Volunteers holding their live call are left alone.
    assert (await stale.sweep(hotline.db, later + dt.timedelta(hours=1))).freed == 0


async def test_the_background_sweeper_ends_stale_calls(hotline_factory: Any) -> None:
    hotline: Hotline = await hotline_factory(stale_sweep_seconds=0.05)
    setup = await setup_campaign(
        hotline,
        agents=1,
        campaign={"stale_alert_seconds": 60, "stale_end_seconds": 120},
        queue={"wrapup_seconds": 0},
    )
    agent_id = setup["agent_ids"][0]
    call = await connected_call(hotline, agent_id, "bg-1")
    # The platform never sends the hang-up; the call "started" three minutes ago.
    async with hotline.db.unit_of_work() as uow:
        await uow.session.execute(
            text("update calls set answered_at = :t where id = :c"),
            {"t": utcnow() - dt.timedelta(minutes=3), "c": call["id"]},
        )

    async def ended() -> bool:
        end_reason: str | None = (await get_call(hotline, call["id"]))["end_reason"]
        return end_reason == "stale"

    await wait_for(ended, timeout=10)
    # Wrap-up (0 s here) ends by its timer: the volunteer is back in service.
    await wait_agent(hotline, agent_id, "available", timeout=10)
    assert (await get_call(hotline, call["id"]))["state"] == "completed"
