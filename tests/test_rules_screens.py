"""Rules end to end on the screens, against a real server process (SQLite and PostgreSQL):
a call comes in through the signed webhook, the volunteer's socket receives the
script, the Prank and Needs-support buttons and the script's own buttons come back
as socket commands and have their effect (strike, block, transfer, alert).
"""

from __future__ import annotations

from typing import Any

from tests import test_sockets
from tests.test_sockets import (
    Server,
    Volunteer,
    _command,
    _connect,
    _incoming,
    _is,
    _supervisor_token,
    _until,
    _volunteer,
)

# The same real server (one uvicorn process per database) as the socket tests use.
server = test_sockets.server

CALLER = "+33123456789"  # what tests.test_sockets._incoming calls from


async def _talking(server: Server, volunteer: Volunteer, ws: Any) -> tuple[int, dict[str, Any]]:
    """A call offered and answered on this screen: its id and the script shown with it."""
    await _incoming(server, volunteer)
    seen = await _until(ws, _is("script.show"))
    offered = next(m for m in seen if m["type"] == "call.offered")
    script = seen[-1]["data"]["script"]
    assert seen[-1]["data"]["call_id"] == offered["data"]["call_id"]
    assert (await _command(ws, "answer"))["type"] == "ack"
    await _until(ws, _is("agent.state", state="on_call"))
    return int(offered["data"]["call_id"]), script


async def test_the_pledge_script_shows_with_each_offer_and_in_the_snapshot(
    server: Server,
) -> None:
    volunteer = await _volunteer(server)
    async with await _connect(server, "agent", volunteer.token) as ws:
        await ws.recv()  # snapshot
        await _command(ws, "ready")
        call_id, script = await _talking(server, volunteer, ws)
        assert script["name"] == "pledge" and script["version"] == 1
        assert [s["kind"] for s in script["steps"]] == ["say", "ask", "checklist", "say"]
        assert "V 1" in script["steps"][0]["text"]  # {agent.name}
    # A screen coming back mid-call draws the script from its snapshot.
    async with await _connect(server, "agent", volunteer.token) as ws:
        snapshot = (await _until(ws, _is("snapshot")))[-1]
        assert snapshot["data"]["call"]["id"] == call_id
        assert snapshot["data"]["call"]["script"]["name"] == "pledge"


async def test_prank_button_closes_politely_strikes_and_blocks_after_three(
    server: Server,
) -> None:
    volunteer = await _volunteer(server)
    supervisor = await _supervisor_token(server, volunteer.campaign_id)
    async with (
        await _connect(server, "agent", volunteer.token) as ws,
        await _connect(server, "supervisor", supervisor) as boss,
    ):
        await ws.recv()
        await boss.recv()
        await _command(ws, "ready")
        for strike in (1, 2, 3):
            call_id, _ = await _talking(server, volunteer, ws)
            ack = await _command(ws, "flag_prank")
            assert ack["type"] == "ack", ack
            assert "prank-button" in ack["data"]["rules"]
            shown = (await _until(ws, _is("script.show", call_id=call_id)))[-1]
            close = shown["data"]["script"]
            assert close["name"] == "prank-close"
            assert [s["kind"] for s in close["steps"]] == ["say", "choice"]
            assert close["steps"][1]["buttons"] == [{"id": "end-call", "label": "Terminer l'appel"}]
            boss_seen = await _until(boss, _is("supervisor.alert", rule="prank-button"))
            alert = boss_seen[-1]
            assert CALLER in alert["data"]["text"] and "V 1" in alert["data"]["text"]
            # Supervisors see that a script was shown, not its text (it holds the caller's name).
            scripts_seen = [m for m in boss_seen if m["type"] == "script.show"]
            assert scripts_seen and all("script" not in m["data"] for m in scripts_seen)
            # The script's own button ends the call.
            press = await _command(ws, "script_choice", script="prank-close", button="end-call")
            assert press["type"] == "ack", press
            wrap = (await _until(ws, _is("call.wrap_up", call_id=call_id)))[-1]
            assert wrap["data"]["by"] == "agent"
            listing = (
                await server.admin.get(f"/campaigns/{volunteer.campaign_id}/blocklist")
            ).json()
            assert listing[0]["number"] == CALLER
            assert listing[0]["strikes"] >= strike
            await _command(ws, "end_wrap_up")
            await _until(ws, _is("agent.state", state="available"))
        assert listing[0]["blocked"] is True
        # The blocked number is turned away before reaching anyone.
        await _incoming(server, volunteer)
        rejected = (await _until(boss, _is("call.rejected")))[-1]
        assert rejected["data"]["reason"] == "blocked"


async def test_needs_support_hands_the_caller_to_the_specialists_with_the_context(
    server: Server,
) -> None:
    volunteer = await _volunteer(server)
    r = await server.admin.post(
        "/queues",
        json={
            "campaign_id": volunteer.campaign_id,
            "name": "specialists",
            "required_skill": "specialist",  # nobody has it here: the caller waits
        },
    )
    assert r.status_code == 201, r.text
    specialists = r.json()["id"]
    supervisor = await _supervisor_token(server, volunteer.campaign_id)
    async with (
        await _connect(server, "agent", volunteer.token) as ws,
        await _connect(server, "supervisor", supervisor) as boss,
    ):
        await ws.recv()
        await boss.recv()
        await _command(ws, "ready")
        call_id, _ = await _talking(server, volunteer, ws)
        ack = await _command(ws, "needs_support")
        assert ack["type"] == "ack", ack
        assert ack["data"]["rules"] == ["needs-support"]
        # A warm hand-over (tests/test_handover.py: the rest): the volunteer stays on
        # the call, the caller on hold, while the specialists' queue is rung.
        seen = await _until(ws, _is("call.consulting", call_id=call_id))
        handover = next(m for m in seen if m["type"] == "script.show")
        assert handover["data"]["script"]["name"] == "handover"
        flagged = next(m for m in seen if m["type"] == "agent.flagged")
        # Only that support was asked for: nothing about the caller's health.
        assert set(flagged["data"]) - {"campaign_id", "queue_id", "call_id", "agent_id"} == {"kind"}
        leg_id = seen[-1]["data"]["consult_call_id"]
        assert any(_is("agent.state", state="consulting")(m) for m in seen)
        alert = (await _until(boss, _is("supervisor.alert", rule="needs-support")))[-1]
        assert "spécialistes" in alert["data"]["text"]
    leg = (await server.admin.get(f"/calls/{leg_id}")).json()
    assert leg["state"] == "queued" and leg["queue_id"] == specialists
    assert leg["parent_call_id"] == call_id and leg["caller_number"] == CALLER
    assert "escalated" in leg["tags"]


async def test_script_and_flag_commands_refuse_bad_input(server: Server) -> None:
    volunteer = await _volunteer(server)
    async with await _connect(server, "agent", volunteer.token) as ws:
        await ws.recv()
        no_call = await _command(ws, "flag_prank")
        assert no_call["type"] == "error" and no_call["data"]["code"] == "no_current_call"
        await _command(ws, "ready")
        await _talking(server, volunteer, ws)
        bad = await _command(ws, "script_choice", script="prank-close", button="explode")
        assert bad["type"] == "error" and bad["data"]["field"] == "args.button"
        odd = await _command(ws, "script_choice", script="Prank Close!", button="x")
        assert odd["type"] == "error" and odd["data"]["code"] == "invalid"
        extra = await _command(ws, "flag_prank", reason="health")
        assert extra["type"] == "error" and extra["data"]["code"] == "invalid"
