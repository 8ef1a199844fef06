"""Rules on the call path through the real app (SQLite and PostgreSQL): the webhook
brings a call in, the rules fire, and their effects are in the database and the
events; rules files through the API; the blocklist.

The volunteer's screen side (scripts pushed, buttons pressed) is in
``tests/test_rules_screens.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from app.acd.models import Timer
from app.acd.timers import TimerKind
from app.db import utcnow
from app.realtime.models import Event
from app.rules.engine import default_source
from tests.conftest import Hotline, setup_campaign, wait_for
from tests.pledge_helpers import call_state, key, pledge_body, pledge_setup

PRANKSTER = "06 11 22 33 44"
PRANKSTER_E164 = "+33611223344"


async def events_of(hotline: Hotline, *types: str, call_id: int | None = None) -> list[Event]:
    async with hotline.db.read() as session:
        stmt = select(Event).where(Event.type.in_(types))
        if call_id is not None:
            stmt = stmt.where(Event.call_id == call_id)
        return list((await session.execute(stmt.order_by(Event.seq))).scalars())


async def commands_for(hotline: Hotline, provider_id: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await hotline.sql(
        "SELECT command, args FROM telephony_commands WHERE provider_call_id = :p ORDER BY id",
        p=provider_id,
    )
    return [(c, a if isinstance(a, dict) else json.loads(a)) for c, a in rows]


async def call_row(hotline: Hotline, call_id: int) -> dict[str, Any]:
    r = await hotline.http.get(f"/calls/{call_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def incoming(hotline: Hotline, caller: str | None) -> tuple[str, dict[str, Any]]:
    provider_id = f"r-{uuid.uuid4().hex[:10]}"
    r = await hotline.incoming(provider_id, caller=caller)
    assert r.status_code == 200, r.text
    return provider_id, await call_row(hotline, r.json()["call"]["id"])


async def hang_up(hotline: Hotline, provider_id: str) -> None:
    r = await hotline.telephony({"type": "call.hangup", "call_id": provider_id})
    assert r.status_code == 200, r.text


# --- rules files through the API ---------------------------------------------------


async def test_a_bad_file_is_refused_with_file_line_reason_and_the_rules_stay(
    hotline: Hotline,
) -> None:
    setup = await setup_campaign(hotline, agents=0)
    url = f"/campaigns/{setup['campaign_id']}/rules"
    before = (await hotline.http.get(url)).json()
    assert before["origin"] == "default"
    assert before["source"] == default_source()
    bad = textwrap.dedent(
        """\
        rules:
          - name: typo
            on: call.received
            when: caller.calls_per_hour > 3
            then:
              - tag: busy
              - teleport: moon
        """
    )
    r = await hotline.http.put(url, json={"source": bad})
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "rules_invalid"
    assert body["field"] == "source"
    assert [(p["file"], p["line"]) for p in body["problems"]] == [
        ("rules.yaml", 4),
        ("rules.yaml", 7),
    ]
    # In the campaign's language (French): the reasons as the message.
    assert "fait inconnu" in body["problems"][0]["reason"]
    assert "action « teleport » inconnue" in body["problems"][1]["reason"]
    assert body["message"].startswith("rules.yaml:4 : règle typo : fait inconnu")
    check = await hotline.http.post(f"{url}/check", json={"source": bad})
    assert check.json()["ok"] is False and len(check.json()["problems"]) == 2
    # Nothing changed: the defaults are still in force, and still route calls.
    after = (await hotline.http.get(url)).json()
    assert after["origin"] == "default" and after["version"] is None
    _, call = await incoming(hotline, None)
    assert "withheld" in call["tags"]


async def test_a_bad_file_s_problems_are_told_in_the_request_language(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=0)
    url = f"/campaigns/{setup['campaign_id']}/rules"
    bad = "rules:\n  - name: a\n    on: call.received\n    then: [teleport]\n"
    french = await hotline.http.put(url, json={"source": bad})
    english = await hotline.http.put(url, json={"source": bad}, headers={"Accept-Language": "en"})
    assert french.status_code == english.status_code == 422
    known = "route_to, set_priority"
    assert french.json()["message"].startswith(
        f"rules.yaml:4 : action « teleport » inconnue (connues : {known}"
    )
    assert english.json()["message"].startswith(
        f"rules.yaml:4: unknown action 'teleport' (known: {known}"
    )
    assert [(p["file"], p["line"]) for p in french.json()["problems"]] == [("rules.yaml", 4)]
    assert french.json()["problems"][0]["reason"].startswith("action « teleport » inconnue")
    assert english.json()["problems"][0]["reason"].startswith("unknown action 'teleport'")
    # Checking a file answers in the same language.
    check = await hotline.http.post(
        f"{url}/check", json={"source": bad}, headers={"Accept-Language": "en"}
    )
    assert check.json()["problems"][0]["reason"].startswith("unknown action 'teleport'")
    check = await hotline.http.post(f"{url}/check", json={"source": bad})
    assert check.json()["problems"][0]["reason"].startswith("action « teleport » inconnue")


async def test_a_new_file_is_in_force_at_once_with_its_version(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=0)
    await hotline.http.post("/queues", json={"campaign_id": setup["campaign_id"], "name": "vip"})
    url = f"/campaigns/{setup['campaign_id']}/rules"
    source = textwrap.dedent(
        """\
        rules:
          - name: vip-caller
            on: call.received
            when: caller.number == "+33612345678"
            then:
              - route_to: {queue: vip, priority: 7}
              - tag: vip
        """
    )
    r = await hotline.http.put(url, json={"source": source})
    assert r.status_code == 200, r.text
    assert r.json()["origin"] == "api" and r.json()["version"] == 1
    assert r.json()["created_by"] == "test-admin"
    assert [rule["name"] for rule in r.json()["rules"]] == ["vip-caller"]
    _, call = await incoming(hotline, "06 12 34 56 78")
    row = await call_row(hotline, call["id"])
    assert row["tags"] == ["vip"] and row["priority"] == 7
    queues = {q["id"]: q["name"] for q in (await hotline.http.get("/queues")).json()}
    assert queues[row["queue_id"]] == "vip"
    # The campaign's own file replaces the default rules: a withheld call is not tagged.
    _, other = await incoming(hotline, None)
    assert other["tags"] == []
    # The shipped file hands callers to a "specialists" queue this campaign lacks.
    refused = await hotline.http.put(url, json={"source": default_source()})
    assert refused.status_code == 422
    assert "pas de file « specialists »" in refused.json()["problems"][0]["reason"]
    second = await hotline.http.put(url, json={"source": source.replace("- tag: vip", "- tag: v")})
    assert second.json()["version"] == 2
    # A queue the campaign does not have is refused with its line.
    wrong = source.replace("queue: vip", "queue: vipp")
    r = await hotline.http.put(url, json={"source": wrong})
    assert r.status_code == 422
    assert r.json()["problems"] == [
        {
            "file": "rules.yaml",
            "line": 6,
            "reason": "route_to : la campagne n'a pas de file « vipp »",
        }
    ]
    assert (await hotline.http.get(url)).json()["version"] == 2


async def test_a_rule_failing_at_run_time_is_skipped_and_the_call_goes_on(
    hotline: Hotline,
) -> None:
    setup = await setup_campaign(hotline, agents=0)
    source = textwrap.dedent(
        """\
        rules:
          - name: broken
            on: call.received
            then:
              - tag: half-done
              - hangup  # a call being received has no conversation to end
          - name: divide
            on: call.received
            when: 10 / caller.prank_strikes > 1
            then: [tag: never]
          - name: fine
            on: call.received
            then: [tag: fine]
        """
    )
    r = await hotline.http.put(f"/campaigns/{setup['campaign_id']}/rules", json={"source": source})
    assert r.status_code == 200, r.text
    _, call = await incoming(hotline, "06 12 34 56 78")
    row = await call_row(hotline, call["id"])
    assert row["state"] == "queued"
    assert row["queue_id"] == setup["queue_id"]
    assert row["tags"] == ["fine"]  # the broken rule's tag was undone with it


async def test_a_campaign_file_is_reloaded_when_changed_and_a_bad_one_is_refused(
    hotline_factory: Callable[..., Awaitable[Hotline]], tmp_path: Path
) -> None:
    hotline = await hotline_factory(rules_dir=str(tmp_path), rules_recheck_seconds=0)
    setup = await setup_campaign(hotline, agents=0)
    path = tmp_path / f"{setup['campaign_id']}.yaml"
    path.write_text("rules:\n  - on: call.received\n    then: [tag: first]\n")
    _, call = await incoming(hotline, "06 12 34 56 78")
    assert call["tags"] == ["first"]
    got = (await hotline.http.get(f"/campaigns/{setup['campaign_id']}/rules")).json()
    assert got["origin"] == "file" and got["source"] == path.read_text()
    path.write_text("rules:\n  - on: call.received\n    then: [tag: second]\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))  # a newer mtime
    _, call = await incoming(hotline, "06 12 34 56 78")
    assert call["tags"] == ["second"]
    # A bad edit is refused (logged with file and line); the rules in force stay.
    path.write_text("rules:\n  - on: call.received\n    when: caller.shoe_size > 3\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2_000_000_000))
    _, call = await incoming(hotline, "06 12 34 56 78")
    assert call["tags"] == ["second"]
    # A version put through the API wins over the file.
    r = await hotline.http.put(
        f"/campaigns/{setup['campaign_id']}/rules",
        json={"source": "rules:\n  - on: call.received\n    then: [tag: api]\n"},
    )
    assert r.status_code == 200, r.text
    _, call = await incoming(hotline, "06 12 34 56 78")
    assert call["tags"] == ["api"]


async def test_each_call_event_runs_its_rules(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    source = textwrap.dedent(
        """\
        rules:
          - on: call.queued
            when: call.queue == "pledges"
            then: [set_priority: 3, tag: queued]
          - on: call.offered
            when: '"pledges" in agent.skills'
            then: [tag: offered, show_script: thanks]
          - on: call.connected
            when: call.wait_seconds >= 0.0
            then: [tag: connected]
          - on: call.ended
            when: call.talk_seconds >= 0.0 && agent.id > 0
            then:
              - alert_supervisors: "{agent.name} talked {call.talk_seconds} s"
        scripts:
          - name: thanks
            version: 3
            title: Thanks
            steps:
              - say: "Thank you, {caller.number}!"
        """
    )
    r = await hotline.http.put(f"/campaigns/{setup['campaign_id']}/rules", json={"source": source})
    assert r.status_code == 200, r.text
    await hotline.http.post(f"/agents/{agent_id}/ready")
    provider_id, call = await incoming(hotline, "06 12 34 56 78")

    async def offered() -> bool:
        return await call_state(hotline, call["id"]) == "offered"

    await wait_for(offered)
    await hotline.telephony({"type": "seat.answered", "call_id": provider_id})
    await hang_up(hotline, provider_id)
    row = await call_row(hotline, call["id"])
    assert row["tags"] == ["queued", "offered", "connected"]
    assert row["priority"] == 3
    shown = await events_of(hotline, "script.show", call_id=call["id"])
    # The rule's script went to the screen instead of the pledge script (once).
    assert [e.data["script"]["name"] for e in shown] == ["thanks"]
    assert shown[0].data["script"]["version"] == 3
    assert shown[0].data["script"]["steps"][0]["text"] == "Thank you, +33612345678!"
    alerts = await events_of(hotline, "supervisor.alert", call_id=call["id"])
    assert len(alerts) == 1 and alerts[0].data["text"].startswith("Vol 0 talked ")


# --- the shipped defaults, from the webhook ----------------------------------------


async def test_repeat_prank_caller_is_struck_then_blocked_for_a_day(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=0)
    calls = []
    for _ in range(5):
        provider_id, call = await incoming(hotline, PRANKSTER)
        calls.append(call)
        await hang_up(hotline, provider_id)
    assert calls[0]["tags"] == [] and calls[1]["tags"] == []
    assert all("possible_prank" in c["tags"] for c in calls[2:])
    alerts = await events_of(hotline, "supervisor.alert")
    assert len(alerts) == 3
    assert alerts[0].data["rule"] == "repeat-prank-caller"
    # In the campaign's language (French by default).
    assert "+33611223344 a appelé 3 fois en 10 minutes" in alerts[0].data["text"]
    struck = await events_of(hotline, "number.struck")
    assert [e.data["strikes"] for e in struck] == [1, 2, 3]
    blocked = await events_of(hotline, "number.blocked")
    assert len(blocked) == 1
    # The sixth call is turned away before anything else, with a short message.
    provider_id, sixth = await incoming(hotline, PRANKSTER)
    assert sixth["state"] == "rejected"
    rejected = await events_of(hotline, "call.rejected", call_id=sixth["id"])
    assert rejected[0].data["reason"] == "blocked"
    sent = await commands_for(hotline, provider_id)
    assert [c for c, _ in sent] == ["answer", "play", "hangup"]
    assert sent[1][1]["message"] == hotline.settings.rules_blocked_message
    listing = (await hotline.http.get(f"/campaigns/{setup['campaign_id']}/blocklist")).json()
    assert len(listing) == 1
    entry = listing[0]
    assert entry["number"] == PRANKSTER_E164 and entry["strikes"] == 3 and entry["blocked"]
    assert entry["updated_by"] == "rule:repeat-prank-caller"
    assert entry["calls_total"] == 6 and entry["distinct_days"] == 1
    # Blocked for 24 hours.
    until = entry["blocked_until"]
    hours = (dt.datetime.fromisoformat(until) - utcnow()).total_seconds() / 3600
    assert 23.9 < hours <= 24


async def test_withheld_number_is_routed_with_the_adapted_script(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    _, call = await incoming(hotline, "anonymous")
    assert call["state"] == "queued"
    assert call["tags"] == ["withheld"]
    await hotline.http.post(f"/agents/{agent_id}/ready")

    async def shown() -> list[Event]:
        return await events_of(hotline, "script.show", call_id=call["id"])

    script = (await wait_for(shown))[0]
    assert script.agent_id == agent_id
    assert script.data["script"]["name"] == "pledge-withheld"
    texts = " ".join(s["text"] for s in script.data["script"]["steps"])
    assert "Votre numéro ne s'affiche pas" in texts
    assert "Vol 0" in texts  # {agent.name}
    pops = await hotline.sql("SELECT call_id FROM screen_pops WHERE call_id = :c", c=call["id"])
    assert pops == []  # no directory look-up for a withheld number


async def test_an_unrecognised_number_gets_a_script_that_says_so(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    _, call = await incoming(hotline, "12")
    assert call["caller_number_issue"] == "invalid"
    assert call["tags"] == ["unrecognised_number"]
    await hotline.http.post(f"/agents/{agent_id}/ready")

    async def shown() -> list[Event]:
        return await events_of(hotline, "script.show", call_id=call["id"])

    script = (await wait_for(shown))[0]
    # Described as the caller panel and the call line describe it: not "withheld".
    assert script.data["script"]["name"] == "pledge-unrecognised"
    assert script.data["script"]["title"] == "Appel de promesse (numéro non reconnu)"
    texts = " ".join(s["text"] for s in script.data["script"]["steps"])
    assert "Votre numéro ne nous parvient pas correctement" in texts
    assert "Je m'appelle Vol 0" in texts


async def test_a_volunteer_reads_the_script_in_their_language(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    r = await hotline.http.post(
        "/users",
        json={
            "username": "vol-en",
            "display_name": "Vol 0",
            "role": "agent",
            "secret": "246810",
            "campaign_id": setup["campaign_id"],
            "agent_id": agent_id,
        },
    )
    assert r.status_code == 201, r.text
    r = await hotline.http.patch(f"/users/{r.json()['id']}", json={"language": "en"})
    assert r.status_code == 200, r.text
    _, call = await incoming(hotline, "anonymous")
    await hotline.http.post(f"/agents/{agent_id}/ready")

    async def shown() -> list[Event]:
        return await events_of(hotline, "script.show", call_id=call["id"])

    script = (await wait_for(shown))[0].data["script"]
    # The campaign speaks French; this volunteer's login says English.
    assert script["title"] == "Pledge call (number withheld)"
    texts = " ".join(s["text"] for s in script["steps"])
    assert "Your number is not shown to us" in texts and "My name is Vol 0" in texts


async def test_callers_hear_the_campaigns_language(hotline: Hotline) -> None:
    closed_all_week = {day: [] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    closed_all_week["mon"] = [["03:00", "03:01"]]
    await setup_campaign(
        hotline, agents=0, campaign={"opening_hours": closed_all_week, "language": "en"}
    )
    provider_id, _ = await incoming(hotline, "06 12 34 56 78")
    sent = await commands_for(hotline, provider_id)
    assert "Opening hours: " in sent[1][1]["message"]


async def test_after_hours_callers_hear_the_opening_hours(hotline: Hotline) -> None:
    closed_all_week = {day: [] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    closed_all_week["mon"] = [["03:00", "03:01"]]
    await setup_campaign(hotline, agents=0, campaign={"opening_hours": closed_all_week})
    provider_id, call = await incoming(hotline, "06 12 34 56 78")
    assert call["state"] == "rejected"
    rejected = await events_of(hotline, "call.rejected", call_id=call["id"])
    assert rejected[0].data["reason"] == "closed"
    sent = await commands_for(hotline, provider_id)
    assert [c for c, _ in sent] == ["answer", "play", "hangup"]
    assert "Horaires d'ouverture : " in sent[1][1]["message"]
    assert "03:00" in sent[1][1]["message"]


async def test_a_large_pledge_alerts_the_supervisors(hotline: Hotline) -> None:
    setup = await pledge_setup(hotline)
    headers = {**setup["agent_headers"], **key()}
    small = await hotline.http.post(
        "/pledges", json=pledge_body(setup["call_id"], amount_minor=5000), headers=headers
    )
    assert small.status_code == 201, small.text
    large = await hotline.http.post(
        "/pledges",
        json=pledge_body(setup["call_id"], amount_minor=250000),
        headers={**setup["agent_headers"], **key()},
    )
    assert large.status_code == 201, large.text
    reference = large.json()["reference"]

    async def alerts() -> list[Event]:
        return await events_of(hotline, "supervisor.alert")

    found = await wait_for(alerts)
    assert len(found) == 1
    assert found[0].data["rule"] == "large-pledge"
    assert "2,500.00 EUR" in found[0].data["text"] and reference in found[0].data["text"]
    assert found[0].agent_id is None  # for the supervisors, not the volunteer's screen


async def test_no_specialist_in_time_gives_the_partner_helpline(hotline: Hotline) -> None:
    """The hand-over's fallback, fired by moving its due time (no waiting in tests):
    the consult leg is withdrawn, the caller is back with the volunteer, who is shown
    the partner helpline's number to read (tests/test_handover.py: the screens)."""
    setup = await setup_campaign(hotline, agents=1)
    await hotline.http.post(
        "/queues",
        json={"campaign_id": setup["campaign_id"], "name": "specialists", "required_skill": "x"},
    )
    agent_id = setup["agent_ids"][0]
    await hotline.http.post(f"/agents/{agent_id}/ready")
    provider_id, call = await incoming(hotline, "06 12 34 56 78")

    async def offered() -> bool:
        return await call_state(hotline, call["id"]) == "offered"

    await wait_for(offered)
    await hotline.telephony({"type": "seat.answered", "call_id": provider_id})
    from app.rules import service

    ack = await service.flag(hotline.db, agent_id, "needs_support")
    assert ack["rules"] == ["needs-support"]
    leg = (await hotline.sql("SELECT id FROM calls WHERE parent_call_id = :c", c=call["id"]))[0][0]
    assert await call_state(hotline, leg) == "queued"
    async with hotline.db.unit_of_work() as uow:
        await uow.session.execute(
            update(Timer)
            .where(Timer.call_id == leg, Timer.kind == TimerKind.CONSULT_FALLBACK)
            .values(due_at=utcnow())
        )

    async def helpline() -> list[Event]:
        return await events_of(hotline, "script.show", call_id=call["id"])

    async def shown_helpline() -> list[Event]:
        return [e for e in await helpline() if e.data["script"]["name"] == "partner-helpline"]

    shown = (await wait_for(shown_helpline))[0]
    assert shown.agent_id == agent_id  # the volunteer, with the caller again
    assert hotline.settings.rules_partner_helpline in shown.data["script"]["steps"][0]["text"]
    assert await call_state(hotline, leg) == "withdrawn"
    assert await call_state(hotline, call["id"]) == "connected"
    sent = [c for c, _ in await commands_for(hotline, provider_id)]
    assert "hold" in sent and "consult_cancel" in sent and "unhold" in sent
    alerts = [e.data["rule"] for e in await events_of(hotline, "supervisor.alert")]
    assert alerts == ["needs-support", "no-specialist"]


# --- blocklist by hand ----------------------------------------------------------------


async def test_supervisors_block_and_unblock_numbers(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=0)
    url = f"/campaigns/{setup['campaign_id']}/blocklist"
    bad = await hotline.http.post(url, json={"number": "06 12 34 56 78", "duration": "forever"})
    assert bad.status_code == 422 and bad.json()["field"] == "duration"
    not_a_number = await hotline.http.post(url, json={"number": "hello", "duration": "1h"})
    assert not_a_number.status_code == 422 and not_a_number.json()["field"] == "number"
    r = await hotline.http.post(
        url, json={"number": "06 12 34 56 78", "duration": "2h", "reason": "abusive"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["blocked"] and r.json()["number"] == "+33612345678"
    assert r.json()["reason"] == "abusive" and r.json()["updated_by"] == "test-admin"
    _, call = await incoming(hotline, "0612345678")
    assert call["state"] == "rejected"
    gone = await hotline.http.delete(f"{url}/+33612345678")
    assert gone.status_code == 200 and gone.json()["blocked"] is False
    assert gone.json()["strikes"] == 0
    assert (await hotline.http.get(url)).json() == []
    _, again = await incoming(hotline, "0612345678")
    assert again["state"] == "queued"
    missing = await hotline.http.delete(f"{url}/+33699999999")
    assert missing.status_code == 404
