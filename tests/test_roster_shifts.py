"""Shifts (app/roster/shifts.py, docs/roster.md#shifts): shifts per site, sign-ups and
attendance, on both databases, through the real app. Attendance is read from real
logins and logouts (``POST /agents/{id}/login|logout``); those happen at the real
time, so the shifts are placed around it (a shift that started an hour ago, one
that starts in an hour) and nothing depends on how long a step takes."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from app.auth.service import Role
from tests.conftest import Hotline
from tests.users import user_with_token

CARD = "4111 1111 1111 1111"
DASH = "\u2013"  # an en dash, between a shift's hours


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


async def _campaign(hotline: Hotline, name: str = "Shifts telethon") -> int:
    r = await hotline.http.post(
        "/campaigns", json={"name": name, "dialled_numbers": [f"+338000000{len(name):02d}"]}
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _site(hotline: Hotline, campaign_id: int, name: str, zone: str = "Europe/Paris") -> int:
    r = await hotline.http.post(
        "/sites",
        json={"campaign_id": campaign_id, "name": name, "organisation": "Org", "timezone": zone},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _agent(hotline: Hotline, campaign_id: int, login: str, site_id: int | None) -> int:
    r = await hotline.http.post(
        "/agents",
        json={
            "campaign_id": campaign_id,
            "login": login,
            "display_name": login.capitalize(),
            "site_id": site_id,
            "email": f"{login}@example.org",
        },
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _shift(
    hotline: Hotline,
    campaign_id: int,
    site_id: int,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    seats: int = 5,
    **extra: Any,
) -> dict[str, Any]:
    r = await hotline.http.post(
        "/shifts",
        json={
            "campaign_id": campaign_id,
            "site_id": site_id,
            "starts_at": iso(starts_at),
            "ends_at": iso(ends_at),
            "seats": seats,
            **extra,
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _events(hotline: Hotline, type: str) -> int:
    rows = await hotline.sql("SELECT COUNT(*) FROM events WHERE type = :t", t=type)
    return int(rows[0][0])


PARIS = ZoneInfo("Europe/Paris")
EVENING = dt.datetime(2026, 12, 5, 20, 0, tzinfo=PARIS)


# --- shifts ------------------------------------------------------------------------------


async def test_shifts_are_made_in_utc_read_in_the_sites_time_and_checked(hotline: Hotline) -> None:
    cid = await _campaign(hotline)
    caen = await _site(hotline, cid, "Caen")
    other = await _site(hotline, await _campaign(hotline, "Another telethon"), "Lille")
    shift = await _shift(
        hotline, cid, caen, EVENING, EVENING + dt.timedelta(hours=4), seats=12, label="Evening"
    )
    assert shift["starts_at"] == "2026-12-05T19:00:00Z"
    assert shift["ends_at"] == "2026-12-05T23:00:00Z"
    assert shift["starts_local"] == "2026-12-05T20:00:00+01:00"
    assert shift["ends_local"] == "2026-12-06T00:00:00+01:00"
    assert (shift["local_range"], shift["crosses_midnight"]) == (f"20:00{DASH}00:00", True)
    assert (shift["site_name"], shift["seats"], shift["signed_up"]) == ("Caen", 12, 0)
    # A UTC time is read in the site's time as well.
    night = await _shift(
        hotline,
        cid,
        caen,
        dt.datetime(2026, 12, 5, 21, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 6, 1, 0, tzinfo=dt.UTC),
    )
    assert night["local_range"] == f"22:00{DASH}02:00"

    body = {
        "campaign_id": cid,
        "site_id": caen,
        "starts_at": iso(EVENING),
        "ends_at": iso(EVENING + dt.timedelta(hours=2)),
    }
    refusals = [
        ({"ends_at": iso(EVENING)}, 422, "shift_ends_first", "ends_at"),
        ({"ends_at": iso(EVENING + dt.timedelta(hours=30))}, 422, "shift_too_long", "ends_at"),
        ({"seats": 0}, 422, "invalid", "seats"),
        ({"starts_at": "2026-12-05T20:00:00"}, 422, "invalid", "starts_at"),
        ({"site_id": other}, 422, "unknown_site", "site_id"),
        ({"site_id": 999_999}, 422, "unknown_site", "site_id"),
        ({"label": CARD}, 422, "card_number", "label"),
    ]
    for change, status, code, field in refusals:
        r = await hotline.http.post("/shifts", json={**body, **change})
        assert r.status_code == status, (change, r.text)
        assert (r.json()["code"], r.json()["field"]) == (code, field), change
    french = await hotline.http.post(
        "/shifts", json={**body, "ends_at": iso(EVENING)}, headers={"Accept-Language": "fr"}
    )
    assert french.json()["message"] != "a shift ends after it starts"

    sid = shift["id"]
    changed = await hotline.http.patch(f"/shifts/{sid}", json={"seats": 15, "label": "Soirée"})
    assert (changed.json()["seats"], changed.json()["label"]) == (15, "Soirée")
    backwards = await hotline.http.patch(
        f"/shifts/{sid}", json={"ends_at": iso(EVENING - dt.timedelta(hours=1))}
    )
    assert backwards.json()["code"] == "shift_ends_first"
    assert (await hotline.http.get(f"/shifts/{sid}")).json()["ends_at"] == "2026-12-05T23:00:00Z"

    listed = await hotline.http.get(f"/shifts?campaign_id={cid}")
    assert [s["id"] for s in listed.json()] == [sid, night["id"]]
    later = await hotline.http.get(
        f"/shifts?campaign_id={cid}", params={"since": "2026-12-05T23:30:00Z"}
    )
    assert [s["id"] for s in later.json()] == [night["id"]]
    naive = await hotline.http.get("/shifts", params={"since": "2026-12-05T23:30:00"})
    assert (naive.status_code, naive.json()["field"]) == (422, "since")

    assert (await hotline.http.delete(f"/shifts/{sid}")).status_code == 204
    assert (await hotline.http.get(f"/shifts/{sid}")).status_code == 404
    assert [await _events(hotline, f"shift.{t}") for t in ("created", "updated", "deleted")] == [
        2,
        1,
        1,
    ]


# --- sign-ups ----------------------------------------------------------------------------


async def test_sign_ups_refuse_a_full_shift_and_overlaps(hotline: Hotline) -> None:
    cid = await _campaign(hotline)
    caen = await _site(hotline, cid, "Caen")
    a, b, c = [await _agent(hotline, cid, name, caen) for name in ("ann", "bob", "cat")]
    first = await _shift(hotline, cid, caen, EVENING, EVENING + dt.timedelta(hours=4), seats=2)
    overlapping = await _shift(
        hotline, cid, caen, EVENING + dt.timedelta(hours=3), EVENING + dt.timedelta(hours=6)
    )
    after = await _shift(
        hotline, cid, caen, EVENING + dt.timedelta(hours=4), EVENING + dt.timedelta(hours=6)
    )

    def put(shift: dict[str, Any], agent: int) -> Any:
        return hotline.http.put(f"/shifts/{shift['id']}/signups/{agent}")

    for agent in (a, b):
        r = await put(first, agent)
        assert r.status_code == 200, r.text
        assert (r.json()["created"], r.json()["source"]) == (True, "admin")
    again = await put(first, a)
    assert (again.status_code, again.json()["created"]) == (200, False)
    full = await put(first, c)
    assert (full.status_code, full.json()["code"]) == (409, "shift_full")
    clash = await put(overlapping, a)
    assert (clash.status_code, clash.json()["code"]) == (409, "shift_overlap")
    assert (await put(after, a)).status_code == 200  # it starts as the first ends
    # Moving a shift onto another of its volunteers' shifts is refused too.
    moved = await hotline.http.patch(
        f"/shifts/{after['id']}", json={"starts_at": iso(EVENING + dt.timedelta(hours=3))}
    )
    assert (moved.status_code, moved.json()["code"]) == (409, "shift_overlap")

    assert (await hotline.http.delete(f"/shifts/{first['id']}/signups/{b}")).status_code == 204
    assert (await hotline.http.delete(f"/shifts/{first['id']}/signups/{b}")).status_code == 204
    assert (await put(first, c)).status_code == 200
    shift = (await hotline.http.get(f"/shifts/{first['id']}")).json()
    assert shift["signed_up"] == 2

    foreign_campaign = await _campaign(hotline, "Another telethon")
    stranger = await _agent(hotline, foreign_campaign, "zed", None)
    refused = await put(first, stranger)
    assert (refused.status_code, refused.json()["code"]) == (422, "other_campaign")
    assert (await put({"id": 999_999}, a)).status_code == 404
    assert await _events(hotline, "shift.signup_added") == 4
    assert await _events(hotline, "shift.signup_removed") == 1


async def test_two_sign_ups_at_once_cannot_both_take_the_last_seat(hotline: Hotline) -> None:
    cid = await _campaign(hotline)
    caen = await _site(hotline, cid, "Caen")
    agents = [await _agent(hotline, cid, f"v{n}", caen) for n in range(4)]
    for round_ in range(5):
        start = EVENING + dt.timedelta(days=round_)
        shift = await _shift(hotline, cid, caen, start, start + dt.timedelta(hours=2), seats=1)
        answers = await asyncio.gather(
            *(hotline.http.put(f"/shifts/{shift['id']}/signups/{a}") for a in agents)
        )
        assert sorted(r.status_code for r in answers) == [200, 409, 409, 409]
        assert {r.json()["code"] for r in answers if r.status_code == 409} == {"shift_full"}
    rows = await hotline.sql("SELECT shift_id, COUNT(*) FROM shift_signups GROUP BY shift_id")
    assert [n for _, n in rows] == [1] * 5


async def _token(hotline: Hotline, username: str, role: Role, **extra: Any) -> dict[str, str]:
    secret = "246810" if role == Role.AGENT else f"{username}-secret-pass"
    _, token = await user_with_token(
        hotline.db, username=username, role=role, secret=secret, **extra
    )
    return {"Authorization": f"Bearer {token}"}


async def test_site_scoped_supervisors_and_volunteers_sign_up_within_their_site(
    hotline: Hotline,
) -> None:
    cid = await _campaign(hotline)
    caen, paris = await _site(hotline, cid, "Caen"), await _site(hotline, cid, "Paris")
    c1, c2 = await _agent(hotline, cid, "c1", caen), await _agent(hotline, cid, "c2", caen)
    p1 = await _agent(hotline, cid, "p1", paris)
    roamer = await _agent(hotline, cid, "roamer", None)
    now = dt.datetime.now(dt.UTC)
    soon = now + dt.timedelta(hours=2)
    caen_shift = await _shift(hotline, cid, caen, soon, soon + dt.timedelta(hours=3))
    paris_shift = await _shift(hotline, cid, paris, soon, soon + dt.timedelta(hours=3))
    running = await _shift(
        hotline, cid, caen, now - dt.timedelta(hours=1), now + dt.timedelta(minutes=30)
    )
    past = await _shift(
        hotline, cid, caen, now - dt.timedelta(hours=5), now - dt.timedelta(hours=4)
    )

    sup = await _token(hotline, "sup-caen", Role.SUPERVISOR, campaign_id=cid, site_id=caen)
    listed = await hotline.http.get("/shifts", headers=sup)
    assert {s["site_id"] for s in listed.json()} == {caen}
    assert (await hotline.http.get(f"/shifts?site_id={paris}", headers=sup)).status_code == 403
    ok = await hotline.http.put(f"/shifts/{caen_shift['id']}/signups/{c1}", headers=sup)
    assert (ok.status_code, ok.json()["source"]) == (200, "supervisor")
    for shift, agent in ((caen_shift, p1), (paris_shift, c2), (caen_shift, roamer)):
        r = await hotline.http.put(f"/shifts/{shift['id']}/signups/{agent}", headers=sup)
        assert (r.status_code, r.json()["code"]) == (403, "other_site")
    attendance = await hotline.http.get(f"/shifts/{paris_shift['id']}/attendance", headers=sup)
    assert attendance.status_code == 403

    # A volunteer: their own site's upcoming shifts, themselves only, before the start.
    me = await _token(hotline, "c2", Role.AGENT, campaign_id=cid, agent_id=c2)
    mine = await hotline.http.get(f"/agents/{c2}/shifts", headers=me)
    assert [s["id"] for s in mine.json()] == [running["id"], caen_shift["id"]]
    assert past["id"] not in [s["id"] for s in mine.json()]
    assert (await hotline.http.get(f"/agents/{c1}/shifts", headers=me)).status_code == 403
    joined = await hotline.http.put(f"/shifts/{caen_shift['id']}/signups/{c2}", headers=me)
    assert (joined.status_code, joined.json()["source"]) == (200, "self")
    mine = await hotline.http.get(f"/agents/{c2}/shifts", headers=me)
    assert [(s["mine"], s["signed_up"]) for s in mine.json()] == [(False, 0), (True, 2)]
    for path, status, code in (
        (f"/shifts/{paris_shift['id']}/signups/{c2}", 403, "other_site"),
        (f"/shifts/{caen_shift['id']}/signups/{c1}", 403, "forbidden"),
        (f"/shifts/{running['id']}/signups/{c2}", 409, "shift_started"),
    ):
        r = await hotline.http.put(path, headers=me)
        assert (r.status_code, r.json()["code"]) == (status, code), path
    left = await hotline.http.delete(f"/shifts/{caen_shift['id']}/signups/{c2}", headers=me)
    assert left.status_code == 204
    assert (await hotline.http.get(f"/shifts/{caen_shift['id']}", headers=me)).status_code == 403
    # A volunteer with no site sees and joins any site's shifts.
    free = await _token(hotline, "roamer", Role.AGENT, campaign_id=cid, agent_id=roamer)
    theirs = await hotline.http.get(f"/agents/{roamer}/shifts", headers=free)
    assert {s["site_id"] for s in theirs.json()} == {caen, paris}
    r = await hotline.http.put(f"/shifts/{paris_shift['id']}/signups/{roamer}", headers=free)
    assert r.status_code == 200, r.text


# --- attendance --------------------------------------------------------------------------


def _zone_where_it_is_eleven_pm(now: dt.datetime) -> str:
    """A fixed-offset zone whose clock reads 23:xx at ``now`` (Etc/GMT-5 is UTC+5)."""
    offset = (23 - now.hour) % 24
    if offset > 14:
        offset -= 24
    if offset == 0:
        return "Etc/GMT"
    return f"Etc/GMT-{offset}" if offset > 0 else f"Etc/GMT+{-offset}"


async def _login(hotline: Hotline, agent: int, seat: int) -> None:
    r = await hotline.http.post(f"/agents/{agent}/login", json={"seat_id": seat})
    assert r.status_code == 200, r.text


async def _logout(hotline: Hotline, agent: int) -> None:
    r = await hotline.http.post(f"/agents/{agent}/logout")
    assert r.status_code == 200, r.text


async def _sessions(hotline: Hotline, agent: int) -> list[tuple[str, str | None]]:
    rows = await hotline.sql(
        "SELECT started_at, ended_at FROM agent_sessions WHERE agent_id = :a ORDER BY id", a=agent
    )
    return [(_utc(s), _utc(e) if e is not None else None) for s, e in rows]


def _utc(value: Any) -> str:
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return str(moment.astimezone(dt.UTC))


def _when(value: str | None) -> str | None:
    return None if value is None else str(dt.datetime.fromisoformat(value).astimezone(dt.UTC))


async def test_attendance_from_real_logins_and_logouts_across_midnight(hotline: Hotline) -> None:
    """At a site whose clock reads 23:xx, a 22:00-02:00 shift has been running for over an
    hour: whoever logs in now is late, whoever does not is a no-show; on the next
    shift, logged in ahead, one is on time and the other still expected."""
    now = dt.datetime.now(dt.UTC)
    zone = _zone_where_it_is_eleven_pm(now)
    local = now.astimezone(ZoneInfo(zone))
    cid = await _campaign(hotline)
    night = await _site(hotline, cid, "Night", zone)
    late, absent, early, expected = [
        await _agent(hotline, cid, name, night) for name in ("late", "absent", "early", "waited")
    ]
    seats = []
    for n in range(3):
        r = await hotline.http.post(
            "/seats",
            json={
                "campaign_id": cid,
                "name": f"s{n}",
                "address": f"sip:s{n}@pbx",
                "site_id": night,
            },
        )
        seats.append(r.json()["id"])
    start = dt.datetime.combine(local.date(), dt.time(22), ZoneInfo(zone))
    shift = await _shift(hotline, cid, night, start, start + dt.timedelta(hours=4))
    assert (shift["local_range"], shift["crosses_midnight"]) == (f"22:00{DASH}02:00", True)
    nxt = await _shift(
        hotline, cid, night, start + dt.timedelta(hours=4), start + dt.timedelta(hours=8)
    )
    for agent in (late, absent):
        assert (await hotline.http.put(f"/shifts/{shift['id']}/signups/{agent}")).status_code == 200
    for agent in (early, expected):
        assert (await hotline.http.put(f"/shifts/{nxt['id']}/signups/{agent}")).status_code == 200

    async def attendance(shift_id: int) -> dict[str, Any]:
        r = await hotline.http.get(f"/shifts/{shift_id}/attendance")
        assert r.status_code == 200, r.text
        return dict(r.json())

    before = await attendance(shift["id"])
    assert (before["started"], before["ended"], before["late_grace_seconds"]) == (True, False, 300)
    assert {v["login"]: v["status"] for v in before["volunteers"]} == {
        "late": "no_show",
        "absent": "no_show",
    }

    await _login(hotline, late, seats[0])
    await _logout(hotline, late)
    await _login(hotline, late, seats[0])
    await _login(hotline, early, seats[1])
    sessions = await _sessions(hotline, late)
    during = await attendance(shift["id"])
    by_login = {v["login"]: v for v in during["volunteers"]}
    came = by_login["late"]
    assert (came["status"], came["logged_in"]) == ("late", True)
    assert _when(came["checked_in_at"]) == sessions[0][0]  # the first login of the shift
    assert came["checked_out_at"] is None  # logged in again
    assert came["late_seconds"] > 3600
    assert [v["login"] for v in during["late"]] == ["late"]
    assert [v["login"] for v in during["no_show"]] == ["absent"]
    assert by_login["absent"]["checked_in_at"] is None

    await _logout(hotline, late)
    sessions = await _sessions(hotline, late)
    gone = {v["login"]: v for v in (await attendance(shift["id"]))["volunteers"]}["late"]
    assert (gone["status"], gone["logged_in"]) == ("late", False)
    assert _when(gone["checked_out_at"]) == sessions[1][1]

    ahead = await attendance(nxt["id"])
    assert (ahead["started"], ahead["late"], ahead["no_show"]) == (False, [], [])
    statuses = {v["login"]: (v["status"], v["logged_in"]) for v in ahead["volunteers"]}
    assert statuses == {"early": ("on_time", True), "waited": ("expected", False)}


async def test_the_late_grace_is_a_setting(hotline_factory: Any) -> None:
    hotline = await hotline_factory(shift_late_grace_seconds=7200)
    cid = await _campaign(hotline)
    site = await _site(hotline, cid, "Caen")
    agent, absent = await _agent(hotline, cid, "ann", site), await _agent(hotline, cid, "bob", site)
    now = dt.datetime.now(dt.UTC)
    shift = await _shift(
        hotline, cid, site, now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)
    )
    for volunteer in (agent, absent):
        await hotline.http.put(f"/shifts/{shift['id']}/signups/{volunteer}")
    r = await hotline.http.post(
        "/seats", json={"campaign_id": cid, "name": "s", "address": "sip:s@pbx"}
    )
    await _login(hotline, agent, r.json()["id"])
    out = (await hotline.http.get(f"/shifts/{shift['id']}/attendance")).json()
    assert out["late_grace_seconds"] == 7200
    # An hour in, within two hours' grace: on time, and nobody is a no-show yet.
    assert {v["login"]: v["status"] for v in out["volunteers"]} == {
        "ann": "on_time",
        "bob": "expected",
    }


# --- importing sign-ups ------------------------------------------------------------------


async def test_sign_ups_import_from_a_file_all_or_nothing(hotline: Hotline) -> None:
    cid = await _campaign(hotline)
    caen, paris = await _site(hotline, cid, "Caen"), await _site(hotline, cid, "Paris")
    ann, bob = await _agent(hotline, cid, "ann", caen), await _agent(hotline, cid, "bob", paris)
    evening = await _shift(hotline, cid, caen, EVENING, EVENING + dt.timedelta(hours=4), seats=1)
    paris_evening = await _shift(hotline, cid, paris, EVENING, EVENING + dt.timedelta(hours=4))

    async def send(text: str) -> Any:
        return await hotline.http.post(
            f"/shifts/signups/import?campaign_id={cid}", content=text.encode("cp1252")
        )

    bad = (
        "identifiant;courriel;créneau;site;début\n"
        f"ann;;{evening['id']};;\n"
        f"bob;;{evening['id']};;\n"  # the seat is ann's
        "nobody;;;Caen;2026-12-05 20:00\n"
        f";bob@example.org;;Lune;2026-12-05 20:00\n"
        f";bob@example.org;;Paris;05/12/2026 21:00\n"
        f"{CARD};;1;;\n"
    )
    refused = await send(bad)
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert (body["code"], body["field"]) == ("signups_refused", "file")
    assert [(r["line"], r["code"]) for r in body["rows"]] == [
        (3, "shift_full"),
        (4, "unknown_volunteer"),
        (5, "unknown_site"),
        (6, "unknown_shift"),
        (7, "card_number"),
    ]
    assert CARD not in refused.text
    assert (await hotline.sql("SELECT COUNT(*) FROM shift_signups"))[0][0] == 0
    assert (await send("nom\nann\n")).json()["code"] == "signups_refused"

    good = (
        "login,email,shift,site,start\n"
        f"ann,,{evening['id']},,\n"
        ",bob@example.org,,paris,2026-12-05 20:00\n"
        f"ANN,,{evening['id']},,\n"
    )
    r = await send(good)
    assert r.status_code == 200, r.text
    assert (r.json()["added"], r.json()["already"]) == (2, 1)
    rows = await hotline.sql("SELECT shift_id, agent_id, source FROM shift_signups ORDER BY id")
    assert [tuple(row) for row in rows] == [
        (evening["id"], ann, "import"),
        (paris_evening["id"], bob, "import"),
    ]
    assert await _events(hotline, "shift.signups_imported") == 1


async def test_a_withdrawal_after_the_start_is_refused(hotline: Hotline) -> None:
    cid = await _campaign(hotline)
    caen = await _site(hotline, cid, "Caen")
    ann = await _agent(hotline, cid, "ann", caen)
    now = dt.datetime.now(dt.UTC)
    shift = await _shift(
        hotline, cid, caen, now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)
    )
    assert (await hotline.http.put(f"/shifts/{shift['id']}/signups/{ann}")).status_code == 200
    me = await _token(hotline, "ann", Role.AGENT, campaign_id=cid, agent_id=ann)
    r = await hotline.http.delete(f"/shifts/{shift['id']}/signups/{ann}", headers=me)
    assert (r.status_code, r.json()["code"]) == (409, "shift_started")
    # An admin still may (a mistake to mend).
    assert (await hotline.http.delete(f"/shifts/{shift['id']}/signups/{ann}")).status_code == 204


# --- the demo ----------------------------------------------------------------------------


async def test_the_demo_seeds_shifts_at_both_sites(hotline: Hotline) -> None:
    from app.seed import seed_demo

    cid = await seed_demo(hotline.db)
    shifts = (await hotline.http.get(f"/shifts?campaign_id={cid}")).json()
    assert sorted({s["site_name"] for s in shifts}) == ["Caen", "Paris"]
    by_site: dict[str, list[tuple[str, int]]] = {}
    for s in shifts:
        by_site.setdefault(s["site_name"], []).append((s["local_range"], s["signed_up"]))
    for site in ("Caen", "Paris"):
        assert sorted(by_site[site]) == sorted(
            [(f"11:00{DASH}21:00", 4), (f"20:00{DASH}00:00", 3)] * 2
        ), site
    # Today's and tomorrow's, on the site's calendar.
    days = {dt.date.fromisoformat(s["starts_local"][:10]) for s in shifts}
    assert len(days) == 2 and max(days) - min(days) == dt.timedelta(days=1)
