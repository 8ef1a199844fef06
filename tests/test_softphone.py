"""The browser softphone's credentials (app/softphone): per login session, for the
volunteer's own seat, never the PIN, withdrawn at logout; seen from the simulated
platform, which keeps what a PBX would let register."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from app.settings import Settings
from app.softphone.service import Softphones
from app.telephony.simulated import SimulatedPlatform
from tests.conftest import Hotline, setup_campaign

PIN = "246810"
WS_URL = "wss://pbx.example.org:8089/ws"
SOFTPHONE = {
    "simulate": True,
    "sim_rate_per_minute": 0,  # no simulated callers: only the softphone is looked at
    "softphone_ws_url": WS_URL,
    "softphone_ice_servers": "stun:stun.example.org:3478, turn:turn.example.org:3478",
}


async def _volunteer(hotline: Hotline, *, agents: int = 1) -> dict[str, Any]:
    """A campaign whose first volunteer has a login with a PIN (no seat row)."""
    setup = await setup_campaign(hotline, agents=agents)
    for n, agent_id in enumerate(setup["agent_ids"]):
        r = await hotline.http.post(
            "/users",
            json={
                "username": f"vol{n}",
                "display_name": f"Vol {n}",
                "role": "agent",
                "secret": PIN,
                "campaign_id": setup["campaign_id"],
                "agent_id": agent_id,
            },
        )
        assert r.status_code == 201, r.text
    return setup


async def _sign_in(hotline: Hotline, campaign_id: int, username: str = "vol0") -> dict[str, Any]:
    """A new login session of the volunteer (bearer): its token and end."""
    r = await hotline.http.post(
        "/auth/login",
        json={"username": username, "secret": PIN, "campaign_id": campaign_id, "mode": "bearer"},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return {"headers": {"Authorization": f"Bearer {body['token']}"}, **body}


async def _credentials(hotline: Hotline, login: dict[str, Any]) -> httpx.Response:
    return await hotline.http.post("/softphone/credentials", headers=login["headers"])


def _platform(hotline: Hotline) -> SimulatedPlatform:
    platform = hotline.app.state.platform
    assert isinstance(platform, SimulatedPlatform)
    return platform


def _accepted(hotline: Hotline, creds: dict[str, Any]) -> bool:
    return _platform(hotline).softphone_accepts(
        creds["endpoint"], creds["username"], creds["password"]
    )


async def test_credentials_are_per_session_for_the_volunteers_seat(hotline_factory: Any) -> None:
    hotline: Hotline = await hotline_factory(**SOFTPHONE)
    setup = await _volunteer(hotline)
    agent_id = setup["agent_ids"][0]
    one = await _sign_in(hotline, setup["campaign_id"])
    two = await _sign_in(hotline, setup["campaign_id"])

    r1 = await _credentials(hotline, one)
    assert r1.status_code == 200, r1.text
    assert r1.headers["cache-control"] == "no-store"
    c1 = r1.json()
    assert c1["ws_url"] == WS_URL
    assert c1["endpoint"] == f"agent-{agent_id}"
    assert c1["sip_uri"] == f"sip:agent-{agent_id}@pbx.example.org"
    assert c1["ice_servers"] == [
        {"urls": "stun:stun.example.org:3478"},
        {"urls": "turn:turn.example.org:3478"},
    ]
    # They end with the login session (1 h here is shorter than the 12 h of the setting).
    assert dt.datetime.fromisoformat(c1["expires_at"]) <= dt.datetime.fromisoformat(
        one["expires_at"]
    )
    c2 = (await _credentials(hotline, two)).json()
    assert c2["endpoint"] == c1["endpoint"]  # the same seat, another session
    assert c2["username"] != c1["username"]
    assert c2["password"] != c1["password"]
    for creds in (c1, c2):
        assert PIN not in r1.text and PIN not in str(creds)
        assert _accepted(hotline, creds)

    # Asked again in the same session: the same user name, a new password; the old one
    # no longer registers.
    again = (await _credentials(hotline, one)).json()
    assert again["username"] == c1["username"]
    assert again["password"] != c1["password"]
    assert _accepted(hotline, again)
    assert not _accepted(hotline, c1)
    # Nothing of them is kept by the app: not the password, in any table.
    for table in ("auth_sessions", "users", "events"):
        rows = await hotline.sql(f"select * from {table}")
        assert again["password"] not in str(rows)


async def test_logout_withdraws_the_sessions_softphone_only(hotline_factory: Any) -> None:
    hotline: Hotline = await hotline_factory(**SOFTPHONE)
    setup = await _volunteer(hotline)
    one = await _sign_in(hotline, setup["campaign_id"])
    two = await _sign_in(hotline, setup["campaign_id"])
    c1 = (await _credentials(hotline, one)).json()
    c2 = (await _credentials(hotline, two)).json()

    r = await hotline.http.post("/auth/logout", headers=one["headers"])
    assert r.status_code == 204, r.text
    assert not _accepted(hotline, c1)
    assert _accepted(hotline, c2)
    # The ended session gets no new ones.
    refused = await _credentials(hotline, one)
    assert refused.status_code == 401
    assert refused.json()["code"] == "session_invalid"

    # A supervisor's "log out everywhere" withdraws the others.
    user_id = (await hotline.http.get("/auth/me", headers=two["headers"])).json()["user_id"]
    r = await hotline.http.post(f"/users/{user_id}/revoke")
    assert r.status_code == 200, r.text
    assert not _accepted(hotline, c2)
    assert _platform(hotline).softphones == {}


async def test_credentials_run_out(hotline_factory: Any) -> None:
    hotline: Hotline = await hotline_factory(**SOFTPHONE, softphone_hours=0.5)
    setup = await _volunteer(hotline)
    login = await _sign_in(hotline, setup["campaign_id"])
    creds = (await _credentials(hotline, login)).json()
    end = dt.datetime.fromisoformat(creds["expires_at"])
    # The setting's half hour comes before the session's hour.
    assert end < dt.datetime.fromisoformat(login["expires_at"])
    softphones = hotline.app.state.softphones
    assert await softphones.revoke_expired(end - dt.timedelta(seconds=1)) == 0
    assert _accepted(hotline, creds)
    assert await softphones.revoke_expired(end) == 1
    assert not _accepted(hotline, creds)


def _refusal(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "message", "field"}
    assert body["code"] == code
    assert body["message"]


async def test_refusals(hotline_factory: Any) -> None:
    hotline: Hotline = await hotline_factory(**SOFTPHONE)
    setup = await _volunteer(hotline, agents=2)
    # Staff have no softphone (the admin of the test client included).
    _refusal(await hotline.http.post("/softphone/credentials"), 403, "forbidden")
    r = await hotline.http.post(
        "/users",
        json={
            "username": "sup",
            "display_name": "Sup",
            "role": "supervisor",
            "secret": "supervisor-secret",
            "campaign_id": setup["campaign_id"],
        },
    )
    assert r.status_code == 201, r.text
    sup = await hotline.http.post(
        "/auth/login", json={"username": "sup", "secret": "supervisor-secret", "mode": "bearer"}
    )
    sup_headers = {"Authorization": f"Bearer {sup.json()['token']}"}
    _refusal(
        await hotline.http.post("/softphone/credentials", headers=sup_headers), 403, "forbidden"
    )
    anonymous = httpx.AsyncClient(transport=hotline.http._transport, base_url="http://testserver")
    async with anonymous:
        _refusal(await anonymous.post("/softphone/credentials"), 401, "not_authenticated")
    # A volunteer signed in at a seat row answers on its desk phone.
    seat = await hotline.http.post(
        "/seats",
        json={"campaign_id": setup["campaign_id"], "name": "desk 1", "address": "sip:d1@pbx"},
    )
    assert seat.status_code == 201, seat.text
    at_desk = setup["agent_ids"][1]
    assert (await hotline.http.post(f"/agents/{at_desk}/logout")).status_code == 200
    r = await hotline.http.post(f"/agents/{at_desk}/login", json={"seat_id": seat.json()["id"]})
    assert r.status_code == 200, r.text
    login = await _sign_in(hotline, setup["campaign_id"], "vol1")
    _refusal(await _credentials(hotline, login), 409, "at_desk_phone")
    # None of these gave anything to the platform.
    assert _platform(hotline).softphones == {}


async def test_no_softphone_without_its_websocket(hotline_factory: Any) -> None:
    hotline: Hotline = await hotline_factory(simulate=True, sim_rate_per_minute=0)
    setup = await _volunteer(hotline)
    login = await _sign_in(hotline, setup["campaign_id"])
    r = await _credentials(hotline, login)
    _refusal(r, 404, "softphone_off")
    assert _platform(hotline).softphones == {}
    page = await hotline.http.get("/agent")
    assert "pbx" not in page.headers["content-security-policy"]


async def test_the_volunteer_page_may_reach_the_pbx_websocket(hotline_factory: Any) -> None:
    hotline: Hotline = await hotline_factory(**SOFTPHONE)
    page = await hotline.http.get("/agent", headers={"Host": "hotline.example.org"})
    policy = page.headers["content-security-policy"]
    assert "connect-src 'self' ws://hotline.example.org wss://hotline.example.org" in policy
    assert "wss://pbx.example.org:8089" in policy
    # Only the volunteer page talks to the PBX.
    other = await hotline.http.get("/supervisor", headers={"Host": "hotline.example.org"})
    assert "pbx.example.org" not in other.headers["content-security-policy"]


def test_the_websocket_setting_is_a_websocket_url() -> None:
    with pytest.raises(ValueError, match="PLEDGELINE_SOFTPHONE_WS_URL"):
        Settings(softphone_ws_url="https://pbx.example.org/ws")
    assert Settings(softphone_ws_url=" wss://pbx.example.org/ws ").softphone_ws_url == (
        "wss://pbx.example.org/ws"
    )


async def test_ended_sessions_are_withdrawn_by_any_process(hotline_factory: Any) -> None:
    """A session that runs out (no logout) withdraws its softphone, found in the sessions
    table: a process that did not issue it (or restarted since) withdraws it too."""
    hotline: Hotline = await hotline_factory(**SOFTPHONE)
    setup = await _volunteer(hotline)
    login = await _sign_in(hotline, setup["campaign_id"])
    other = await _sign_in(hotline, setup["campaign_id"])
    creds = (await _credentials(hotline, login)).json()
    kept = (await _credentials(hotline, other)).json()
    (ends,) = await hotline.sql(
        "select expires_at from auth_sessions where id = (select min(auth_sessions.id)"
        " from auth_sessions join users on users.id = auth_sessions.user_id"
        " where users.username = 'vol0')"
    )
    end = ends[0] if isinstance(ends[0], dt.datetime) else dt.datetime.fromisoformat(ends[0])
    end = end.replace(tzinfo=dt.UTC) if end.tzinfo is None else end
    # Another process's service: it issued nothing, it reads the sessions table.
    elsewhere = Softphones(hotline.settings, _platform(hotline))
    before = end - dt.timedelta(seconds=1)
    assert (
        await elsewhere.revoke_ended_sessions(hotline.db, end - dt.timedelta(hours=1), before) == 0
    )
    assert _accepted(hotline, creds)
    assert await elsewhere.revoke_ended_sessions(hotline.db, before, end) == 1
    assert not _accepted(hotline, creds)
    assert _accepted(hotline, kept)  # the other session's has not ended
