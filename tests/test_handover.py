"""The warm hand-over (Needs support) end to end, against a real server process on
SQLite and PostgreSQL: calls and seats through the signed telephony webhook, the
volunteer, the specialist and a supervisor on real websockets, the commands read
back as the platform reads them (signed polling).

The volunteer stays on the call (``consulting``, the caller on hold) until a
specialist answers the consult leg (then the caller is bridged to them and the
volunteer wraps up) or the fallback passes (then the consult leg is withdrawn and
the volunteer reads the partner-helpline script). A late answer gets nothing.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from app import signing
from tests import test_sockets
from tests.conftest import wait_for
from tests.procs import DEFAULT_SECRET
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

server = test_sockets.server

CALLER = "+33123456789"  # what tests.test_sockets._incoming calls from

# A campaign's own rules: the default hand-over with a fallback of one second.
QUICK_FALLBACK = """
version: 1
rules:
  - name: needs-support
    on: agent.flagged
    when: flag.kind == "needs_support"
    then:
      - tag: escalated
      - show_script: handover
      - consult: {queue: specialists, fallback: 1s}
  - name: no-specialist
    on: timer.no-specialist
    when: call.state == "connected"
    then:
      - show_script: partner-helpline
      - alert_supervisors: "No specialist for {caller.number}."
"""


@dataclass
class Desk:
    volunteer: Volunteer
    specialists_id: int
    specialist_id: int
    specialist_token: str
    supervisor_token: str


async def _desk(server: Server, *, quick: bool = False) -> Desk:
    """A campaign with its volunteer, a specialists' queue, one specialist (who
    alone has the skill) and a supervisor; ``quick``: the one-second fallback."""
    volunteer = await _volunteer(server)
    admin = server.admin
    cid = volunteer.campaign_id
    q = await admin.post(
        "/queues",
        json={
            "campaign_id": cid,
            "name": "specialists",
            "required_skill": "specialist",
            "ring_timeout_seconds": 120,
            "auto_answer": False,
        },
    )
    assert q.status_code == 201, q.text
    a = await admin.post(
        "/agents",
        json={
            "campaign_id": cid,
            "login": "s1",
            "display_name": "Spécialiste",
            "skills": {"specialist": 1},
        },
    )
    assert a.status_code == 201, a.text
    specialist_id = a.json()["id"]
    token = await test_sockets._agent_bearer(server, cid, specialist_id, "135790")
    if quick:
        r = await admin.put(f"/campaigns/{cid}/rules", json={"source": QUICK_FALLBACK})
        assert r.status_code == 200, r.text
    supervisor = await _supervisor_token(server, cid)
    return Desk(volunteer, q.json()["id"], specialist_id, token, supervisor)


async def _telephony(server: Server, event: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"event_id": f"e-{uuid.uuid4().hex}", **event}).encode()
    r = await server.admin.post(
        "/telephony/events",
        content=body,
        headers={
            **signing.signed_headers(DEFAULT_SECRET, body),
            "Content-Type": "application/json",
        },
    )
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def _commands(server: Server, provider_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The commands for a provider call, as the platform polls them."""
    found: list[tuple[str, dict[str, Any]]] = []
    after = 0
    while True:
        query = urlencode({"after": after, "limit": 1000})
        headers = signing.signed_headers(DEFAULT_SECRET, query.encode())
        r = await server.admin.get(f"/telephony/commands?{query}", headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        found += [
            (c["command"], c["args"]) for c in page["commands"] if c["call_id"] == provider_id
        ]
        if len(page["commands"]) < 1000:
            return found
        after = page["next_after"]


async def _talking(server: Server, desk: Desk, ws: Any) -> tuple[str, int]:
    """The volunteer (ready on ``ws``) answers a call from CALLER: its ids."""
    provider_id = await _incoming(server, desk.volunteer)
    offered = (await _until(ws, _is("call.offered")))[-1]
    assert (await _command(ws, "answer"))["type"] == "ack"
    await _until(ws, _is("agent.state", state="on_call"))
    return provider_id, int(offered["data"]["call_id"])


async def _consulting(ws: Any) -> tuple[int, list[dict[str, Any]]]:
    """Needs support pressed: the volunteer is consulting; the consult leg's id."""
    ack = await _command(ws, "needs_support")
    assert ack["type"] == "ack", ack
    assert ack["data"]["rules"] == ["needs-support"]
    seen = await _until(ws, _is("agent.state", state="consulting"))
    seen += await _until(ws, _is("call.consulting"))
    consulting = seen[-1]["data"]
    assert consulting["to_queue"] == "specialists" and consulting["fallback_until"]
    return int(consulting["consult_call_id"]), seen


async def test_a_specialist_answers_and_the_caller_is_theirs_with_the_context(
    server: Server,
) -> None:
    desk = await _desk(server)
    async with (
        await _connect(server, "agent", desk.volunteer.token) as ws,
        await _connect(server, "agent", desk.specialist_token) as spec,
        await _connect(server, "supervisor", desk.supervisor_token) as boss,
    ):
        for screen in (ws, spec, boss):
            await screen.recv()  # snapshot
        await _command(ws, "ready")
        provider_id, call_id = await _talking(server, desk, ws)
        await _command(spec, "ready")
        await _until(spec, _is("agent.state", state="available"))
        leg_id, seen = await _consulting(ws)
        handover = next(m for m in seen if m["type"] == "script.show")
        assert handover["data"]["script"]["name"] == "handover"
        # The supervisors' live view shows the volunteer consulting.
        await _until(boss, _is("agent.state", state="consulting"))
        # The specialist is rung with the context and the caller's details.
        offered = (await _until(spec, _is("call.offered", call_id=leg_id)))[-1]["data"]
        assert offered["caller"] == CALLER and offered["queue"] == "specialists"
        assert offered["consult"]["from_call_id"] == call_id
        assert offered["consult"]["from_agent_name"] == "V 1"
        assert "escalated" in offered["consult"]["tags"]
        sent = await _commands(server, provider_id)
        names = [c for c, _ in sent]
        assert "hold" in names and "consult" in names
        ring = next(a for c, a in sent if c == "consult")
        assert ring["agent_id"] == desk.specialist_id and ring["consult_call_id"] == leg_id
        assert ring["ring_seconds"] == 120  # the specialists' queue's ring timeout
        assert not any(c == "bridge" and a.get("consult") for c, a in sent)
        # The volunteer's call is still up (the caller on hold) until the answer.
        call = (await server.admin.get(f"/calls/{call_id}")).json()
        assert call["state"] == "connected"

        # The specialist's seat answers (the platform's event).
        answer = await _telephony(
            server,
            {
                "type": "seat.answered",
                "call_id": provider_id,
                "seat": f"agent:{desk.specialist_id}",
            },
        )
        assert answer["call"]["id"] == leg_id and answer["call"]["state"] == "connected"
        await _until(spec, _is("agent.state", state="on_call"))
        seen = await _until(ws, _is("call.transferred", call_id=call_id))
        moved = seen[-1]["data"]
        assert moved["by"] == "consult" and moved["next_call_id"] == leg_id
        assert moved["to_agent_id"] == desk.specialist_id and moved["wrapup_until"]
        assert any(_is("agent.state", state="wrap_up", action="hand_over")(m) for m in seen)
        bridge = [a for c, a in await _commands(server, provider_id) if c == "bridge"]
        assert bridge[-1]["consult"] is True and bridge[-1]["agent_id"] == desk.specialist_id
        # The specialist's screen, drawn afresh, has the caller.
    async with await _connect(server, "agent", desk.specialist_token) as spec:
        snapshot = json.loads(await spec.recv())
        assert snapshot["type"] == "snapshot"
        assert snapshot["data"]["call"]["id"] == leg_id
        assert snapshot["data"]["call"]["caller_number"] == CALLER
    first = (await server.admin.get(f"/calls/{call_id}")).json()
    assert first["state"] == "transferred"
    leg = (await server.admin.get(f"/calls/{leg_id}")).json()
    assert leg["state"] == "connected" and leg["agent_id"] == desk.specialist_id
    assert leg["parent_call_id"] == call_id and leg["caller_number"] == CALLER


async def test_no_specialist_in_time_the_volunteer_reads_the_partner_helpline(
    server: Server,
) -> None:
    desk = await _desk(server, quick=True)  # the specialist never gets ready
    async with (
        await _connect(server, "agent", desk.volunteer.token) as ws,
        await _connect(server, "supervisor", desk.supervisor_token) as boss,
    ):
        await ws.recv()
        await boss.recv()
        await _command(ws, "ready")
        provider_id, call_id = await _talking(server, desk, ws)
        leg_id, _ = await _consulting(ws)
        # Pressed again while the caller is on hold: refused, nothing changes.
        again = await _command(ws, "needs_support")
        assert again["type"] == "error" and again["data"]["code"] == "agent_consulting"
        # The volunteer cannot hang up on a caller who is on hold.
        hangup = await _command(ws, "hangup")
        assert hangup["type"] == "error", hangup
        seen = await _until(ws, _is("call.consult_ended", outcome="no_specialist"), timeout=15)
        assert any(_is("agent.state", state="on_call", action="resume")(m) for m in seen)
        shown = (await _until(ws, _is("script.show", call_id=call_id)))[-1]["data"]
        assert shown["script"]["name"] == "partner-helpline"
        helpline = "+33 800 00 00 00"  # the default partner helpline (settings)
        assert helpline in shown["script"]["steps"][0]["text"]
        alert = (await _until(boss, _is("supervisor.alert", rule="no-specialist")))[-1]
        assert CALLER in alert["data"]["text"]
        # The caller is with the volunteer again: the call goes on as any call.
        assert (await _command(ws, "hangup"))["type"] == "ack"
        await _until(ws, _is("agent.state", state="wrap_up"))
    leg = (await server.admin.get(f"/calls/{leg_id}")).json()
    assert leg["state"] == "withdrawn" and leg["end_reason"] == "no_specialist"
    stats = (await server.admin.get(f"/queues/{desk.specialists_id}/stats")).json()
    # Nobody left in the specialists' queue.
    assert stats["calls_waiting"] == 0 and stats["calls_ringing"] == 0
    names = [c for c, _ in await _commands(server, provider_id)]
    assert names.index("hold") < names.index("consult_cancel") < names.index("unhold")
    assert "consult" not in names  # no specialist's seat was rung
    assert (await server.admin.get(f"/calls/{call_id}")).json()["state"] == "wrap_up"


async def test_a_specialist_answering_after_the_fallback_gets_nothing(server: Server) -> None:
    desk = await _desk(server, quick=True)
    async with (
        await _connect(server, "agent", desk.volunteer.token) as ws,
        await _connect(server, "agent", desk.specialist_token) as spec,
    ):
        await ws.recv()
        await spec.recv()
        await _command(ws, "ready")
        provider_id, call_id = await _talking(server, desk, ws)
        await _command(spec, "ready")
        await _until(spec, _is("agent.state", state="available"))
        leg_id, _ = await _consulting(ws)
        # The specialist's seat rings, but nobody answers before the fallback.
        await _until(spec, _is("call.offered", call_id=leg_id))
        withdrawn = (await _until(spec, _is("call.withdrawn", call_id=leg_id), timeout=15))[-1]
        assert withdrawn["data"]["reason"] == "no_specialist"
        await _until(spec, _is("agent.state", state="available"))
        await _until(ws, _is("agent.state", state="on_call"))
        # Too late: the answer on the screen and the seat's answer change nothing.
        late = await _command(spec, "answer")
        assert late["type"] == "error" and late["data"]["code"] == "no_current_call"
        answer = await _telephony(
            server,
            {
                "type": "seat.answered",
                "call_id": provider_id,
                "seat": f"agent:{desk.specialist_id}",
            },
        )
        assert answer["call"]["id"] == call_id and answer["note"].startswith("no change")
        # The specialist's seat going down after its ring was taken back ends nothing.
        gone = await _telephony(
            server,
            {"type": "seat.hangup", "call_id": provider_id, "seat": f"agent:{desk.specialist_id}"},
        )
        assert gone["call"]["state"] == "connected", gone
    sent = await _commands(server, provider_id)
    assert not any(c == "bridge" and a.get("consult") for c, a in sent)
    assert "consult_cancel" in [c for c, _ in sent]
    leg = (await server.admin.get(f"/calls/{leg_id}")).json()
    assert leg["state"] == "withdrawn"
    first = (await server.admin.get(f"/calls/{call_id}")).json()
    assert first["state"] == "connected" and first["agent_id"] == desk.volunteer.agent_id
    specialist = (await server.admin.get(f"/agents/{desk.specialist_id}")).json()
    assert specialist["state"] == "available"


async def test_the_caller_hangs_up_while_on_hold(server: Server) -> None:
    desk = await _desk(server)
    async with await _connect(server, "agent", desk.volunteer.token) as ws:
        await ws.recv()
        await _command(ws, "ready")
        provider_id, call_id = await _talking(server, desk, ws)
        leg_id, _ = await _consulting(ws)
        await _telephony(server, {"type": "call.hangup", "call_id": provider_id})
        seen = await _until(ws, _is("call.consult_ended", outcome="caller_hangup"))
        assert any(_is("agent.state", state="wrap_up", action="end_consult")(m) for m in seen)
        wrap = (await _until(ws, _is("call.wrap_up", call_id=call_id)))[-1]
        assert wrap["data"]["by"] == "caller"
        assert (await _command(ws, "end_wrap_up"))["type"] == "ack"
        await _until(ws, _is("agent.state", state="available"))

    async def withdrawn() -> bool:
        leg = (await server.admin.get(f"/calls/{leg_id}")).json()
        return bool(leg["state"] == "withdrawn" and leg["end_reason"] == "caller_hangup")

    await wait_for(withdrawn)
    assert (await server.admin.get(f"/calls/{call_id}")).json()["state"] == "completed"
    names = [c for c, _ in await _commands(server, provider_id)]
    assert "consult_cancel" in names and "unhold" not in names
    stats = (await server.admin.get(f"/queues/{desk.specialists_id}/stats")).json()
    assert stats["calls_waiting"] == 0 and stats["calls_ringing"] == 0


async def test_the_volunteers_seat_hanging_up_while_on_hold_ends_the_call(
    server: Server,
) -> None:
    desk = await _desk(server)
    async with (
        await _connect(server, "agent", desk.volunteer.token) as ws,
        await _connect(server, "agent", desk.specialist_token) as spec,
    ):
        await ws.recv()
        await spec.recv()
        await _command(ws, "ready")
        provider_id, call_id = await _talking(server, desk, ws)
        await _command(spec, "ready")
        await _until(spec, _is("agent.state", state="available"))
        leg_id, _ = await _consulting(ws)
        await _until(spec, _is("call.offered", call_id=leg_id))
        # The volunteer's own seat goes down (a platform event naming it).
        seat = f"agent:{desk.volunteer.agent_id}"
        await _telephony(server, {"type": "seat.hangup", "call_id": provider_id, "seat": seat})
        seen = await _until(ws, _is("call.consult_ended", outcome="agent_hangup"))
        assert any(_is("agent.state", state="wrap_up", action="end_consult")(m) for m in seen)
        # The ringing specialist is released.
        withdrawn = (await _until(spec, _is("call.withdrawn", call_id=leg_id)))[-1]
        assert withdrawn["data"]["reason"] == "agent_hangup"
        await _until(spec, _is("agent.state", state="available"))
    sent = [c for c, _ in await _commands(server, provider_id)]
    assert "consult_cancel" in sent and sent[-1] == "hangup"
    assert (await server.admin.get(f"/calls/{call_id}")).json()["state"] == "wrap_up"
    assert (await server.admin.get(f"/calls/{leg_id}")).json()["state"] == "withdrawn"
