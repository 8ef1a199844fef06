"""The roster (app/roster): sites, volunteers one by one, imports, PIN sheets, on both
databases, through the real app; the command line as a real process."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from app.auth.service import Role
from tests.conftest import Hotline, wait_for
from tests.procs import run_cli
from tests.users import user_with_token

CARD = "4111 1111 1111 1111"  # a test Visa number: passes the Luhn check


async def _campaign(hotline: Hotline) -> int:
    r = await hotline.http.post(
        "/campaigns", json={"name": "Roster telethon", "dialled_numbers": ["+33800000001"]}
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _site(hotline: Hotline, campaign_id: int, name: str, **extra: Any) -> int:
    r = await hotline.http.post(
        "/sites",
        json={"campaign_id": campaign_id, "name": name, "organisation": f"{name} Org", **extra},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _counts(hotline: Hotline) -> tuple[int, int]:
    agents = await hotline.sql("SELECT COUNT(*) FROM agents")
    users = await hotline.sql("SELECT COUNT(*) FROM users WHERE role = 'agent'")
    return int(agents[0][0]), int(users[0][0])


async def _import(hotline: Hotline, campaign_id: int, data: bytes) -> Any:
    return await hotline.http.post(f"/roster/import?campaign_id={campaign_id}", content=data)


GOOD_CSV = (
    "name,email,phone,site,employer,languages,skills,trained,notes\n"
    "Zoé Le Gall,zoe@example.org,06 12 34 56 78,Caen,Acme,fr en,pledges:1,yes,\n"
    "Marc Petit,,+33 6 98 76 54 32,Paris,,fr,pledges,no,prefers evenings\n"
)


async def _two_sites(hotline: Hotline) -> tuple[int, int, int]:
    cid = await _campaign(hotline)
    return cid, await _site(hotline, cid, "Caen"), await _site(hotline, cid, "Paris")


# --- sites -------------------------------------------------------------------------------


async def test_sites_are_created_listed_changed_and_checked(hotline: Hotline) -> None:
    cid = await _campaign(hotline)
    sid = await _site(hotline, cid, "Caen", seats=350, timezone="Europe/Paris")
    again = await hotline.http.post(
        "/sites", json={"campaign_id": cid, "name": "Caen", "organisation": "X"}
    )
    assert again.status_code == 409
    assert again.json()["field"] == "name"
    bad_zone = await hotline.http.post(
        "/sites", json={"campaign_id": cid, "name": "Mars", "organisation": "X", "timezone": "Mars"}
    )
    assert bad_zone.status_code == 422
    assert bad_zone.json()["field"] == "timezone"
    card = await hotline.http.post(
        "/sites", json={"campaign_id": cid, "name": "Lyon", "organisation": CARD}
    )
    assert card.status_code == 422
    changed = await hotline.http.patch(f"/sites/{sid}", json={"seats": 15})
    assert changed.status_code == 200
    listed = await hotline.http.get(f"/sites?campaign_id={cid}")
    assert [(s["name"], s["seats"]) for s in listed.json()] == [("Caen", 15)]


async def test_agents_take_a_site_of_their_campaign_and_a_real_phone(hotline: Hotline) -> None:
    cid, caen, _ = await _two_sites(hotline)
    other = await hotline.http.post(
        "/campaigns", json={"name": "Other", "dialled_numbers": ["+33800000009"]}
    )
    foreign_site = await _site(hotline, other.json()["id"], "Lille")
    body = {"campaign_id": cid, "login": "z", "display_name": "Z", "phone": "0612345678"}
    foreign = await hotline.http.post("/agents", json={**body, "site_id": foreign_site})
    assert foreign.status_code == 422
    assert foreign.json()["field"] == "site_id"
    bad = await hotline.http.post("/agents", json={**body, "phone": "12"})
    assert bad.status_code == 422
    assert (bad.json()["code"], bad.json()["field"]) == ("bad_phone", "phone")
    assert await _counts(hotline) == (0, 0)
    ok = await hotline.http.post(
        "/agents", json={**body, "site_id": caen, "employer": "Acme", "trained": True}
    )
    assert ok.status_code == 201, ok.text
    agent = ok.json()
    assert (agent["phone"], agent["site_id"], agent["trained"]) == ("+33612345678", caen, True)


# --- one by one ------------------------------------------------------------------------------


async def test_a_volunteer_registered_alone_gets_a_login_and_a_pin_once(hotline: Hotline) -> None:
    cid, caen, _ = await _two_sites(hotline)
    r = await hotline.http.post(
        "/roster/volunteers",
        json={
            "campaign_id": cid,
            "display_name": "Zoé Le Gall",
            "site_id": caen,
            "email": "zoe@example.org",
            "employer": "Acme",
        },
    )
    assert r.status_code == 201, r.text
    login = r.json()["login"]
    assert login["username"] == "zoe.le.gall"
    assert login["pin"].isdigit() and len(login["pin"]) == hotline.settings.pin_min_digits
    stored = await hotline.sql("SELECT secret_hash FROM users WHERE username = 'zoe.le.gall'")
    assert login["pin"] not in stored[0][0]
    # The PIN logs the volunteer in, on their campaign.
    logged = await hotline.http.post(
        "/auth/login",
        json={
            "username": "zoe.le.gall",
            "secret": login["pin"],
            "campaign_id": cid,
            "mode": "bearer",
        },
    )
    assert logged.status_code == 200, logged.text
    assert logged.json()["agent_id"] == r.json()["agent"]["id"]
    # The same name again gets a login of its own.
    twin = await hotline.http.post(
        "/roster/volunteers", json={"campaign_id": cid, "display_name": "Zoé Le Gall"}
    )
    assert twin.json()["login"]["username"] == "zoe.le.gall.2"
    bad = await hotline.http.post(
        "/roster/volunteers",
        json={"campaign_id": cid, "display_name": "X", "notes": f"card {CARD}"},
    )
    assert bad.status_code == 422
    same_mail = await hotline.http.post(
        "/roster/volunteers",
        json={"campaign_id": cid, "display_name": "Other", "email": "ZOE@example.org"},
    )
    assert same_mail.status_code == 409
    assert (same_mail.json()["code"], same_mail.json()["field"]) == ("duplicate", "email")
    assert await _counts(hotline) == (2, 2)


# --- imports ---------------------------------------------------------------------------------


async def test_a_good_csv_imports_everyone_with_their_pins(hotline: Hotline) -> None:
    cid, caen, paris = await _two_sites(hotline)
    r = await _import(hotline, cid, GOOD_CSV.encode())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["imported"] == 2
    by_name = {x["display_name"]: x for x in body["logins"]}
    assert by_name["Zoé Le Gall"]["site_id"] == caen
    assert by_name["Marc Petit"]["site_id"] == paris
    rows = await hotline.sql(
        "SELECT display_name, phone, employer, trained, languages, notes FROM agents ORDER BY id"
    )
    assert [(n, p, e, bool(t)) for n, p, e, t, _, _ in rows] == [
        ("Zoé Le Gall", "+33612345678", "Acme", True),
        ("Marc Petit", "+33698765432", None, False),
    ]
    assert rows[1][5] == "prefers evenings"
    skills = await hotline.sql("SELECT skill, level FROM agent_skills ORDER BY agent_id")
    assert [tuple(s) for s in skills] == [("pledges", 1), ("pledges", 1)]
    events = await hotline.sql("SELECT COUNT(*) FROM events WHERE type = 'roster.imported'")
    assert events[0][0] == 1


@pytest.mark.parametrize(
    ("encoding", "separator", "bom"),
    [
        ("utf-8", ",", False),
        ("utf-8", ";", True),
        ("cp1252", ";", False),
        ("utf-8", "\t", False),
    ],
)
async def test_encodings_and_separators(
    hotline: Hotline, encoding: str, separator: str, bom: bool
) -> None:
    cid, _, _ = await _two_sites(hotline)
    text = f"Nom{separator}Téléphone{separator}Site{separator}Formé\r\n"
    text += f"Hélène Dupré{separator}0612345678{separator}caen{separator}oui\r\n"
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding)
    r = await _import(hotline, cid, data)
    assert r.status_code == 200, r.text
    names = await hotline.sql("SELECT display_name, phone, trained FROM agents")
    assert [(n, p, bool(t)) for n, p, t in names] == [("Hélène Dupré", "+33612345678", True)]


async def test_a_file_with_bad_rows_imports_nothing_and_says_every_row(hotline: Hotline) -> None:
    cid, _, _ = await _two_sites(hotline)
    await hotline.http.post(
        "/roster/volunteers",
        json={"campaign_id": cid, "display_name": "Already", "email": "taken@example.org"},
    )
    before = await _counts(hotline)
    text = (
        "name,email,phone,site,notes\n"
        "Good One,good@example.org,0612345678,Caen,\n"  # line 2: fine
        ",nobody@example.org,,,\n"  # 3: missing name
        "Bad Phone,,12,,\n"  # 4
        "Bad Mail,not-an-address,,,\n"  # 5
        "Far Away,,,Marseille,\n"  # 6: unknown site
        "Same Mail,GOOD@example.org,,,\n"  # 7: duplicate of line 2
        "Taken,taken@example.org,,,\n"  # 8: already registered
        f"Card Note,,,,{CARD}\n"  # 9
        "Same Phone,,+33612345678,,\n"  # 10: duplicate of line 2
    )
    r = await _import(hotline, cid, text.encode())
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "roster_refused"
    assert body["field"] == "file"
    got = [(row["line"], row["field"], row["code"]) for row in body["rows"]]
    assert got == [
        (3, "name", "missing_name"),
        (4, "phone", "bad_phone"),
        (5, "email", "bad_email"),
        (6, "site", "unknown_site"),
        (7, "email", "duplicate"),
        (8, "email", "duplicate"),
        (9, "notes", "card_number"),
        (10, "phone", "duplicate"),
    ]
    assert "ligne 2" in body["rows"][4]["message"]
    assert "4111" not in r.text
    assert await _counts(hotline) == before


async def test_refused_rows_are_told_in_the_request_language(hotline: Hotline) -> None:
    """Each row's reason, as the refusal's message: French first (the campaign's
    language), English for a caller who asks for it; codes and lines the same."""
    cid, _, _ = await _two_sites(hotline)
    data = b"name,site\n,Caen\nLuna,Lune\n"
    french = await _import(hotline, cid, data)
    english = await hotline.http.post(
        f"/roster/import?campaign_id={cid}", content=data, headers={"Accept-Language": "en"}
    )
    assert french.status_code == english.status_code == 422
    assert french.json()["message"] == "rien n'a été importé : 2 ligne(s) refusée(s)"
    assert english.json()["message"] == "nothing imported: 2 refused row(s)"
    assert [row["message"] for row in french.json()["rows"]] == [
        "le nom manque",
        "aucun site nommé « Lune »",
    ]
    assert [row["message"] for row in english.json()["rows"]] == [
        "the name is missing",
        "no site named 'Lune'",
    ]
    shape = [{k: v for k, v in row.items() if k != "message"} for row in french.json()["rows"]]
    assert shape == [
        {k: v for k, v in row.items() if k != "message"} for row in english.json()["rows"]
    ]
    assert shape[0] == {"line": 2, "field": "name", "code": "missing_name"}
    # A file that cannot be read at all: why, in the sentence of the message.
    unreadable = b"email\nx@example.org\n"
    french = await _import(hotline, cid, unreadable)
    assert french.json()["message"] == (
        "rien n'a été importé : ligne 1 : pas de colonne « name » dans l'en-tête"
    )
    english = await hotline.http.post(
        f"/roster/import?campaign_id={cid}", content=unreadable, headers={"Accept-Language": "en"}
    )
    assert english.json()["message"] == "nothing imported: line 1: no 'name' column in the header"
    # Sign-ups to shifts: the same.
    signups = b"login,shift\nghost,1\n"
    url = f"/shifts/signups/import?campaign_id={cid}"
    french = await hotline.http.post(url, content=signups)
    english = await hotline.http.post(url, content=signups, headers={"Accept-Language": "en"})
    assert french.status_code == english.status_code == 422
    assert french.json()["rows"][0]["message"] == (
        "aucun ou aucune bénévole avec l'identifiant « ghost »"
    )
    assert english.json()["rows"][0]["message"] == "no volunteer with login 'ghost'"
    assert await _counts(hotline) == (0, 0)


@pytest.mark.parametrize(
    "data",
    [b"", b"email,phone\nx@example.org,0612345678\n", b"PK\x03\x04 not a workbook", b"name\n"],
    ids=["empty", "no-name-column", "broken-xlsx", "no-volunteer"],
)
async def test_unreadable_files_are_refused_whole(hotline: Hotline, data: bytes) -> None:
    cid, _, _ = await _two_sites(hotline)
    r = await _import(hotline, cid, data)
    assert r.status_code == 422
    assert r.json()["code"] == "roster_refused"
    assert await _counts(hotline) == (0, 0)


def _xlsx(rows: list[list[Any]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


async def test_an_xlsx_workbook_imports_and_a_bad_one_imports_nothing(hotline: Hotline) -> None:
    cid, caen, _ = await _two_sites(hotline)
    good = _xlsx(
        [
            ["Name", "Phone", "Site", "Skills", "Trained"],
            ["Ana Costa", 612345678, "Caen", "pledges:2 vip:1", "x"],
            [None, None, None, None, None],
            ["Bo Lind", "+46701234567", "", "", ""],
        ]
    )
    r = await _import(hotline, cid, good)
    assert r.status_code == 200, r.text
    rows = await hotline.sql("SELECT display_name, phone, site_id FROM agents ORDER BY id")
    assert [tuple(x) for x in rows] == [
        ("Ana Costa", "+33612345678", caen),
        ("Bo Lind", "+46701234567", None),
    ]
    bad = _xlsx([["Name", "Site"], ["Ok", "Caen"], ["Lost", "Nowhere"]])
    refused = await _import(hotline, cid, bad)
    assert refused.status_code == 422
    assert [(x["line"], x["code"]) for x in refused.json()["rows"]] == [(3, "unknown_site")]
    assert await _counts(hotline) == (2, 2)


# --- PIN sheets ----------------------------------------------------------------------------------


async def test_a_pin_sheet_reissues_the_sites_pins_and_is_audited(hotline: Hotline) -> None:
    cid, caen, _ = await _two_sites(hotline)
    first = (await _import(hotline, cid, GOOD_CSV.encode())).json()["logins"]
    zoe = next(x for x in first if x["display_name"] == "Zoé Le Gall")
    # A volunteer without a login (made by the plain agents API) at the same site.
    await hotline.http.post(
        "/agents",
        json={"campaign_id": cid, "login": "late", "display_name": "Late Comer", "site_id": caen},
    )
    only_missing = await hotline.http.post(f"/sites/{caen}/pin-sheet", json={})
    assert only_missing.status_code == 200
    assert only_missing.headers["cache-control"] == "no-store"
    assert "Late Comer" in only_missing.text and "Zoé" not in only_missing.text
    sheet = await hotline.http.post(f"/sites/{caen}/pin-sheet", json={"volunteers": "all"})
    assert "Zoé Le Gall" in sheet.text and "Marc Petit" not in sheet.text  # Paris
    # The old PIN is gone; the new one (on the sheet) works.
    old = await hotline.http.post(
        "/auth/login",
        json={"username": zoe["username"], "secret": zoe["pin"], "campaign_id": cid},
    )
    assert old.status_code == 401
    events = await hotline.sql(
        "SELECT COUNT(*) FROM events WHERE type = 'roster.pins_issued' AND campaign_id = :c",
        c=cid,
    )
    assert events[0][0] == 2
    _, token = await user_with_token(
        hotline.db, username="sup", role=Role.SUPERVISOR, secret="supervisor-x", campaign_id=cid
    )
    refused = await hotline.http.post(
        f"/sites/{caen}/pin-sheet", json={}, headers={"Authorization": f"Bearer {token}"}
    )
    assert refused.status_code == 403


# --- the command line ----------------------------------------------------------------------------


async def test_cli_imports_a_file_and_reports_refused_rows(
    hotline: Hotline, database_url: str, tmp_path: Path
) -> None:
    cid, _, _ = await _two_sites(hotline)
    bad = tmp_path / "bad.csv"
    bad.write_text("name;phone;site\nA;12;Caen\n;0612345678;\nC;0698765432;Mars\n", "utf-8")
    code, out, err = await run_cli(
        database_url, "roster", "import", str(bad), "--campaign", str(cid)
    )
    assert code == 2
    assert "line 2, phone: not a phone number" in err
    assert "line 3, name: the name is missing" in err
    assert "line 4, site: no site named 'Mars'" in err
    assert await _counts(hotline) == (0, 0)

    good = tmp_path / "good.csv"
    good.write_bytes(GOOD_CSV.encode("utf-8"))
    pins = tmp_path / "pins.csv"
    code, out, err = await run_cli(
        database_url, "roster", "import", str(good), "--campaign", str(cid), "--pins-csv", str(pins)
    )
    assert code == 0, err
    assert out == ""  # the PINs went to the file only
    assert "100%  2/2 volunteers" in err  # not a terminal: plain progress lines
    assert "2 volunteers imported" in err
    lines = pins.read_text("utf-8").splitlines()
    assert lines[0] == "site,volunteer,login,pin"
    assert sorted(x.split(",")[2] for x in lines[1:]) == ["marc.petit", "zoe.le.gall"]
    assert pins.stat().st_mode & 0o777 == 0o600
    assert await _counts(hotline) == (2, 2)


# --- site-scoped supervisors -------------------------------------------------------------------


async def test_a_site_scoped_supervisor_sees_and_steers_its_sites_volunteers_only(
    hotline: Hotline,
) -> None:
    cid, caen, paris = await _two_sites(hotline)
    ids = {}
    for login, site in (("c1", caen), ("p1", paris), ("none", None)):
        r = await hotline.http.post(
            "/agents",
            json={"campaign_id": cid, "login": login, "display_name": login, "site_id": site},
        )
        ids[login] = r.json()["id"]
    seats = {}
    for name, site in (("caen-1", caen), ("paris-1", paris)):
        r = await hotline.http.post(
            "/seats",
            json={"campaign_id": cid, "name": name, "address": f"sip:{name}@pbx", "site_id": site},
        )
        assert r.status_code == 201, r.text
        seats[name] = r.json()["id"]
    _, token = await user_with_token(
        hotline.db,
        username="sup-caen",
        role=Role.SUPERVISOR,
        secret="supervisor-caen",
        campaign_id=cid,
        site_id=caen,
    )
    me = {"Authorization": f"Bearer {token}"}
    assert (await hotline.http.get("/auth/me", headers=me)).json()["site_id"] == caen
    agents = await hotline.http.get("/agents", headers=me)
    assert [a["id"] for a in agents.json()] == [ids["c1"]]
    listed_seats = await hotline.http.get("/seats", headers=me)
    assert [s["id"] for s in listed_seats.json()] == [seats["caen-1"]]
    assert (await hotline.http.get(f"/agents/{ids['p1']}", headers=me)).status_code == 403
    # Steering: its own volunteer at its own seat; not another site's volunteer or seat.
    at_paris = await hotline.http.post(
        f"/agents/{ids['c1']}/login", json={"seat_id": seats["paris-1"]}, headers=me
    )
    assert at_paris.status_code == 403
    ok = await hotline.http.post(
        f"/agents/{ids['c1']}/login", json={"seat_id": seats["caen-1"]}, headers=me
    )
    assert ok.status_code == 200, ok.text
    for other in ("p1", "none"):
        refused = await hotline.http.post(f"/agents/{ids[other]}/login", json={}, headers=me)
        assert refused.status_code == 403
        assert refused.json()["code"] == "other_site"
    state = await hotline.sql("SELECT state FROM agents WHERE id = :a", a=ids["p1"])
    assert state[0][0] == "logged_out"
    # Only a supervisor is scoped to a site, and only to one of its campaign.
    wrong = await hotline.http.post(
        "/users",
        json={
            "username": "org-site",
            "display_name": "O",
            "role": "organiser",
            "secret": "organiser-pass",
            "site_id": caen,
        },
    )
    assert wrong.status_code == 422
    assert wrong.json()["field"] == "site_id"


# --- a queue's site preference -------------------------------------------------------------------


async def test_a_queue_prefers_its_sites_volunteers_then_widens(hotline: Hotline) -> None:
    cid, caen, paris = await _two_sites(hotline)
    queue = await hotline.http.post(
        "/queues",
        json={"campaign_id": cid, "name": "pledges", "site_id": caen, "site_widen_seconds": 3600},
    )
    assert queue.status_code == 201, queue.text
    queue_id = queue.json()["id"]
    agents = {}
    for login, site in (("paris", paris), ("caen", caen)):  # Paris idle the longest
        r = await hotline.http.post(
            "/agents",
            json={"campaign_id": cid, "login": login, "display_name": login, "site_id": site},
        )
        agents[login] = r.json()["id"]
        assert (await hotline.http.post(f"/agents/{agents[login]}/login", json={})).is_success
        assert (await hotline.http.post(f"/agents/{agents[login]}/ready")).is_success

    async def offered_to(provider_id: str, caller: str) -> tuple[int, str, int | None]:
        r = await hotline.incoming(provider_id, caller=caller)
        assert r.status_code == 200, r.text
        call = r.json()["call"]
        return call["id"], call["state"], call["agent_id"]

    # The Caen volunteer, though the Paris one has been free longer.
    first = await offered_to("site-1", "0611111111")
    assert first[1:] == ("offered", agents["caen"])
    # Caen busy: the next call waits for Caen rather than go to Paris...
    second_id, state, agent = await offered_to("site-2", "0622222222")
    assert (state, agent) == ("queued", None)
    # ...and the Paris volunteer, free again, is not given it either.
    await hotline.http.post(f"/agents/{agents['paris']}/pause", json={})
    ready = await hotline.http.post(f"/agents/{agents['paris']}/ready")
    assert (ready.json()["state"], ready.json()["current_call_id"]) == ("available", None)
    waiting = await hotline.http.get(f"/calls/{second_id}")
    assert (waiting.json()["state"], waiting.json()["agent_id"]) == ("queued", None)

    # Widening now (the call has waited more than 0 s): the router offers it to Paris.
    r = await hotline.http.patch(f"/queues/{queue_id}", json={"site_widen_seconds": 0})
    assert r.status_code == 200, r.text

    async def offered_to_paris() -> bool:
        call = (await hotline.http.get(f"/calls/{second_id}")).json()
        return bool(call["state"] == "offered" and call["agent_id"] == agents["paris"])

    await wait_for(offered_to_paris)
    # A site of another campaign, or none at all, is refused.
    bad = await hotline.http.patch(f"/queues/{queue_id}", json={"site_id": 999_999})
    assert (bad.status_code, bad.json()["field"]) == (422, "site_id")
