"""The configuration API (campaigns, queues, agents, seats), queue statistics, health."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.db import Database, make_engine
from app.main import create_app
from tests.conftest import Hotline, make_settings, setup_campaign, wait_for


def assert_error(r: httpx.Response, status: int, code: str, field: str | None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "message", "field"}, body
    assert (body["code"], body["field"]) == (code, field), body
    assert isinstance(body["message"], str) and body["message"]


async def new_campaign(hotline: Hotline, **fields: Any) -> dict[str, Any]:
    r = await hotline.http.post(
        "/campaigns", json={"name": f"Campaign {uuid.uuid4().hex[:8]}", **fields}
    )
    assert r.status_code == 201, r.text
    campaign: dict[str, Any] = r.json()
    return campaign


async def new_queue(hotline: Hotline, campaign_id: int, **fields: Any) -> dict[str, Any]:
    r = await hotline.http.post(
        "/queues", json={"campaign_id": campaign_id, "name": "pledges", **fields}
    )
    assert r.status_code == 201, r.text
    queue: dict[str, Any] = r.json()
    return queue


async def new_agent(hotline: Hotline, campaign_id: int, login: str, **fields: Any) -> int:
    r = await hotline.http.post(
        "/agents",
        json={"campaign_id": campaign_id, "login": login, "display_name": login, **fields},
    )
    assert r.status_code == 201, r.text
    agent_id: int = r.json()["id"]
    return agent_id


async def new_seat(hotline: Hotline, campaign_id: int, name: str) -> int:
    r = await hotline.http.post(
        "/seats", json={"campaign_id": campaign_id, "name": name, "address": f"sip:{name}@pbx"}
    )
    assert r.status_code == 201, r.text
    seat_id: int = r.json()["id"]
    return seat_id


# --- campaigns -----------------------------------------------------------------------


async def test_campaign_create_get_list_patch(hotline: Hotline) -> None:
    http = hotline.http
    r = await http.post(
        "/campaigns", json={"name": "Spring Telethon", "dialled_numbers": ["+33800000001"]}
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"] == "Spring Telethon"
    assert created["dialled_numbers"] == ["+33800000001"]
    # Defaults a French telethon expects.
    assert (created["currency"], created["default_region"], created["timezone"]) == (
        "EUR",
        "FR",
        "Europe/Paris",
    )
    assert created["opening_hours"] == {}
    assert created["default_queue"] == "pledges"

    r = await http.get(f"/campaigns/{created['id']}")
    assert r.status_code == 200 and r.json() == created

    other = await new_campaign(hotline, currency="GBP", default_region="GB", timezone="UTC")
    listed = (await http.get("/campaigns")).json()
    assert [c["id"] for c in listed] == [created["id"], other["id"]]

    hours = {"mon": [["08:00", "12:00"], ["14:00", "24:00"]], "sat": [["10:00", "18:00"]]}
    r = await http.patch(
        f"/campaigns/{created['id']}",
        json={
            "opening_hours": hours,
            "closed_message": "Closed, sorry.",
            "dialled_numbers": ["+33800000001", "+33800000002"],
            "name": "Autumn Telethon",
        },
    )
    assert r.status_code == 200, r.text
    got = (await http.get(f"/campaigns/{created['id']}")).json()
    assert got["opening_hours"] == hours
    assert got["closed_message"] == "Closed, sorry."
    assert got["dialled_numbers"] == ["+33800000001", "+33800000002"]
    assert got["name"] == "Autumn Telethon"
    assert got["currency"] == "EUR"  # untouched fields stay
    # The other campaign is untouched.
    assert (await http.get(f"/campaigns/{other['id']}")).json() == other


async def test_unknown_campaign_is_404(hotline: Hotline) -> None:
    assert_error(await hotline.http.get("/campaigns/999999"), 404, "not_found", "campaign_id")
    r = await hotline.http.patch("/campaigns/999999", json={"closed_message": "x"})
    assert_error(r, 404, "not_found", "campaign_id")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"opening_hours": {"funday": [["08:00", "12:00"]]}}, "opening_hours"),
        ({"opening_hours": {"mon": [["20:00", "08:00"]]}}, "opening_hours"),
        ({"opening_hours": {"mon": [["08:00", "25:00"]]}}, "opening_hours"),
        ({"opening_hours": {"mon": [["08:00"]]}}, "opening_hours"),
        ({"dialled_numbers": ["0800 000 001"]}, "dialled_numbers.0"),
        ({"dialled_numbers": ["+33800000001", "+0123"]}, "dialled_numbers.1"),
        ({"currency": "euro"}, "currency"),
        ({"default_region": "FRA"}, "default_region"),
        ({"name": "   "}, "name"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_campaign_validation_names_the_field(
    hotline: Hotline, fields: dict[str, Any], field: str
) -> None:
    r = await hotline.http.post("/campaigns", json={"name": "Bad Campaign", **fields})
    assert_error(r, 422, "invalid", field)
    assert (await hotline.http.get("/campaigns")).json() == []


async def test_campaign_patch_validation(hotline: Hotline) -> None:
    campaign = await new_campaign(hotline)
    url = f"/campaigns/{campaign['id']}"
    r = await hotline.http.patch(url, json={"opening_hours": {"mon": [["18:00", "09:00"]]}})
    assert_error(r, 422, "invalid", "opening_hours")
    r = await hotline.http.patch(url, json={"timezone": "UTC"})  # not changeable
    assert_error(r, 422, "invalid", "timezone")
    r = await hotline.http.patch(url, json={"dialled_numbers": ["33800000001"]})
    assert_error(r, 422, "invalid", "dialled_numbers.0")
    assert (await hotline.http.get(url)).json() == campaign


@pytest.mark.parametrize("field", ["name", "dialled_numbers", "opening_hours", "default_queue"])
async def test_campaign_patch_refuses_null_for_a_required_field(
    hotline: Hotline, field: str
) -> None:
    campaign = await new_campaign(hotline)
    r = await hotline.http.patch(f"/campaigns/{campaign['id']}", json={field: None})
    assert_error(r, 422, "invalid", field)
    assert (await hotline.http.get(f"/campaigns/{campaign['id']}")).json() == campaign


async def test_duplicate_campaign_name_is_409(hotline: Hotline) -> None:
    first = await new_campaign(hotline)
    r = await hotline.http.post("/campaigns", json={"name": first["name"]})
    assert_error(r, 409, "already_exists", "name")
    second = await new_campaign(hotline)
    # Renaming onto a taken name is the same conflict, and changes nothing.
    r = await hotline.http.patch(f"/campaigns/{second['id']}", json={"name": first["name"]})
    assert_error(r, 409, "already_exists", "name")
    assert (await hotline.http.get(f"/campaigns/{second['id']}")).json() == second
    assert len((await hotline.http.get("/campaigns")).json()) == 2


async def test_dialled_number_belongs_to_one_campaign(hotline: Hotline) -> None:
    owner = await new_campaign(hotline, dialled_numbers=["+33800000001"])
    r = await hotline.http.post(
        "/campaigns",
        json={"name": "Intruder", "dialled_numbers": ["+33800000009", "+33800000001"]},
    )
    assert_error(r, 409, "conflict", "dialled_numbers")
    other = await new_campaign(hotline, dialled_numbers=["+33800000002"])
    r = await hotline.http.patch(
        f"/campaigns/{other['id']}", json={"dialled_numbers": ["+33800000001"]}
    )
    assert_error(r, 409, "conflict", "dialled_numbers")
    assert (await hotline.http.get(f"/campaigns/{other['id']}")).json() == other
    # A campaign may re-state its own numbers.
    r = await hotline.http.patch(
        f"/campaigns/{owner['id']}", json={"dialled_numbers": ["+33800000001"]}
    )
    assert r.status_code == 200, r.text


# --- queues --------------------------------------------------------------------------


async def test_queue_create_get_list_patch(hotline: Hotline) -> None:
    http = hotline.http
    campaign = await new_campaign(hotline)
    other_campaign = await new_campaign(hotline)
    queue = await new_queue(
        hotline,
        campaign["id"],
        required_skill="pledges",
        tiers=[[30, 2], [60, 3]],
        ring_timeout_seconds=10,
        dialled_numbers=["+33800000003"],
    )
    assert queue["strategy"] == "longest_idle"
    assert queue["tiers"] == [[30, 2], [60, 3]]
    assert queue["ring_timeout_seconds"] == 10
    assert queue["max_wait_seconds"] is None
    assert (await http.get(f"/queues/{queue['id']}")).json() == queue

    overflow = await new_queue(hotline, campaign["id"], name="overflow")
    elsewhere = await new_queue(hotline, other_campaign["id"])  # same name, other campaign
    listed = (await http.get("/queues", params={"campaign_id": campaign["id"]})).json()
    assert [q["id"] for q in listed] == [queue["id"], overflow["id"]]
    assert len((await http.get("/queues")).json()) == 3
    assert elsewhere["name"] == queue["name"]

    r = await http.patch(
        f"/queues/{queue['id']}",
        json={
            "strategy": "round_robin",
            "max_wait_seconds": 120,
            "overflow_queue_id": overflow["id"],
            "tiers": [[45, 4]],
        },
    )
    assert r.status_code == 200, r.text
    got = (await http.get(f"/queues/{queue['id']}")).json()
    assert got["strategy"] == "round_robin"
    assert got["max_wait_seconds"] == 120
    assert got["overflow_queue_id"] == overflow["id"]
    assert got["tiers"] == [[45, 4]]
    assert got["ring_timeout_seconds"] == 10
    # Null clears an optional setting.
    r = await http.patch(f"/queues/{queue['id']}", json={"max_wait_seconds": None})
    assert r.status_code == 200 and r.json()["max_wait_seconds"] is None, r.text


async def test_unknown_queue_and_campaign_are_404(hotline: Hotline) -> None:
    assert_error(await hotline.http.get("/queues/424242"), 404, "not_found", "queue_id")
    r = await hotline.http.patch("/queues/424242", json={"wrapup_seconds": 5})
    assert_error(r, 404, "not_found", "queue_id")
    r = await hotline.http.post("/queues", json={"campaign_id": 424242, "name": "pledges"})
    assert_error(r, 404, "not_found", "campaign_id")
    assert_error(await hotline.http.get("/queues/424242/stats"), 404, "not_found", "queue_id")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ring_timeout_seconds": -1}, "ring_timeout_seconds"),
        ({"ring_timeout_seconds": 0}, "ring_timeout_seconds"),
        ({"strategy": "random"}, "strategy"),
        ({"name": "Big Queue"}, "name"),
        ({"required_skill": "Pledges!"}, "required_skill"),
        ({"required_level": 11}, "required_level"),
        ({"wrapup_seconds": -5}, "wrapup_seconds"),
        ({"max_length": 0}, "max_length"),
        ({"tiers": [[30]]}, "tiers.0"),
        ({"dialled_numbers": ["+33 800"]}, "dialled_numbers.0"),
        ({"priority": 3}, "priority"),
    ],
)
async def test_queue_validation_names_the_field(
    hotline: Hotline, fields: dict[str, Any], field: str
) -> None:
    campaign = await new_campaign(hotline)
    r = await hotline.http.post(
        "/queues", json={"campaign_id": campaign["id"], "name": "pledges", **fields}
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid"
    assert r.json()["field"] == field or r.json()["field"].startswith(field + "."), r.json()
    assert (await hotline.http.get("/queues")).json() == []


async def test_queue_patch_validation(hotline: Hotline) -> None:
    campaign = await new_campaign(hotline)
    queue = await new_queue(hotline, campaign["id"])
    url = f"/queues/{queue['id']}"
    for body, field in [
        ({"ring_timeout_seconds": -3}, "ring_timeout_seconds"),
        ({"strategy": "loudest"}, "strategy"),
        ({"strategy": None}, "strategy"),
        ({"tiers": None}, "tiers"),
        ({"name": "renamed"}, "name"),
        ({"overflow_queue_id": queue["id"]}, "overflow_queue_id"),
        ({"sl_target_percent": 101}, "sl_target_percent"),
        # Amber above the target (80 by default): the colours would be upside down.
        ({"sl_amber_percent": 85}, "sl_amber_percent"),
        ({"sl_target_percent": 60}, "sl_amber_percent"),
        # The volunteer screen's breath before auto-answer: 0 to 5 seconds.
        ({"auto_answer_seconds": 6}, "auto_answer_seconds"),
        ({"auto_answer_seconds": -1}, "auto_answer_seconds"),
        ({"auto_answer_seconds": None}, "auto_answer_seconds"),
    ]:
        assert_error(await hotline.http.patch(url, json=body), 422, "invalid", field)
    assert (await hotline.http.get(url)).json() == queue


async def test_a_queue_sets_the_breath_before_auto_answer(hotline: Hotline) -> None:
    campaign = await new_campaign(hotline)
    queue = await new_queue(hotline, campaign["id"])
    assert (queue["auto_answer"], queue["auto_answer_seconds"]) == (True, 2)
    url = f"/queues/{queue['id']}"
    for seconds in (0, 5):
        r = await hotline.http.patch(url, json={"auto_answer_seconds": seconds})
        assert r.status_code == 200, r.text
        assert r.json()["auto_answer_seconds"] == seconds
    r = await hotline.http.patch(url, json={"auto_answer": False})
    assert (r.json()["auto_answer"], r.json()["auto_answer_seconds"]) == (False, 5)
    r = await hotline.http.post(
        "/queues",
        json={"campaign_id": campaign["id"], "name": "slow", "auto_answer_seconds": 9},
    )
    assert_error(r, 422, "invalid", "auto_answer_seconds")


async def test_a_queue_names_its_service_level_colours(hotline: Hotline) -> None:
    campaign = await new_campaign(hotline)
    queue = await new_queue(hotline, campaign["id"])
    assert (queue["sl_target_percent"], queue["sl_amber_percent"]) == (80, 70)
    url = f"/queues/{queue['id']}"
    r = await hotline.http.patch(url, json={"sl_target_percent": 90, "sl_amber_percent": 75})
    assert r.status_code == 200, r.text
    stats = (await hotline.http.get(f"{url}/stats")).json()
    assert (stats["service_level_target_percent"], stats["service_level_amber_percent"]) == (
        90,
        75,
    )


async def test_duplicate_queue_name_is_409(hotline: Hotline) -> None:
    campaign = await new_campaign(hotline)
    await new_queue(hotline, campaign["id"])
    r = await hotline.http.post("/queues", json={"campaign_id": campaign["id"], "name": "pledges"})
    assert_error(r, 409, "already_exists", "name")
    assert len((await hotline.http.get("/queues")).json()) == 1


async def test_overflow_queue_must_be_of_the_same_campaign(hotline: Hotline) -> None:
    a, b = await new_campaign(hotline), await new_campaign(hotline)
    foreign = await new_queue(hotline, b["id"])
    r = await hotline.http.post(
        "/queues",
        json={"campaign_id": a["id"], "name": "pledges", "overflow_queue_id": foreign["id"]},
    )
    assert_error(r, 422, "invalid", "overflow_queue_id")
    own = await new_queue(hotline, a["id"])
    r = await hotline.http.patch(f"/queues/{own['id']}", json={"overflow_queue_id": foreign["id"]})
    assert_error(r, 422, "invalid", "overflow_queue_id")
    r = await hotline.http.patch(f"/queues/{own['id']}", json={"overflow_queue_id": 987654})
    assert_error(r, 422, "invalid", "overflow_queue_id")


# --- agents --------------------------------------------------------------------------


async def test_agent_create_get_list_patch(hotline: Hotline) -> None:
    http = hotline.http
    campaign = await new_campaign(hotline)
    r = await http.post(
        "/agents",
        json={
            "campaign_id": campaign["id"],
            "login": "amelie.b",
            "display_name": "Amélie",
            "skills": {"pledges": 1, "specialist": 3},
            "languages": ["fr", "en"],
            "partner_org": "Red Cross",
        },
    )
    assert r.status_code == 201, r.text
    agent = r.json()
    assert agent["skills"] == {"pledges": 1, "specialist": 3}
    assert agent["languages"] == ["fr", "en"]
    assert agent["state"] == "logged_out"
    assert agent["seat_id"] is None and agent["current_call_id"] is None
    assert (await http.get(f"/agents/{agent['id']}")).json() == agent

    other = await new_agent(hotline, campaign["id"], "bruno")
    assert (await http.post(f"/agents/{other}/login", json={})).status_code == 200
    listed = (await http.get("/agents", params={"campaign_id": campaign["id"]})).json()
    assert [a["id"] for a in listed] == [agent["id"], other]
    paused = (await http.get("/agents", params={"state": "paused"})).json()
    assert [a["id"] for a in paused] == [other]
    r = await http.get("/agents", params={"state": "asleep"})
    assert_error(r, 422, "invalid", "state")

    r = await http.patch(
        f"/agents/{agent['id']}", json={"display_name": "Amélie B.", "skills": {"pledges": 2}}
    )
    assert r.status_code == 200, r.text
    got = (await http.get(f"/agents/{agent['id']}")).json()
    assert got["display_name"] == "Amélie B."
    assert got["skills"] == {"pledges": 2}  # replaced, not merged
    assert got["languages"] == ["fr", "en"]
    assert got["login"] == "amelie.b"


async def test_unknown_agent_is_404(hotline: Hotline) -> None:
    http = hotline.http
    assert_error(await http.get("/agents/31337"), 404, "not_found", "agent_id")
    assert_error(
        await http.patch("/agents/31337", json={"display_name": "x"}), 404, "not_found", "agent_id"
    )
    assert_error(await http.post("/agents/31337/login", json={}), 404, "not_found", "agent_id")
    r = await http.post(
        "/agents", json={"campaign_id": 31337, "login": "ghost", "display_name": "Ghost"}
    )
    assert_error(r, 404, "not_found", "campaign_id")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"login": "has space"}, "login"),
        ({"display_name": ""}, "display_name"),
        ({"skills": {"pledges": 0}}, "skills.pledges"),
        ({"skills": {"pledges": 11}}, "skills.pledges"),
        ({"skills": {"Bad Skill": 1}}, "skills"),
        ({"languages": ["fra"]}, "languages.0"),
        ({"state": "available"}, "state"),
    ],
)
async def test_agent_validation_names_the_field(
    hotline: Hotline, fields: dict[str, Any], field: str
) -> None:
    campaign = await new_campaign(hotline)
    body = {"campaign_id": campaign["id"], "login": "vol", "display_name": "Vol", **fields}
    r = await hotline.http.post("/agents", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid"
    assert r.json()["field"] == field or r.json()["field"].startswith(field + "."), r.json()
    assert (await hotline.http.get("/agents")).json() == []


async def test_agent_patch_validation(hotline: Hotline) -> None:
    campaign = await new_campaign(hotline)
    agent_id = await new_agent(hotline, campaign["id"], "vol", skills={"pledges": 1})
    url = f"/agents/{agent_id}"
    before = (await hotline.http.get(url)).json()
    for body, field in [
        ({"display_name": None}, "display_name"),
        ({"skills": None}, "skills"),
        ({"skills": {"pledges": 99}}, "skills.pledges"),
        ({"login": "renamed"}, "login"),
    ]:
        assert_error(await hotline.http.patch(url, json=body), 422, "invalid", field)
    assert (await hotline.http.get(url)).json() == before


async def test_duplicate_agent_login_is_409(hotline: Hotline) -> None:
    a, b = await new_campaign(hotline), await new_campaign(hotline)
    await new_agent(hotline, a["id"], "vol")
    r = await hotline.http.post(
        "/agents", json={"campaign_id": a["id"], "login": "vol", "display_name": "Twin"}
    )
    assert_error(r, 409, "already_exists", "login")
    await new_agent(hotline, b["id"], "vol")  # the same login in another campaign is fine
    assert len((await hotline.http.get("/agents")).json()) == 2


# --- seats ---------------------------------------------------------------------------


async def test_seat_create_get_list_patch(hotline: Hotline) -> None:
    http = hotline.http
    campaign = await new_campaign(hotline)
    r = await http.post(
        "/seats",
        json={
            "campaign_id": campaign["id"],
            "name": "desk-1",
            "address": "sip:desk1@pbx",
            "site": "Paris",
        },
    )
    assert r.status_code == 201, r.text
    seat = r.json()
    assert (seat["name"], seat["address"], seat["site"]) == ("desk-1", "sip:desk1@pbx", "Paris")
    assert (await http.get(f"/seats/{seat['id']}")).json() == seat
    second = await new_seat(hotline, campaign["id"], "desk-2")
    listed = (await http.get("/seats", params={"campaign_id": campaign["id"]})).json()
    assert [s["id"] for s in listed] == [seat["id"], second]

    r = await http.patch(f"/seats/{seat['id']}", json={"address": "webrtc:desk1", "site": None})
    assert r.status_code == 200, r.text
    got = (await http.get(f"/seats/{seat['id']}")).json()
    assert (got["address"], got["site"], got["name"]) == ("webrtc:desk1", None, "desk-1")


async def test_seat_errors(hotline: Hotline) -> None:
    http = hotline.http
    campaign = await new_campaign(hotline)
    seat_id = await new_seat(hotline, campaign["id"], "desk-1")
    assert_error(await http.get("/seats/5555"), 404, "not_found", "seat_id")
    assert_error(
        await http.patch("/seats/5555", json={"address": "x"}), 404, "not_found", "seat_id"
    )
    r = await http.post(
        "/seats", json={"campaign_id": campaign["id"], "name": "desk-1", "address": "sip:x"}
    )
    assert_error(r, 409, "already_exists", "name")
    r = await http.post("/seats", json={"campaign_id": campaign["id"], "name": "d", "address": ""})
    assert_error(r, 422, "invalid", "address")
    r = await http.post(
        "/seats", json={"campaign_id": campaign["id"], "name": "d", "address": "a", "floor": 2}
    )
    assert_error(r, 422, "invalid", "floor")
    r = await http.patch(f"/seats/{seat_id}", json={"address": None})
    assert_error(r, 422, "invalid", "address")
    r = await http.post("/seats", json={"campaign_id": 5555, "name": "d", "address": "a"})
    assert_error(r, 404, "not_found", "campaign_id")
    assert len((await http.get("/seats")).json()) == 1


async def test_agent_login_at_a_seat(hotline: Hotline) -> None:
    http = hotline.http
    campaign, other = await new_campaign(hotline), await new_campaign(hotline)
    seat = await new_seat(hotline, campaign["id"], "desk-1")
    foreign_seat = await new_seat(hotline, other["id"], "desk-1")
    first = await new_agent(hotline, campaign["id"], "first")
    second = await new_agent(hotline, campaign["id"], "second")

    r = await http.post(f"/agents/{first}/login", json={"seat_id": foreign_seat})
    assert_error(r, 422, "invalid", "seat_id")
    r = await http.post(f"/agents/{first}/login", json={"seat_id": 8888})
    assert_error(r, 404, "not_found", "seat_id")
    assert (await http.get(f"/agents/{first}")).json()["state"] == "logged_out"

    r = await http.post(f"/agents/{first}/login", json={"seat_id": seat})
    assert r.status_code == 200, r.text
    assert (r.json()["seat_id"], r.json()["state"]) == (seat, "paused")

    r = await http.post(f"/agents/{second}/login", json={"seat_id": seat})
    assert_error(r, 409, "seat_in_use", "seat_id")
    assert (await http.get(f"/agents/{second}")).json()["state"] == "logged_out"

    # Once the first volunteer leaves, the seat is free again.
    assert (await http.post(f"/agents/{first}/logout")).status_code == 200
    r = await http.post(f"/agents/{second}/login", json={"seat_id": seat})
    assert r.status_code == 200, r.text
    assert r.json()["seat_id"] == seat


# --- statistics ----------------------------------------------------------------------


async def _call_state(hotline: Hotline, call_id: int) -> str:
    state: str = (await hotline.http.get(f"/calls/{call_id}")).json()["state"]
    return state


async def _set_wait(hotline: Hotline, provider_call_id: str, seconds: float) -> None:
    async with hotline.db.unit_of_work() as uow:
        await uow.session.execute(
            text("update calls set wait_seconds = :w where provider_call_id = :p"),
            {"w": seconds, "p": provider_call_id},
        )


async def test_queue_stats_after_a_scripted_scenario(hotline: Hotline) -> None:
    http = hotline.http
    setup = await setup_campaign(hotline, agents=2, queue={"sl_threshold_seconds": 20})
    queue_id = setup["queue_id"]
    # A logged-in agent without the queue's skill is not one of the queue's agents.
    outsider = await new_agent(hotline, setup["campaign_id"], "outsider")
    assert (await http.post(f"/agents/{outsider}/login", json={})).status_code == 200

    empty = (await http.get(f"/queues/{queue_id}/stats")).json()
    assert empty["answered"] == 0 and empty["abandoned"] == 0 and empty["calls_waiting"] == 0
    assert empty["service_level"] is None
    assert empty["average_speed_of_answer_seconds"] is None
    assert empty["agents_by_state"]["paused"] == 2

    for agent_id in setup["agent_ids"]:
        assert (await http.post(f"/agents/{agent_id}/ready")).status_code == 200
    # Two calls answered.
    for provider_id in ("st-a", "st-b"):
        call_id = (await hotline.incoming(provider_id)).json()["call"]["id"]

        async def offered(call_id: int = call_id) -> bool:
            return await _call_state(hotline, call_id) == "offered"

        await wait_for(offered)
        r = await hotline.telephony({"type": "seat.answered", "call_id": provider_id})
        assert r.json()["call"]["state"] == "connected", r.text
    # Every volunteer busy: two callers give up while queued, one keeps waiting.
    for provider_id in ("st-c", "st-e"):
        assert (await hotline.incoming(provider_id)).json()["call"]["state"] == "queued"
        r = await hotline.telephony({"type": "call.hangup", "call_id": provider_id})
        assert r.json()["call"]["state"] == "abandoned", r.text
    assert (await hotline.incoming("st-d")).json()["call"]["state"] == "queued"

    r = await http.get(f"/queues/{queue_id}/stats")
    assert r.status_code == 200, r.text
    stats = r.json()
    assert stats["queue_id"] == queue_id and stats["queue"] == "pledges"
    assert stats["answered"] == 2
    assert stats["abandoned"] == 2
    assert stats["calls_waiting"] == 1
    assert stats["calls_ringing"] == 0
    assert stats["longest_wait_seconds"] >= 0
    assert stats["service_level_threshold_seconds"] == 20
    assert 0 <= stats["service_level"] <= 1
    assert stats["service_level"] == round(
        stats["answered_within_threshold"] / stats["answered"], 4
    )
    assert 0 <= stats["service_level_with_abandons"] <= stats["service_level"]
    assert stats["average_speed_of_answer_seconds"] >= 0
    assert stats["agents_by_state"] == {
        "logged_out": 0,
        "available": 0,
        "reserved": 0,
        "on_call": 2,
        "wrap_up": 0,
        "paused": 0,
        "consulting": 0,
    }

    # Known waits give exact figures: answered after 5 s and 40 s (threshold 20 s);
    # abandoned after 12 s (counted) and 1 s (short, under 5 s: left out).
    for provider_id, seconds in (("st-a", 5.0), ("st-b", 40.0), ("st-c", 12.0), ("st-e", 1.0)):
        await _set_wait(hotline, provider_id, seconds)
    stats = (await http.get(f"/queues/{queue_id}/stats")).json()
    assert stats["answered"] == 2
    assert stats["answered_within_threshold"] == 1
    assert stats["service_level"] == 0.5
    assert stats["service_level_with_abandons"] == round(1 / 3, 4)
    assert stats["average_speed_of_answer_seconds"] == 22.5
    assert stats["abandoned"] == 2
    assert stats["abandoned_short"] == 1

    # A wait exactly on the threshold counts as within it.
    await _set_wait(hotline, "st-b", 20.0)
    stats = (await http.get(f"/queues/{queue_id}/stats")).json()
    assert stats["answered_within_threshold"] == 2
    assert stats["service_level"] == 1.0

    r = await http.get(f"/queues/{queue_id}/stats", params={"window_seconds": 10})
    assert_error(r, 422, "invalid", "window_seconds")


# --- operations ----------------------------------------------------------------------


async def test_health_and_readiness(hotline: Hotline) -> None:
    r = await hotline.http.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = await hotline.http.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "database": hotline.db.dialect}


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
async def test_readyz_reports_an_unreachable_database(tmp_path: Path, dialect: str) -> None:
    # A directory is no SQLite database; nothing listens on port 1.
    url = (
        f"sqlite+aiosqlite:///{tmp_path}"
        if dialect == "sqlite"
        else "postgresql+asyncpg://postgres@127.0.0.1:1/pledgeline"
    )
    app = create_app(make_settings(url, background_workers=False))
    # No lifespan (it would need the database): readiness only needs the engine.
    db = Database(make_engine(url))
    app.state.db = db
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            assert_error(await http.get("/readyz"), 503, "database_unreachable", None)
            assert (await http.get("/healthz")).json() == {"status": "ok"}
    finally:
        await db.dispose()


async def test_openapi_lists_the_main_paths(hotline: Hotline) -> None:
    r = await hotline.http.get("/openapi.json")
    assert r.status_code == 200, r.text
    paths = r.json()["paths"]
    expected = {
        "/campaigns": {"get", "post"},
        "/campaigns/{campaign_id}": {"get", "patch"},
        "/queues": {"get", "post"},
        "/queues/{queue_id}": {"get", "patch"},
        "/queues/{queue_id}/stats": {"get"},
        "/agents": {"get", "post"},
        "/agents/{agent_id}": {"get", "patch"},
        "/agents/{agent_id}/login": {"post"},
        "/seats": {"get", "post"},
        "/seats/{seat_id}": {"get", "patch"},
        "/calls/{call_id}": {"get"},
        "/telephony/events": {"post"},
        "/telephony/commands": {"get"},
        "/healthz": {"get"},
        "/readyz": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, f"{path} missing from OpenAPI"
        assert methods <= set(paths[path]), (path, sorted(paths[path]))
