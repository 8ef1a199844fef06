"""Real calls through a real Asterisk driven by the app over ARI (docs/asterisk.md).

SIPp places the callers' calls (SIP and RTP) to the hotline number; the volunteers'
desk phones are SIPp answering (or not) scenarios. Each test waits on states
(the call's, Asterisk's channels), never on time. Without Asterisk (``make
asterisk``) these tests skip, and fail under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from sqlalchemy import select

from app.telephony.asterisk.config import SeatPhone
from app.telephony.asterisk.lease import lock_key
from app.telephony.asterisk.local import DemoCaller
from app.telephony.asterisk.platform import AsteriskPlatform
from app.telephony.commands import as_message
from app.telephony.models import Command
from tests import procs
from tests.asterisk_pbx import (
    ARI_APP,
    Pbx,
    Sipp,
    asterisk_problem,
    free_port,
    running_pbx,
    start_sipp,
)
from tests.conftest import Hotline, setup_campaign, wait_for

_PROBLEM = asterisk_problem()
if _PROBLEM is not None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the telephony tests cannot run: {_PROBLEM}", pytrace=False)
    pytest.skip(_PROBLEM, allow_module_level=True)

HOTLINE = "+33800000001"
# Seats' desk phones: SIPp answering on these ports (chosen once, written in pjsip).
DESK_PORTS = {"desk-1": free_port(socket.SOCK_DGRAM), "desk-2": free_port(socket.SOCK_DGRAM)}
# What the trunk's outgoing calls reach: the caller's phone called back, a SIPp.
CALLEE_PORT = free_port(socket.SOCK_DGRAM)


@pytest.fixture
async def pbx(tmp_path: Path) -> AsyncIterator[Pbx]:
    phones = [
        # Keys as SIP INFO: a key pressed on a seat's channel is its cue to hang up.
        SeatPhone(name, contact=f"sip:{name}@127.0.0.1:{port}", dtmf_mode="info")
        for name, port in DESK_PORTS.items()
    ]
    callee = f"sip:127.0.0.1:{CALLEE_PORT}"
    async with running_pbx(tmp_path, phones, trunk_contact=callee) as running:
        yield running


async def _hotline(
    hotline_factory: Callable[..., Awaitable[Hotline]], pbx: Pbx, **queue: Any
) -> tuple[Hotline, dict[str, Any]]:
    hotline = await hotline_factory(**pbx.settings())
    platform = hotline.app.state.platform
    assert isinstance(platform, AsteriskPlatform)
    await wait_for(lambda: _true(platform.connected.is_set()))
    ids = await setup_campaign(hotline, agents=0, queue=queue or None)
    return hotline, ids


async def _true(value: bool) -> bool:
    return value


async def _volunteer_at(
    hotline: Hotline,
    ids: dict[str, Any],
    desk: str,
    *,
    ready: bool = True,
    skills: dict[str, int] | None = None,
) -> int:
    """A volunteer logged in at the seat whose phone is ``desk``, ready (or paused)."""
    http = hotline.http
    seat = await http.post(
        "/seats",
        json={"campaign_id": ids["campaign_id"], "name": desk, "address": f"PJSIP/{desk}"},
    )
    assert seat.status_code == 201, seat.text
    agent = await http.post(
        "/agents",
        json={
            "campaign_id": ids["campaign_id"],
            "login": desk,
            "display_name": desk,
            "skills": skills or {"pledges": 1},
        },
    )
    assert agent.status_code == 201, agent.text
    agent_id: int = agent.json()["id"]
    r = await http.post(f"/agents/{agent_id}/login", json={"seat_id": seat.json()["id"]})
    assert r.status_code == 200, r.text
    if ready:
        assert (await http.post(f"/agents/{agent_id}/ready")).status_code == 200
    return agent_id


async def _the_call(hotline: Hotline, campaign_id: int, state: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        r = await hotline.http.get("/calls", params={"campaign_id": campaign_id})
        calls = r.json()
        return calls[0] if calls and calls[0]["state"] == state else None

    found: dict[str, Any] = await wait_for(check, timeout=30)
    return found


async def _agent_state(hotline: Hotline, agent_id: int, state: str) -> None:
    async def check() -> bool:
        return bool((await hotline.http.get(f"/agents/{agent_id}")).json()["state"] == state)

    await wait_for(check, timeout=30)


def _caller(tmp_path: Path, pbx: Pbx, scenario: str = "caller", number: str = "0612345678") -> Sipp:
    """A SIPp caller (SIP and RTP) dialling the hotline number from a port of its own,
    as ``number`` (the caller id Asterisk hands over)."""
    return start_sipp(
        tmp_path,
        scenario,
        port=free_port(socket.SOCK_DGRAM),
        pbx=pbx,
        service=HOTLINE,
        caller=number,
    )


async def _press_key(pbx: Pbx, channel: str) -> None:
    """A key sent to a channel: Asterisk sends the party a SIP INFO, which our SIPp
    scenarios take as their cue to hang up."""
    async with pbx.ari() as ari:
        r = await ari.post(f"/channels/{channel}/dtmf", params={"dtmf": "5"})
        assert r.status_code == 204, r.text


async def _channel_list(pbx: Pbx) -> list[dict[str, Any]]:
    async with pbx.ari() as ari:
        channels: list[dict[str, Any]] = (await ari.get("/channels")).json()
    return channels


async def _channels(pbx: Pbx) -> list[str]:
    return [c["id"] for c in await _channel_list(pbx)]


async def _bridged_channels(pbx: Pbx) -> list[str]:
    async with pbx.ari() as ari:
        bridges = (await ari.get("/bridges")).json()
    return [c for b in bridges for c in b["channels"]]


async def test_a_call_is_queued_offered_answered_bridged_and_ended_by_the_caller(
    hotline_factory: Callable[..., Awaitable[Hotline]], pbx: Pbx, sipps: list[Sipp], tmp_path: Path
) -> None:
    hotline, ids = await _hotline(hotline_factory, pbx)
    agent_id = await _volunteer_at(hotline, ids, "desk-1")
    desk = start_sipp(tmp_path, "seat_answers", port=DESK_PORTS["desk-1"])
    sipps.append(desk)
    caller = _caller(tmp_path, pbx)
    sipps.append(caller)

    call = await _the_call(hotline, ids["campaign_id"], "connected")
    assert call["agent_id"] == agent_id
    channel = call["provider_call_id"]

    # Caller and volunteer talk through one mixing bridge.
    async def both_bridged() -> list[str]:
        channels = await _bridged_channels(pbx)
        return channels if len(channels) == 2 and channel in channels else []

    await wait_for(both_bridged, timeout=30)

    await _press_key(pbx, channel)  # the caller hangs up
    ended = await _the_call(hotline, ids["campaign_id"], "wrap_up")
    assert ended["end_reason"] == "caller_hangup"
    await _agent_state(hotline, agent_id, "wrap_up")
    assert await caller.finished() == 0, caller.output()
    assert await desk.finished() == 0, desk.output()  # its BYE came from Asterisk
    assert await _bridged_channels(pbx) == []
    # The ARI requests went over the events websocket, and Asterisk sent only the
    # events the adapter acts on (its filter), none of a call's dial progress,
    # variables or bridge moves.
    platform = hotline.app.state.platform
    assert platform.ari.on_websocket
    assert platform.unasked_events == 0


async def _in_log(pbx: Pbx, text: str) -> None:
    async def check() -> bool:
        return text in pbx.log_text()

    await wait_for(check, timeout=30)


async def test_a_caller_hanging_up_while_queued_abandons_after_the_welcome_and_music(
    hotline_factory: Callable[..., Awaitable[Hotline]], pbx: Pbx, sipps: list[Sipp], tmp_path: Path
) -> None:
    hotline, ids = await _hotline(hotline_factory, pbx)  # nobody to answer
    caller = _caller(tmp_path, pbx)
    sipps.append(caller)
    call = await _the_call(hotline, ids["campaign_id"], "queued")
    # In French by default: the welcome prompt, then the music on hold.
    await _in_log(pbx, "Playing 'queue-periodic-announce.slin' (language 'fr')")
    await _in_log(pbx, "Started music on hold, class 'default'")

    await _press_key(pbx, call["provider_call_id"])  # the caller gives up
    ended = await _the_call(hotline, ids["campaign_id"], "abandoned")
    assert ended["id"] == call["id"]
    assert await caller.finished() == 0, caller.output()


async def test_a_seat_not_answering_in_time_sends_the_call_back_to_the_queue(
    hotline_factory: Callable[..., Awaitable[Hotline]], pbx: Pbx, sipps: list[Sipp], tmp_path: Path
) -> None:
    hotline, ids = await _hotline(hotline_factory, pbx, ring_timeout_seconds=2)
    missing = await _volunteer_at(hotline, ids, "desk-1")
    other = await _volunteer_at(hotline, ids, "desk-2", ready=False)
    silent_desk = start_sipp(tmp_path, "seat_no_answer", port=DESK_PORTS["desk-1"])
    answering_desk = start_sipp(tmp_path, "seat_answers", port=DESK_PORTS["desk-2"])
    caller = _caller(tmp_path, pbx)
    sipps.extend([silent_desk, answering_desk, caller])

    offered = await _the_call(hotline, ids["campaign_id"], "offered")
    assert offered["agent_id"] == missing
    # Nobody picks up: the ring stops (its phone saw the CANCEL), the volunteer who
    # missed it is paused and the caller waits at the head of the queue again.
    assert await silent_desk.finished() == 0, silent_desk.output()
    await _agent_state(hotline, missing, "paused")
    requeued = await _the_call(hotline, ids["campaign_id"], "queued")
    assert requeued["id"] == offered["id"]

    assert (await hotline.http.post(f"/agents/{other}/ready")).status_code == 200
    connected = await _the_call(hotline, ids["campaign_id"], "connected")
    assert connected["agent_id"] == other
    await _press_key(pbx, connected["provider_call_id"])
    await _the_call(hotline, ids["campaign_id"], "wrap_up")
    assert await caller.finished() == 0, caller.output()
    assert await answering_desk.finished() == 0, answering_desk.output()


async def test_after_asterisk_crashes_the_adapter_reconnects_and_ends_the_calls_it_lost(
    hotline_factory: Callable[..., Awaitable[Hotline]], pbx: Pbx, sipps: list[Sipp], tmp_path: Path
) -> None:
    hotline, ids = await _hotline(hotline_factory, pbx)
    agent_id = await _volunteer_at(hotline, ids, "desk-1")
    sipps.append(start_sipp(tmp_path, "seat_answers", port=DESK_PORTS["desk-1"]))
    sipps.append(_caller(tmp_path, pbx))
    call = await _the_call(hotline, ids["campaign_id"], "connected")
    platform = hotline.app.state.platform
    assert isinstance(platform, AsteriskPlatform)
    before = platform.reconciliations

    # Killed: the call's channels die with it, no event nor BYE from anyone.
    await pbx.crash_and_restart()

    # Reconnected and reconciled: the live call with no channel left is over.
    await wait_for(lambda: _true(platform.reconciliations > before), timeout=30)
    ended = await _the_call(hotline, ids["campaign_id"], "wrap_up")
    assert ended["id"] == call["id"]
    assert ended["end_reason"] == "caller_hangup"
    await _agent_state(hotline, agent_id, "wrap_up")


async def _leg_of(pbx: Pbx, caller_channel: str) -> str:
    """The other channel in the caller's bridge: the volunteer's seat."""

    async def check() -> str | None:
        channels = await _bridged_channels(pbx)
        others = [c for c in channels if c != caller_channel]
        return others[0] if caller_channel in channels and others else None

    leg: str = await wait_for(check, timeout=30)
    return leg


async def test_the_volunteer_hanging_up_ends_the_call_and_the_caller_is_hung_up(
    hotline_factory: Callable[..., Awaitable[Hotline]], pbx: Pbx, sipps: list[Sipp], tmp_path: Path
) -> None:
    hotline, ids = await _hotline(hotline_factory, pbx)
    agent_id = await _volunteer_at(hotline, ids, "desk-1")
    desk = start_sipp(tmp_path, "seat_answers", port=DESK_PORTS["desk-1"])
    caller = _caller(tmp_path, pbx)
    sipps.extend([desk, caller])
    call = await _the_call(hotline, ids["campaign_id"], "connected")
    leg = await _leg_of(pbx, call["provider_call_id"])

    await _press_key(pbx, leg)  # the volunteer hangs up their desk phone
    ended = await _the_call(hotline, ids["campaign_id"], "wrap_up")
    assert ended["end_reason"] == "agent_hangup"
    await _agent_state(hotline, agent_id, "wrap_up")
    assert await desk.finished() == 0, desk.output()
    assert await caller.finished() == 0, caller.output()  # Asterisk's BYE came


async def test_outside_opening_hours_the_caller_hears_the_message_then_is_hung_up(
    hotline_factory: Callable[..., Awaitable[Hotline]], pbx: Pbx, sipps: list[Sipp], tmp_path: Path
) -> None:
    hotline, ids = await _hotline(hotline_factory, pbx)
    # Open only on a day three days from today: closed now.
    today = dt.datetime.now(ZoneInfo("Europe/Paris")).weekday()
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(today + 3) % 7]
    r = await hotline.http.patch(
        f"/campaigns/{ids['campaign_id']}",
        json={"opening_hours": {day: [["09:00", "18:00"]]}},
    )
    assert r.status_code == 200, r.text
    caller = _caller(tmp_path, pbx)
    sipps.append(caller)

    rejected = await _the_call(hotline, ids["campaign_id"], "rejected")
    assert rejected["end_reason"] == "closed"
    # No speech here: the message sound, in French, and only then the hang-up.
    assert await caller.finished() == 0, caller.output()
    log = pbx.log_text()
    assert "Playing 'im-sorry.slin' (language 'fr')" in log
    assert "Playing 'vm-goodbye.slin' (language 'fr')" in log


async def test_a_browser_softphone_is_provisioned_and_revoked_in_asterisk(
    hotline_factory: Callable[..., Awaitable[Hotline]], pbx: Pbx
) -> None:
    hotline, _ids = await _hotline(hotline_factory, pbx)
    platform = hotline.app.state.platform
    assert isinstance(platform, AsteriskPlatform)
    async with pbx.ari() as ari:
        assert (await ari.get("/endpoints/PJSIP/agent-5")).status_code == 404

        await platform.provision_softphone("agent-5", "sess-5-a1b2", "Kq8wZ3xLm9")
        endpoint = await ari.get("/endpoints/PJSIP/agent-5")
        assert endpoint.status_code == 200, endpoint.text
        auth = await ari.get("/asterisk/config/dynamic/res_pjsip/auth/sess-5-a1b2")
        fields = {f["attribute"]: f["value"] for f in auth.json()}
        assert fields["username"] == "sess-5-a1b2"
        assert fields["password"] == "Kq8wZ3xLm9"
        config = await ari.get("/asterisk/config/dynamic/res_pjsip/endpoint/agent-5")
        fields = {f["attribute"]: f["value"] for f in config.json()}
        assert fields["webrtc"] == "yes"
        assert fields["auth"] == "sess-5-a1b2"

        await platform.revoke_softphone("agent-5", "sess-5-a1b2")
        assert (await ari.get("/endpoints/PJSIP/agent-5")).status_code == 404
        auth = await ari.get("/asterisk/config/dynamic/res_pjsip/auth/sess-5-a1b2")
        assert auth.status_code == 404
        await platform.revoke_softphone("agent-5", "sess-5-a1b2")  # again: nothing left, fine


@dataclass
class BridgedCall:
    ids: dict[str, Any]
    agent_id: int
    call: dict[str, Any]
    leg: str  # the volunteer's seat's channel
    caller: Sipp


async def _a_bridged_call(
    hotline: Hotline, pbx: Pbx, sipps: list[Sipp], tmp_path: Path
) -> BridgedCall:
    """A caller talking with the volunteer at desk-1, through whichever process holds ARI."""
    ids = await setup_campaign(hotline, agents=0)
    agent_id = await _volunteer_at(hotline, ids, "desk-1")
    sipps.append(start_sipp(tmp_path, "seat_answers", port=DESK_PORTS["desk-1"]))
    caller = _caller(tmp_path, pbx)
    sipps.append(caller)
    call = await _the_call(hotline, ids["campaign_id"], "connected")
    leg = await _leg_of(pbx, call["provider_call_id"])
    return BridgedCall(ids, agent_id, call, leg, caller)


async def _carried_on_by(
    new_holder: AsteriskPlatform, hotline: Hotline, pbx: Pbx, bridged: BridgedCall
) -> None:
    """The holder gone, ``new_holder`` takes ARI over; the call never noticed, and its
    caller's hang-up is heard by the new holder."""
    await wait_for(lambda: _true(new_holder.holding and new_holder.connected.is_set()), timeout=30)
    channel = bridged.call["provider_call_id"]
    # The conversation did not notice: still bridged, still connected.
    assert set(await _bridged_channels(pbx)) == {channel, bridged.leg}
    assert (await _call(hotline, bridged.call["id"]))["state"] == "connected"

    await _press_key(pbx, channel)  # the caller hangs up: the new holder hears it
    ended = await _the_call(hotline, bridged.ids["campaign_id"], "wrap_up")
    assert ended["end_reason"] == "caller_hangup"
    await _agent_state(hotline, bridged.agent_id, "wrap_up")
    assert await bridged.caller.finished() == 0, bridged.caller.output()


@pytest.mark.pg_only  # one process on SQLite: it always holds the ARI connection
async def test_another_process_takes_the_ari_connection_over_and_the_bridged_call_goes_on(
    hotline_factory: Callable[..., Awaitable[Hotline]], pbx: Pbx, sipps: list[Sipp], tmp_path: Path
) -> None:
    first = await hotline_factory(**pbx.settings())
    # The second start empties the database again: the test talks to it.
    second = await hotline_factory(**pbx.settings())
    platforms = [first.app.state.platform, second.app.state.platform]
    assert all(isinstance(p, AsteriskPlatform) for p in platforms)

    async def holder() -> AsteriskPlatform | None:
        held = [p for p in platforms if p.holding and p.connected.is_set()]
        return held[0] if len(held) == 1 else None

    holding = await wait_for(holder, timeout=30)
    standing_by = platforms[1 - platforms.index(holding)]
    assert not standing_by.holding  # exactly one holds it
    bridged = await _a_bridged_call(second, pbx, sipps, tmp_path)

    # The holder's process stops: its platform stops, its lease's session closes.
    await holding.stop()

    await _carried_on_by(standing_by, second, pbx, bridged)
    assert not holding.holding


async def _lease_sessions(database_url: str, pbx: Pbx) -> list[int]:
    """The PostgreSQL sessions (backend pids) holding the ARI lease of ``pbx``."""
    key = lock_key(pbx.ari_url, ARI_APP) & 0xFFFF_FFFF_FFFF_FFFF
    conn = await asyncpg.connect(procs.pg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = $1 AND objid = $2 AND objsubid = 1"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            key >> 32,
            key & 0xFFFF_FFFF,
        )
    finally:
        await conn.close()
    return [r["pid"] for r in rows]


async def _session_alive(database_url: str, backend_pid: int) -> bool:
    conn = await asyncpg.connect(procs.pg_dsn(database_url))
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", backend_pid
        )
    finally:
        await conn.close()
    return bool(found)


@pytest.mark.pg_only  # one process on SQLite: it always holds the ARI connection
async def test_the_process_holding_ari_killed_mid_call_the_other_takes_over_and_the_call_goes_on(
    database_url: str,
    hotline_factory: Callable[..., Awaitable[Hotline]],
    pbx: Pbx,
    sipps: list[Sipp],
    tmp_path: Path,
) -> None:
    """A real server process holds ARI and is killed (SIGKILL) while a caller and a
    volunteer talk: its PostgreSQL session ends with its socket, the lease with it,
    and the process standing by takes over; the call goes on in Asterisk."""
    settings = {**pbx.settings(), "directory_url": ""}
    server = await procs.start_server(
        database_url, settings=settings, log_dir=tmp_path / "server", log_level="info"
    )
    try:
        # The server takes the lease first (nobody else is there) and connects.
        (session,) = await wait_for(lambda: _lease_sessions(database_url, pbx), timeout=30)
        await wait_for(lambda: _true("ARI events connected" in server.log_text()), timeout=30)
        # This start empties the database again: the test talks to it.
        hotline = await hotline_factory(**settings)
        standing_by = hotline.app.state.platform
        assert isinstance(standing_by, AsteriskPlatform)
        bridged = await _a_bridged_call(hotline, pbx, sipps, tmp_path)
        assert not standing_by.holding  # the server connected the call
        assert await _lease_sessions(database_url, pbx) == [session]

        procs.kill_server(server)
        assert await asyncio.to_thread(server.proc.wait, 15) == -signal.SIGKILL

        # Its socket closed by the kernel, PostgreSQL ends its session and the lock.
        await wait_for(lambda: _false(_session_alive(database_url, session)), timeout=30)
        await _carried_on_by(standing_by, hotline, pbx, bridged)
        assert await _lease_sessions(database_url, pbx) not in ([], [session])
    finally:
        await procs.stop_server(server)


async def _false(value: Awaitable[bool]) -> bool:
    return not await value


async def test_a_blocked_number_hears_the_message_and_is_hung_up(
    hotline_factory: Callable[..., Awaitable[Hotline]], pbx: Pbx, sipps: list[Sipp], tmp_path: Path
) -> None:
    hotline, ids = await _hotline(hotline_factory, pbx)
    await _volunteer_at(hotline, ids, "desk-1")  # free, yet never rung for this caller
    r = await hotline.http.post(
        f"/campaigns/{ids['campaign_id']}/blocklist", json={"number": "0611223344"}
    )
    assert r.status_code == 201, r.text
    caller = _caller(tmp_path, pbx, number="0611223344")  # national form
    sipps.append(caller)

    rejected = await _the_call(hotline, ids["campaign_id"], "rejected")
    assert rejected["end_reason"] == "blocked"
    assert await caller.finished() == 0, caller.output()  # hung up after the message
    log = pbx.log_text()
    assert "Playing 'im-sorry.slin' (language 'fr')" in log
    assert "Called desk-1" not in log  # no seat was rung


async def test_the_demo_callers_phone_authenticates_and_reaches_the_hotline(
    hotline_factory: Callable[..., Awaitable[Hotline]], tmp_path: Path, sipps: list[Sipp]
) -> None:
    """The phone ``pledgeline demo --asterisk`` offers a person (docs/asterisk.md): its
    INVITE is challenged, answered with its credentials, and queued as a caller with
    the endpoint's caller id, whatever the From header says."""
    # Keys as SIP INFO: a key pressed on its channel is the SIPp caller's cue to hang up.
    phone = DemoCaller("demo-caller", "Zt6pQ2wLx9kM4vNb", "0612345678", dtmf_mode="info")
    async with running_pbx(tmp_path / "pbx", demo_caller=phone) as pbx:
        hotline, ids = await _hotline(hotline_factory, pbx)
        caller = start_sipp(
            tmp_path,
            "demo_caller",
            port=free_port(socket.SOCK_DGRAM),
            pbx=pbx,
            service=HOTLINE,
            caller=phone.username,
            extra=("-au", phone.username, "-ap", phone.password),
        )
        sipps.append(caller)
        call = await _the_call(hotline, ids["campaign_id"], "queued")
        assert call["caller_number"] == "+33612345678"
        await _in_log(pbx, "Started music on hold, class 'default', on channel 'PJSIP/demo-caller-")

        await _press_key(pbx, call["provider_call_id"])
        await _the_call(hotline, ids["campaign_id"], "abandoned")
        assert await caller.finished() == 0, caller.output()


async def _legs_of(hotline: Hotline, campaign_id: int, call_id: int) -> list[dict[str, Any]]:
    """The calls made from ``call_id`` (a consult leg)."""
    calls = (await hotline.http.get("/calls", params={"campaign_id": campaign_id})).json()
    return [c for c in calls if c["parent_call_id"] == call_id]


async def _call(hotline: Hotline, call_id: int) -> dict[str, Any]:
    found: dict[str, Any] = (await hotline.http.get(f"/calls/{call_id}")).json()
    return found


async def test_a_volunteer_hands_the_caller_over_to_a_specialist(
    hotline_factory: Callable[..., Awaitable[Hotline]], pbx: Pbx, sipps: list[Sipp], tmp_path: Path
) -> None:
    """The warm hand-over on Asterisk: the caller on hold while a specialist's seat
    is rung (``hold``, ``consult``), then bridged to the specialist (``bridge`` with
    ``consult``); the volunteer's leg is hung up and they wrap up."""
    hotline, ids = await _hotline(hotline_factory, pbx)
    q = await hotline.http.post(
        "/queues",
        json={
            "campaign_id": ids["campaign_id"],
            "name": "specialists",
            "required_skill": "specialist",
        },
    )
    assert q.status_code == 201, q.text
    volunteer = await _volunteer_at(hotline, ids, "desk-1")
    specialist = await _volunteer_at(hotline, ids, "desk-2", skills={"specialist": 1})
    volunteer_desk = start_sipp(tmp_path, "seat_answers", port=DESK_PORTS["desk-1"])
    specialist_desk = start_sipp(tmp_path, "seat_answers", port=DESK_PORTS["desk-2"])
    caller = _caller(tmp_path, pbx)
    sipps.extend([volunteer_desk, specialist_desk, caller])
    call = await _the_call(hotline, ids["campaign_id"], "connected")
    assert call["agent_id"] == volunteer
    channel = call["provider_call_id"]
    volunteer_leg = await _leg_of(pbx, channel)

    # Needs support: what the volunteer page's button sends (rules.flag).
    from app.rules import service as rules

    ack = await rules.flag(hotline.db, volunteer, "needs_support")
    assert ack["rules"] == ["needs-support"]

    # The specialist's desk answers: the caller is theirs, the volunteer's leg ends.
    async def handed_over() -> dict[str, Any] | None:
        legs = await _legs_of(hotline, ids["campaign_id"], call["id"])
        return legs[0] if legs and legs[0]["state"] == "connected" else None

    leg = await wait_for(handed_over, timeout=30)
    assert leg["agent_id"] == specialist
    assert (await _call(hotline, call["id"]))["state"] == "transferred"
    await _agent_state(hotline, volunteer, "wrap_up")
    await _agent_state(hotline, specialist, "on_call")
    assert await volunteer_desk.finished() == 0, volunteer_desk.output()  # Asterisk's BYE

    async def with_the_specialist() -> set[str] | None:
        bridged = set(await _bridged_channels(pbx))
        return bridged if len(bridged) == 2 and channel in bridged else None

    bridged = await wait_for(with_the_specialist, timeout=30)
    assert volunteer_leg not in bridged
    log = pbx.log_text()
    assert "Started music on hold, class 'default', on channel" in log  # held meanwhile
    assert "Called desk-2" in log

    await _press_key(pbx, channel)  # the caller hangs up on the specialist

    async def leg_over() -> bool:
        return bool((await _call(hotline, leg["id"]))["state"] == "wrap_up")

    await wait_for(leg_over, timeout=30)
    await _agent_state(hotline, specialist, "wrap_up")
    assert await caller.finished() == 0, caller.output()
    assert await specialist_desk.finished() == 0, specialist_desk.output()
    assert await _bridged_channels(pbx) == []


# The default hand-over with a fallback of one second: no specialist is ever ready.
QUICK_FALLBACK = """
version: 1
rules:
  - name: needs-support
    on: agent.flagged
    when: flag.kind == "needs_support"
    then:
      - consult: {queue: specialists, fallback: 1s}
"""


async def test_no_specialist_in_time_the_caller_is_back_with_the_volunteer(
    hotline_factory: Callable[..., Awaitable[Hotline]], pbx: Pbx, sipps: list[Sipp], tmp_path: Path
) -> None:
    """``hold`` then, the fallback passed, ``consult_cancel`` and ``unhold``: the caller
    leaves the music and is in the bridge with the volunteer's desk again."""
    hotline, ids = await _hotline(hotline_factory, pbx)
    q = await hotline.http.post(
        "/queues",
        json={"campaign_id": ids["campaign_id"], "name": "specialists", "required_skill": "x"},
    )
    assert q.status_code == 201, q.text
    r = await hotline.http.put(
        f"/campaigns/{ids['campaign_id']}/rules", json={"source": QUICK_FALLBACK}
    )
    assert r.status_code == 200, r.text
    volunteer = await _volunteer_at(hotline, ids, "desk-1")
    desk = start_sipp(tmp_path, "seat_answers", port=DESK_PORTS["desk-1"])
    caller = _caller(tmp_path, pbx)
    sipps.extend([desk, caller])
    call = await _the_call(hotline, ids["campaign_id"], "connected")
    channel = call["provider_call_id"]
    leg = await _leg_of(pbx, channel)

    from app.rules import service as rules

    assert (await rules.flag(hotline.db, volunteer, "needs_support"))["rules"] == ["needs-support"]
    await _in_log(pbx, "Started music on hold, class 'default', on channel 'PJSIP/trunk-")

    async def withdrawn() -> bool:
        calls = (
            await hotline.http.get("/calls", params={"campaign_id": ids["campaign_id"]})
        ).json()
        legs = [c for c in calls if c["parent_call_id"] == call["id"]]
        return bool(legs) and legs[0]["state"] == "withdrawn"

    await wait_for(withdrawn, timeout=30)

    async def together_again() -> bool:
        return set(await _bridged_channels(pbx)) == {channel, leg}

    await wait_for(together_again, timeout=30)
    await _in_log(pbx, "Stopped music on hold on PJSIP/trunk-")
    assert (await _call(hotline, call["id"]))["state"] == "connected"
    await _agent_state(hotline, volunteer, "on_call")

    await _press_key(pbx, channel)

    async def ended() -> bool:
        return bool((await _call(hotline, call["id"]))["state"] == "wrap_up")

    await wait_for(ended, timeout=30)
    assert await caller.finished() == 0, caller.output()
    assert await desk.finished() == 0, desk.output()


async def test_reconciliation_hangs_up_a_channel_no_live_call_owns(
    hotline_factory: Callable[..., Awaitable[Hotline]], pbx: Pbx, sipps: list[Sipp], tmp_path: Path
) -> None:
    """A caller's channel still in the application whose call is over in the database
    (it ended while no process held ARI: the event that would have hung it up was
    never heard): the next holder's reconciliation hangs it up."""
    from sqlalchemy import update

    from app.acd.models import Call

    hotline, ids = await _hotline(hotline_factory, pbx)  # nobody to answer
    caller = _caller(tmp_path, pbx)
    sipps.append(caller)
    call = await _the_call(hotline, ids["campaign_id"], "queued")
    await _in_log(pbx, "Started music on hold, class 'default'")
    first = hotline.app.state.platform
    assert isinstance(first, AsteriskPlatform)
    await first.stop()  # nobody holds ARI now

    async with hotline.db.unit_of_work() as uow:
        await uow.session.execute(
            update(Call).where(Call.id == call["id"]).values(state="abandoned")
        )
    async with pbx.ari() as ari:
        assert call["provider_call_id"] in {c["id"] for c in (await ari.get("/channels")).json()}

    async with _next_holder(hotline):
        assert await caller.finished() == 0, caller.output()  # Asterisk's BYE
        async with pbx.ari() as ari:
            assert (await ari.get("/channels")).json() == []
        assert (await _call(hotline, call["id"]))["state"] == "abandoned"


@contextlib.asynccontextmanager
async def _next_holder(hotline: Hotline) -> AsyncIterator[AsteriskPlatform]:
    """Another process's platform taking ARI over once the app's own has stopped: its
    first reconciliation done on entry, stopped on exit."""
    platform = AsteriskPlatform(hotline.settings)
    await platform.start(hotline.db)
    try:
        await wait_for(lambda: _true(platform.reconciliations == 1), timeout=30)
        yield platform
    finally:
        await platform.stop()


# --- callbacks: the platform dials the caller back ----------------------------------


class _AcceptedCallback(NamedTuple):
    hotline: Hotline
    ids: dict[str, Any]
    agent_id: int
    callback: dict[str, Any]  # the callback's call row
    desk: Sipp  # the volunteer's desk phone (answers)
    callee: Sipp  # the caller's phone, rung through the trunk


async def _callback_accepted(
    hotline_factory: Callable[..., Awaitable[Hotline]],
    pbx: Pbx,
    sipps: list[Sipp],
    tmp_path: Path,
    callee_scenario: str,
) -> _AcceptedCallback:
    """A waiting caller books a callback on the line (offered one at once: no
    volunteer yet), then the volunteer at desk-1 gets ready, is offered it and
    accepts it: the platform is sent its ``dial``. The caller's phone, rung back
    through the trunk, plays ``callee_scenario``."""
    desk = start_sipp(tmp_path, "seat_answers", port=DESK_PORTS["desk-1"])
    callee = start_sipp(tmp_path, callee_scenario, port=CALLEE_PORT)
    sipps.extend([desk, callee])
    hotline, ids = await _hotline(hotline_factory, pbx, callback_offer_seconds=0)
    caller = _caller(tmp_path, pbx, "caller_books_callback")
    sipps.append(caller)
    call = await _the_call(hotline, ids["campaign_id"], "queued")
    channel = call["provider_call_id"]

    async def offered() -> bool:
        """The offer carried out (after ``answer``: a call's commands go in order)."""
        plays = await hotline.sql(
            "select args from telephony_commands where provider_call_id = :p"
            " and command = 'play' and delivery = 'delivered'",
            p=channel,
        )
        return any("callback_offer" in str(args) for (args,) in plays)

    await wait_for(offered, timeout=30)
    await _press_key(pbx, channel)  # the caller's cue to press 1
    assert await caller.finished() == 0, caller.output()  # the confirmation, then Asterisk's BYE
    assert (await _call(hotline, call["id"]))["state"] == "callback_requested"

    agent_id = await _volunteer_at(hotline, ids, "desk-1")
    callback = await _the_call(hotline, ids["campaign_id"], "offered")
    assert callback["kind"] == "callback" and callback["agent_id"] == agent_id
    assert callback["caller_number"] == "+33612345678"
    r = await hotline.http.post(f"/agents/{agent_id}/answer")
    assert r.status_code == 200, r.text
    return _AcceptedCallback(hotline, ids, agent_id, callback, desk, callee)


async def _unanswered(hotline: Hotline, callback_id: int) -> dict[str, Any]:
    """What ``callback.unanswered`` said of the callback's one unanswered attempt."""
    (row,) = await hotline.sql(
        "select data from events where type = 'callback.unanswered' and call_id = :c",
        c=callback_id,
    )
    data: dict[str, Any] = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    return data


async def test_a_callback_rings_the_volunteer_then_the_caller_and_connects_them(
    hotline_factory: Callable[..., Awaitable[Hotline]], pbx: Pbx, sipps: list[Sipp], tmp_path: Path
) -> None:
    # The volunteer accepts: their desk rings and answers, then the caller's number
    # is dialled through the trunk and answers: dial.answered, both in one bridge.
    hotline, ids, agent_id, callback, desk, callee = await _callback_accepted(
        hotline_factory, pbx, sipps, tmp_path, "seat_answers"
    )
    connected = await _the_call(hotline, ids["campaign_id"], "connected")
    assert connected["id"] == callback["id"] and connected["agent_id"] == agent_id
    channel = callback["provider_call_id"]  # callback-<n>: the caller's channel
    leg = await _leg_of(pbx, channel)
    assert leg == f"pl-dial-{callback['id']}-1"
    await _agent_state(hotline, agent_id, "on_call")
    log = pbx.log_text()
    assert log.index("Called desk-1") < log.index("Called +33612345678@trunk")  # seat first

    # The dial delivered again (twice): nobody is rung again.
    platform = hotline.app.state.platform
    assert isinstance(platform, AsteriskPlatform)
    async with hotline.db.read() as session:
        stmt = select(Command).where(Command.provider_call_id == channel)
        (dial,) = [as_message(c) for c in (await session.execute(stmt)).scalars()]
    assert dial["command"] == "dial" and dial["args"]["callback_id"] == callback["id"]
    await platform.send(dial)
    await platform.send(dial)
    assert set(await _channels(pbx)) == {channel, leg}

    # Another process takes ARI over: its reconciliation keeps the callback's
    # channels (a call like the others now), and it hears the caller hang up.
    await platform.stop()
    async with _next_holder(hotline):
        assert set(await _bridged_channels(pbx)) == {channel, leg}
        assert (await _call(hotline, callback["id"]))["state"] == "connected"

        await _press_key(pbx, channel)  # the caller hangs up
        ended = await _the_call(hotline, ids["campaign_id"], "wrap_up")
        assert ended["id"] == callback["id"] and ended["end_reason"] == "caller_hangup"
        await _agent_state(hotline, agent_id, "wrap_up")
        assert await callee.finished() == 0, callee.output()
        assert await desk.finished() == 0, desk.output()  # its BYE came from Asterisk
        assert await _bridged_channels(pbx) == []


async def test_a_callback_to_a_busy_line_is_unanswered_and_the_volunteer_free_again(
    hotline_factory: Callable[..., Awaitable[Hotline]], pbx: Pbx, sipps: list[Sipp], tmp_path: Path
) -> None:
    accepted = await _callback_accepted(hotline_factory, pbx, sipps, tmp_path, "callee_busy")
    hotline, callback = accepted.hotline, accepted.callback
    waiting = await _the_call(hotline, accepted.ids["campaign_id"], "retry_wait")
    assert waiting["id"] == callback["id"] and waiting["dial_attempts"] == 1
    unanswered = await _unanswered(hotline, callback["id"])
    assert unanswered["reason"] == "busy" and unanswered["next"] == "retry"
    await _agent_state(hotline, accepted.agent_id, "available")  # nothing to wrap up
    assert await accepted.callee.finished() == 0, accepted.callee.output()
    assert await accepted.desk.finished() == 0, accepted.desk.output()  # Asterisk hung it up
    assert await _channels(pbx) == []


async def test_a_callback_being_dialled_goes_on_with_the_next_holder_of_ari(
    hotline_factory: Callable[..., Awaitable[Hotline]], pbx: Pbx, sipps: list[Sipp], tmp_path: Path
) -> None:
    """The holder stops while the volunteer's desk is up and the caller's phone rings:
    the next holder adopts both (hangs up neither), and hears the volunteer's line
    end first: dial.unanswered (seat_hangup), the caller's ring cancelled."""
    hotline, ids, agent_id, callback, desk, callee = await _callback_accepted(
        hotline_factory, pbx, sipps, tmp_path, "seat_no_answer"
    )
    channel, leg = callback["provider_call_id"], f"pl-dial-{callback['id']}-1"

    async def ringing() -> bool:
        states = {c["id"]: c["state"] for c in await _channel_list(pbx)}
        return states.get(leg) == "Up" and states.get(channel) == "Ringing"

    await wait_for(ringing, timeout=30)
    await hotline.app.state.platform.stop()

    async with _next_holder(hotline):
        assert set(await _channels(pbx)) == {channel, leg}  # neither hung up
        assert (await _call(hotline, callback["id"]))["state"] == "dialing"

        # The volunteer's line ends before the caller answers. (Not by a key to the
        # desk: it would wait behind the ringing tone played on that channel.)
        async with pbx.ari() as ari:
            assert (await ari.delete(f"/channels/{leg}")).status_code == 204
        waiting = await _the_call(hotline, ids["campaign_id"], "retry_wait")
        assert waiting["id"] == callback["id"]
        assert (await _unanswered(hotline, callback["id"]))["reason"] == "seat_hangup"
        await _agent_state(hotline, agent_id, "available")
        assert await callee.finished() == 0, callee.output()  # its ring was cancelled
        assert await desk.finished() == 0, desk.output()
        assert await _channels(pbx) == []
