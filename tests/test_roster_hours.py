"""The hours report (app/roster/hours.py, docs/roster.md#hours-report) on both
databases, through the real app: volunteers log in at seats, take calls through the
telephony webhook and pledges through ``POST /pledges``; their sessions, calls and
pledges are then moved to known moments (a session across midnight, sessions
across both daylight-saving changes), as other tests backdate rows."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pypdf
from sqlalchemy import update

from app.acd.models import AgentSession, Call
from app.db import utcnow
from app.pledges.models import Pledge
from app.roster.models import Shift, ShiftSignup
from tests.conftest import Hotline
from tests.pledge_helpers import connected_call, key, pledge_body

PARIS = ZoneInfo("Europe/Paris")
HOUR = 3600


def paris(*args: int) -> dt.datetime:
    """A Paris wall-clock time (the first of the two when ambiguous)."""
    return dt.datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


async def _post(hotline: Hotline, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await hotline.http.post(path, json=body)
    assert r.status_code in (200, 201), r.text
    data: dict[str, Any] = r.json()
    return data


async def _campaign(hotline: Hotline) -> dict[str, Any]:
    campaign = await _post(
        hotline, "/campaigns", {"name": "Téléthon 2026", "dialled_numbers": ["+33800000001"]}
    )
    cid = campaign["id"]
    await _post(hotline, "/queues", {"campaign_id": cid, "name": "pledges"})
    sites = {}
    for name in ("Caen", "Paris"):
        sites[name] = (
            await _post(
                hotline, "/sites", {"campaign_id": cid, "name": name, "organisation": f"{name} Org"}
            )
        )["id"]
    return {"campaign_id": cid, "sites": sites}


async def _volunteer(
    hotline: Hotline, setup: dict[str, Any], name: str, site: str, employer: str | None
) -> dict[str, Any]:
    cid = setup["campaign_id"]
    login = f"v-{uuid.uuid4().hex[:8]}"
    agent = await _post(
        hotline,
        "/agents",
        {
            "campaign_id": cid,
            "login": login,
            "display_name": name,
            "site_id": setup["sites"][site],
            "employer": employer,
        },
    )
    seat = await _post(
        hotline,
        "/seats",
        {
            "campaign_id": cid,
            "name": f"seat-{login}",
            "address": f"sip:{login}@pbx",
            "site_id": setup["sites"][site],
        },
    )
    return {"id": agent["id"], "seat_id": seat["id"], "name": name}


async def _shift(
    hotline: Hotline, setup: dict[str, Any], site: str, starts: dt.datetime, ends: dt.datetime
) -> int:
    """The shift API is another point's: the row is written directly."""
    async with hotline.db.unit_of_work() as uow:
        shift = Shift(
            campaign_id=setup["campaign_id"],
            site_id=setup["sites"][site],
            starts_at=starts,
            ends_at=ends,
            seats=4,
        )
        uow.session.add(shift)
        await uow.session.flush()
        return shift.id


async def _sign_up(hotline: Hotline, shift_id: int, *agent_ids: int) -> None:
    async with hotline.db.unit_of_work() as uow:
        for agent_id in agent_ids:
            uow.session.add(ShiftSignup(shift_id=shift_id, agent_id=agent_id))


async def _work(
    hotline: Hotline,
    volunteer: dict[str, Any],
    session: tuple[dt.datetime, dt.datetime | None],
    calls: list[tuple[dt.datetime, dt.datetime, list[int]]],
    cancelled: int | None = None,
) -> None:
    """The volunteer logs in at their seat, takes calls (each with pledges of these
    amounts, and one more ``cancelled`` one) and logs out; then the rows are moved to
    the given moments. A session ending None stays open (no logout)."""
    agent_id = volunteer["id"]
    r = await hotline.http.post(f"/agents/{agent_id}/login", json={"seat_id": volunteer["seat_id"]})
    assert r.status_code == 200, r.text
    for answered, ended, amounts in calls:
        call_id = await connected_call(hotline, agent_id, f"h-{uuid.uuid4().hex[:8]}")
        pledges = []
        for amount in amounts:
            r = await hotline.http.post(
                "/pledges", json=pledge_body(call_id, amount_minor=amount), headers=key()
            )
            assert r.status_code == 201, r.text
            pledges.append(r.json()["reference"])
        if cancelled is not None:
            r = await hotline.http.post(
                "/pledges", json=pledge_body(call_id, amount_minor=cancelled), headers=key()
            )
            assert r.status_code == 201, r.text
            c = await hotline.http.post(
                f"/pledges/{r.json()['reference']}/cancel", json={"reason": "duplicate"}
            )
            assert c.status_code == 200, c.text
        assert (await hotline.http.post(f"/agents/{agent_id}/hangup")).status_code == 200
        r = await hotline.http.post(f"/agents/{agent_id}/wrap-up/end", json={})
        assert r.status_code == 200, r.text
        async with hotline.db.unit_of_work() as uow:
            await uow.session.execute(
                update(Call)
                .where(Call.id == call_id)
                .values(answered_at=answered, hangup_at=ended, ended_at=ended)
            )
            await uow.session.execute(
                update(Pledge).where(Pledge.call_id == call_id).values(created_at=answered)
            )
    if session[1] is not None:
        assert (await hotline.http.post(f"/agents/{agent_id}/logout")).status_code == 200
    else:
        # Paused, still logged in: no call of the next volunteer comes to them.
        r = await hotline.http.post(f"/agents/{agent_id}/pause", json={})
        assert r.status_code == 200, r.text
    async with hotline.db.unit_of_work() as uow:
        result = await uow.session.execute(
            update(AgentSession)
            .where(AgentSession.agent_id == agent_id)
            .values(started_at=session[0], ended_at=session[1])
        )
        assert result.rowcount == 1  # type: ignore[attr-defined]


async def _scene(hotline: Hotline) -> dict[str, Any]:
    """Four volunteers of two companies (and none) at two sites."""
    setup = await _campaign(hotline)
    zoe = await _volunteer(hotline, setup, "Zoé Le Gall", "Caen", "Acme")
    marc = await _volunteer(hotline, setup, "Marc Petit", "Caen", "Acme")
    lina = await _volunteer(hotline, setup, "Lina Haddad", "Paris", "Globex")
    tom = await _volunteer(hotline, setup, "Tom Durand", "Paris", None)
    # Zoé: the night the clocks go back (25 October 2026, 03:00 CEST -> 02:00 CET).
    # 22:00 to 05:00 on the wall is 8 hours really passed (20:00Z to 04:00Z).
    await _work(
        hotline,
        zoe,
        (paris(2026, 10, 24, 22, 0), paris(2026, 10, 25, 5, 0)),
        # A call across midnight: 23:50 to 00:20, 30 minutes, two pledges and a cancelled one.
        [(paris(2026, 10, 24, 23, 50), paris(2026, 10, 25, 0, 20), [2500, 1000])],
        cancelled=5000,
    )
    # Marc: across midnight in winter, 21:00 to 01:30 (4 h 30), one call of 15 min.
    await _work(
        hotline,
        marc,
        (paris(2026, 12, 5, 21, 0), paris(2026, 12, 6, 1, 30)),
        [(paris(2026, 12, 5, 22, 0), paris(2026, 12, 5, 22, 15), [10000])],
    )
    # Lina: the night the clocks go forward (29 March 2026, 02:00 CET -> 03:00 CEST):
    # 01:00 to 04:00 on the wall is 2 hours; two calls of 10 minutes, no pledge.
    await _work(
        hotline,
        lina,
        (paris(2026, 3, 29, 1, 0), paris(2026, 3, 29, 4, 0)),
        [
            (paris(2026, 3, 29, 1, 10), paris(2026, 3, 29, 1, 20), []),
            (paris(2026, 3, 29, 3, 10), paris(2026, 3, 29, 3, 20), []),
        ],
    )
    # Tom: one hour, no call.
    await _work(hotline, tom, (paris(2026, 12, 5, 18, 0), paris(2026, 12, 5, 19, 0)), [])
    night = await _shift(
        hotline, setup, "Caen", paris(2026, 10, 24, 22, 0), paris(2026, 10, 25, 5, 0)
    )
    evening = await _shift(
        hotline, setup, "Caen", paris(2026, 12, 5, 21, 0), paris(2026, 12, 6, 1, 0)
    )
    await _sign_up(hotline, night, zoe["id"], marc["id"])
    await _sign_up(hotline, evening, marc["id"])
    return {**setup, "zoe": zoe, "marc": marc, "lina": lina, "tom": tom}


async def _report(hotline: Hotline, cid: int, query: str = "", **headers: str) -> Any:
    r = await hotline.http.get(f"/reports/hours?campaign_id={cid}{query}", headers=headers)
    assert r.status_code == 200, r.text
    return r


METRICS = (
    "shifts",
    "shift_seconds",
    "logged_in_seconds",
    "call_seconds",
    "calls",
    "pledges",
    "pledged_minor",
)


def _metrics(row: dict[str, Any]) -> tuple[int, ...]:
    return tuple(row[m] for m in METRICS)


async def test_hours_per_volunteer_employer_and_site_across_midnight_and_dst(
    hotline: Hotline,
) -> None:
    scene = await _scene(hotline)
    cid = scene["campaign_id"]
    data = (await _report(hotline, cid)).json()
    assert (data["group"], data["currency"], data["timezone"]) == (
        "volunteer",
        "EUR",
        "Europe/Paris",
    )
    rows = {row["volunteer"]: row for row in data["rows"]}
    assert list(rows) == ["Lina Haddad", "Marc Petit", "Tom Durand", "Zoé Le Gall"]
    #                         shifts  shift s   logged in   on calls  calls pledges amount
    assert _metrics(rows["Zoé Le Gall"]) == (1, 8 * HOUR, 8 * HOUR, 1800, 1, 2, 3500)
    assert _metrics(rows["Marc Petit"]) == (2, 12 * HOUR, 4 * HOUR + 1800, 900, 1, 1, 10000)
    assert _metrics(rows["Lina Haddad"]) == (0, 0, 2 * HOUR, 1200, 2, 0, 0)
    assert _metrics(rows["Tom Durand"]) == (0, 0, HOUR, 0, 0, 0, 0)
    zoe = rows["Zoé Le Gall"]
    assert (zoe["employer"], zoe["site"], zoe["agent_id"]) == ("Acme", "Caen", scene["zoe"]["id"])
    assert rows["Tom Durand"]["employer"] is None

    # Per employer and per site: the sums of their volunteers, the totals the same.
    acme, caen = ("Zoé Le Gall", "Marc Petit"), ("Zoé Le Gall", "Marc Petit")
    by_employer = {"Acme": acme, "Globex": ("Lina Haddad",), None: ("Tom Durand",)}
    by_site = {"Caen": caen, "Paris": ("Lina Haddad", "Tom Durand")}
    expectations: list[tuple[str, dict[Any, tuple[str, ...]]]] = [
        ("employer", by_employer),
        ("site", by_site),
    ]
    for group, expected in expectations:
        grouped = (await _report(hotline, cid, f"&group={group}")).json()
        lines = {line[group]: line for line in grouped["rows"]}
        assert list(lines) == list(expected)
        for name, members in expected.items():
            summed = tuple(sum(m) for m in zip(*(_metrics(rows[v]) for v in members), strict=True))
            assert _metrics(lines[name]) == summed
            assert lines[name]["volunteers"] == len(members)
        assert grouped["totals"] == data["totals"]
    assert _metrics(data["totals"]) == (3, 20 * HOUR, 15 * HOUR + 1800, 3900, 4, 3, 13500)

    # A period clips the sessions: from local midnight of the night the clocks go back
    # to noon, Zoé was logged in 00:00 CEST to 05:00 CET, 6 hours really.
    since, until = paris(2026, 10, 25, 0, 0), paris(2026, 10, 25, 12, 0)
    clipped = (
        await _report(
            hotline,
            cid,
            "&from="
            + since.isoformat().replace("+", "%2B")
            + "&to="
            + until.isoformat().replace("+", "%2B"),
        )
    ).json()
    rows = {row["volunteer"]: row for row in clipped["rows"]}
    # The call answered before midnight: 20 minutes of it in the period, not counted as
    # handled in it; its pledges were taken before.
    assert _metrics(rows["Zoé Le Gall"]) == (0, 0, 6 * HOUR, 1200, 0, 0, 0)
    assert _metrics(rows["Marc Petit"]) == (0,) * 7
    assert clipped["since"].startswith("2026-10-2")


async def test_an_open_session_counts_up_to_now(hotline: Hotline) -> None:
    setup = await _campaign(hotline)
    tom = await _volunteer(hotline, setup, "Tom Durand", "Paris", "Acme")
    await _work(hotline, tom, (utcnow() - dt.timedelta(hours=1), None), [])
    row = (await _report(hotline, setup["campaign_id"])).json()["rows"][0]
    # An hour and the few seconds the test takes: never less, never much more.
    assert HOUR <= row["logged_in_seconds"] < HOUR + 300
    # A period ending an hour ago sees none of it.
    until = (utcnow() - dt.timedelta(hours=2)).isoformat().replace("+", "%2B")
    past = (await _report(hotline, setup["campaign_id"], f"&to={until}")).json()
    assert past["rows"][0]["logged_in_seconds"] == 0


async def test_csv_and_xlsx_in_french_and_english(hotline: Hotline) -> None:
    scene = await _scene(hotline)
    cid = scene["campaign_id"]
    r = await _report(hotline, cid, "&format=csv", **{"Accept-Language": "fr"})
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert b"\r\n" in r.content
    table = list(csv.reader(io.StringIO(r.content.decode("utf-8"))))
    assert table[0][:4] == ["id_agent", "bénévole", "entreprise", "site"]
    assert "temps_connecté" in table[0]
    zoe = dict(zip(table[0], next(line for line in table if line[1] == "Zoé Le Gall"), strict=True))
    assert (zoe["temps_connecté"], zoe["temps_connecté_secondes"]) == ("08:00", str(8 * HOUR))
    assert (zoe["montant_promis"], zoe["montant_promis_centimes"], zoe["devise"]) == (
        "35.00",
        "3500",
        "EUR",
    )

    r = await _report(hotline, cid, "&format=xlsx&group=employer", **{"Accept-Language": "en"})
    sheet = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True).active
    assert sheet is not None
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0][:3] == ["employer", "volunteers", "shifts"]
    acme = dict(zip(values[0], values[1], strict=True))
    assert (acme["employer"], acme["volunteers"], acme["logged_in"]) == ("Acme", 2, "12:30")
    assert (acme["logged_in_seconds"], acme["pledged"]) == (12 * HOUR + 1800, 135)


async def test_names_are_neutralised_in_the_files(hotline: Hotline) -> None:
    setup = await _campaign(hotline)
    await _volunteer(hotline, setup, "=HYPERLINK(1)", "Caen", "+Evil;=cmd")
    r = await _report(hotline, setup["campaign_id"], "&format=csv")
    line = list(csv.reader(io.StringIO(r.content.decode())))[1]
    assert line[1:3] == ["'=HYPERLINK(1)", "'+Evil;'=cmd"]


def _pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


async def test_the_attestation_pdf_in_french_then_english(hotline: Hotline) -> None:
    scene = await _scene(hotline)
    cid = scene["campaign_id"]
    r = await hotline.http.get(f"/reports/hours/attestation.pdf?campaign_id={cid}&employer=Acme")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    text = _pdf_text(r.content)
    assert "Attestation de mécénat de compétences" in text
    assert "Entreprise : Acme" in text
    assert "Campagne : Téléthon 2026" in text
    assert "Zoé Le Gall" in text and "Marc Petit" in text
    assert "Lina Haddad" not in text and "Tom Durand" not in text  # not Acme's
    # Zoé 08:00 logged in, 00:30 on calls; Marc 04:30 and 00:15; the total 12:30, 00:45.
    assert "08:00" in text and "04:30" in text and "12:30" in text and "00:45" in text
    assert "Total" in text and "Fait le" in text and "signature" in text
    # The period, from the first login, in Paris time and French formats.
    assert "du 29/03/2026 01:00" in text

    english = await hotline.http.get(
        f"/reports/hours/attestation.pdf?campaign_id={cid}&employer=Acme&lang=en"
    )
    text = _pdf_text(english.content)
    assert "Skills volunteering certificate" in text and "Company: Acme" in text
    by_header = await hotline.http.get(
        f"/reports/hours/attestation.pdf?campaign_id={cid}&employer=Globex",
        headers={"Accept-Language": "en-GB,en;q=0.9"},
    )
    assert "Lina Haddad" in _pdf_text(by_header.content)
    assert "Skills volunteering certificate" in _pdf_text(by_header.content)


async def test_refusals(hotline: Hotline) -> None:
    setup = await _campaign(hotline)
    cid = setup["campaign_id"]
    await _volunteer(hotline, setup, "Zoé Le Gall", "Caen", "Acme")
    unknown = await hotline.http.get(
        f"/reports/hours/attestation.pdf?campaign_id={cid}&employer=Initech",
        headers={"Accept-Language": "fr"},
    )
    assert unknown.status_code == 404
    body = unknown.json()
    assert (body["code"], body["field"]) == ("not_found", "employer")
    assert body["message"] == "aucun bénévole de cette campagne n'est mis à disposition par Initech"
    missing = await hotline.http.get("/reports/hours?campaign_id=999999")
    assert (missing.status_code, missing.json()["field"]) == (404, "campaign_id")
    naive = await hotline.http.get(f"/reports/hours?campaign_id={cid}&from=2026-10-24T20:00:00")
    assert (naive.status_code, naive.json()["field"]) == (422, "from")
    backwards = await hotline.http.get(
        f"/reports/hours?campaign_id={cid}&from=2026-10-25T00:00:00Z&to=2026-10-24T00:00:00Z",
        headers={"Accept-Language": "fr"},
    )
    assert backwards.status_code == 422
    assert backwards.json()["message"] == "le début de la période doit précéder sa fin"
    bad_group = await hotline.http.get(f"/reports/hours?campaign_id={cid}&group=planet")
    assert bad_group.status_code == 422
