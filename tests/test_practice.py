"""Practice calls (app/practice): isolated from every real figure, scored per
scenario, training volunteers, and queues that only trained volunteers take."""

from __future__ import annotations

import itertools
from typing import Any

from app.auth.service import Role
from tests.conftest import Hotline, setup_campaign, wait_for
from tests.pledge_helpers import connected_call, key, pledge_body, user_headers

CARD = "4111 1111 1111 1111"  # a Luhn-valid test number


async def _volunteer(hotline: Hotline, **campaign: Any) -> dict[str, Any]:
    setup = await setup_campaign(hotline, agents=2, campaign=campaign or None)
    agent_id = setup["agent_ids"][0]
    setup["agent_id"] = agent_id
    setup["headers"] = await user_headers(
        hotline, Role.AGENT, campaign_id=setup["campaign_id"], agent_id=agent_id
    )
    return setup


async def _start(hotline: Hotline, headers: dict[str, str], scenario: str) -> dict[str, Any]:
    r = await hotline.http.post("/practice/calls", json={"scenario": scenario}, headers=headers)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def _act(hotline: Hotline, headers: dict[str, str], call_id: int, **body: Any) -> Any:
    r = await hotline.http.post(f"/practice/calls/{call_id}/actions", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def _pledge(
    hotline: Hotline, headers: dict[str, str], call_id: int, **fields: Any
) -> dict[str, Any]:
    body = {
        "first_name": "Monique",
        "last_name": "Lefèvre",
        "address": "8 rue Écuyère",
        "postcode": "14000",
        "city": "Caen",
        "email": "monique.lefevre@example.org",
        "amount_minor": 5000,
        **fields,
    }
    r = await hotline.http.post(f"/practice/calls/{call_id}/pledge", json=body, headers=headers)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def _end(hotline: Hotline, headers: dict[str, str], call_id: int) -> dict[str, Any]:
    r = await hotline.http.post(f"/practice/calls/{call_id}/end", headers=headers)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _score(ended: dict[str, Any]) -> dict[str, bool]:
    return {item["criterion"]: item["passed"] for item in ended["scorecard"]}


async def _play_well(hotline: Hotline, headers: dict[str, str], scenario: str) -> dict[str, Any]:
    """A practice call played as the training asks."""
    call = await _start(hotline, headers, scenario)
    cid = call["id"]
    if scenario in ("returning_donor", "long_name", "card"):
        fields: dict[str, Any] = {}
        if scenario == "long_name":
            fields = {
                "first_name": "Anne-Sophie",
                "last_name": "Vanderhaeghen - Oudenaarde",
                "address": "12 rue des Tanneurs",
                "email": "as.vdh@example.org",
                "amount_minor": 2000,
                "frequency": "monthly",
            }
        elif scenario == "card":
            fields = {"first_name": "Jean", "last_name": "Martin", "amount_minor": 3000}
        saved = await _pledge(hotline, headers, cid, **fields)
        # Read back as said over the phone: lower case, no dash.
        spoken = saved["reference"].replace("-", " ").lower()
        await _act(hotline, headers, cid, action="read_back", reference=spoken)
    elif scenario == "prank":
        flagged = await _act(hotline, headers, cid, action="flag_prank")
        assert flagged["script"]["name"] == "prank-close"
        await _act(
            hotline, headers, cid, action="script_choice", script="prank-close", button="end-call"
        )
    elif scenario == "distress":
        handed = await _act(hotline, headers, cid, action="needs_support")
        assert handed["script"]["name"] == "handover"
    return await _end(hotline, headers, cid)


async def _figures(hotline: Hotline, setup: dict[str, Any]) -> dict[str, Any]:
    """Every real figure: totals, the export, queue statistics, blocklist, board, tables."""
    cid, http = setup["campaign_id"], hotline.http
    queue_id = (await http.get("/queues", params={"campaign_id": cid})).json()[0]["id"]
    export = await http.get("/pledges/export.csv", params={"campaign_id": cid})
    assert export.status_code == 200, export.text
    stats = (await http.get(f"/queues/{queue_id}/stats")).json()
    stats.pop("as_of", None)
    tables = {}
    for table in (
        "calls",
        "pledges",
        "pledge_audit",
        "pledge_rollups",
        "number_blocks",
        "telephony_commands",
        "screen_pops",
    ):
        tables[table] = (await hotline.sql(f"SELECT COUNT(*) FROM {table}"))[0][0]
    counters = await hotline.sql(
        "SELECT SUM(count), SUM(promised_minor) FROM pledge_rollups"
        " WHERE campaign_id = :c AND dimension = 'all'",
        c=cid,
    )
    return {
        "totals": (await http.get("/pledges/totals", params={"campaign_id": cid})).json(),
        "export": export.text,
        "stats": stats,
        "blocklist": (await http.get(f"/campaigns/{cid}/blocklist")).json(),
        "board": {
            k: v
            for k, v in (await http.get("/board/totals", params={"campaign_id": cid}))
            .json()
            .items()
            if k != "updated_at"
        },
        "pledges": (await http.get("/pledges", params={"campaign_id": cid})).json(),
        "calls": (await http.get("/calls", params={"campaign_id": cid})).json(),
        "tables": tables,
        "counters": [tuple(row) for row in counters],
        "trained": [
            a["trained"] for a in (await http.get("/agents", params={"campaign_id": cid})).json()
        ],
    }


async def test_fifty_practice_calls_leave_every_real_figure_unchanged(hotline: Hotline) -> None:
    setup = await _volunteer(hotline)
    # Real activity first, so that the figures are not all zero: a pledge and a block.
    real_agent = setup["agent_ids"][1]
    real_call = await connected_call(hotline, real_agent, "real-1")
    real_headers = await user_headers(
        hotline, Role.AGENT, campaign_id=setup["campaign_id"], agent_id=real_agent
    )
    r = await hotline.http.post(
        "/pledges", json=pledge_body(real_call), headers={**real_headers, **key()}
    )
    assert r.status_code == 201, r.text
    r = await hotline.http.post(
        f"/campaigns/{setup['campaign_id']}/blocklist", json={"number": "0699999999"}
    )
    assert r.status_code == 201, r.text
    # The second volunteer is trained already, the first not: trained flags must not move
    # either (passes_to_train is raised so that 50 calls train nobody).
    hotline.settings.practice_passes_to_train = 100
    before = await _figures(hotline, setup)

    headers = setup["headers"]
    scenarios = itertools.cycle(["returning_donor", "long_name", "prank", "distress", "card"])
    results = []
    for n in range(50):
        scenario = next(scenarios)
        if n % 7 == 3:
            # A badly played call: a card number typed, a pledge on a prank, a strike's worth.
            call = await _start(hotline, headers, scenario)
            r = await hotline.http.post(
                f"/practice/calls/{call['id']}/pledge",
                json={"last_name": "X", "note": f"card {CARD}", "amount_minor": 1000},
                headers=headers,
            )
            assert (r.status_code, r.json()["code"]) == (422, "card_number")
            await _pledge(hotline, headers, call["id"], amount_minor=999_900)
            await _act(hotline, headers, call["id"], action="flag_prank")
            ended = await _end(hotline, headers, call["id"])
            assert ended["passed"] is False
        else:
            ended = await _play_well(hotline, headers, scenario)
            assert ended["passed"] is True, ended["scorecard"]
        results.append(ended["passed"])
    assert results.count(True) > 40

    after = await _figures(hotline, setup)
    assert after == before
    rows = await hotline.sql("SELECT COUNT(*) FROM practice_calls")
    assert rows[0][0] == 50


async def test_each_scenario_has_its_scorecard(hotline: Hotline) -> None:
    setup = await _volunteer(hotline)
    headers = setup["headers"]
    scenarios = (await hotline.http.get("/practice/scenarios", headers=headers)).json()
    assert {s["name"] for s in scenarios} == {
        "returning_donor",
        "long_name",
        "prank",
        "distress",
        "card",
    }

    # The returning donor: the real pop, the real script; a good call passes both criteria.
    call = await _start(hotline, headers, "returning_donor")
    assert call["pop"]["returning_donor"] is True
    assert call["pop"]["fields"]["last_name"]["value"] == "Lefèvre"
    assert call["script"]["name"] == "pledge"
    assert call["lines"]
    await hotline.http.post(f"/practice/calls/{call['id']}/end", headers=headers)
    good = await _play_well(hotline, headers, "returning_donor")
    assert _score(good) == {"form_complete": True, "reference_read_back": True}

    # The long name misspelt, the reference not read back.
    call = await _start(hotline, headers, "long_name")
    await _pledge(
        hotline,
        headers,
        call["id"],
        last_name="Vanderhagen-Oudenaarde",
        amount_minor=2000,
        frequency="monthly",
    )
    ended = await _end(hotline, headers, call["id"])
    assert _score(ended) == {"form_complete": False, "reference_read_back": False}
    assert "Vanderhaeghen-Oudenaarde" in ended["scorecard"][0]["words"]
    assert ended["passed"] is False

    # The real checks of a pledge apply: the campaign minimum, the donor's postcode.
    call = await _start(hotline, headers, "card")
    r = await hotline.http.post(
        f"/practice/calls/{call['id']}/pledge",
        json={"last_name": "Martin", "email": "j@example.org", "amount_minor": 0},
        headers=headers,
    )
    assert (r.status_code, r.json()["field"]) == (422, "amount_minor")
    r = await hotline.http.post(
        f"/practice/calls/{call['id']}/pledge",
        json={
            "last_name": "Martin",
            "email": "j@example.org",
            "amount_minor": 3000,
            "postcode": "1",
        },
        headers=headers,
    )
    assert (r.status_code, r.json()["field"]) == (422, "postcode")
    # A card number: refused as on a real call, never stored, and counted.
    r = await hotline.http.post(
        f"/practice/calls/{call['id']}/pledge",
        json={"first_name": "Jean", "last_name": "Martin", "note": CARD, "amount_minor": 3000},
        headers=headers,
    )
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (422, "card_number", "note")
    assert CARD not in r.text
    saved = await _pledge(hotline, headers, call["id"], last_name="Martin", amount_minor=3000)
    await _act(hotline, headers, call["id"], action="read_back", reference=saved["reference"])
    ended = await _end(hotline, headers, call["id"])
    assert _score(ended) == {
        "form_complete": True,
        "reference_read_back": True,
        "card_refused": False,
    }
    rows = await hotline.sql(
        "SELECT actions, draft FROM practice_calls WHERE id = :i", i=call["id"]
    )
    assert "4111" not in str(rows[0])
    good = await _play_well(hotline, headers, "card")
    assert _score(good)["card_refused"] is True

    # A prank flagged but not closed with the script; then one closed properly.
    call = await _start(hotline, headers, "prank")
    await _act(hotline, headers, call["id"], action="flag_prank")
    ended = await _end(hotline, headers, call["id"])
    assert _score(ended) == {"prank_closed": False}
    assert _score(await _play_well(hotline, headers, "prank")) == {"prank_closed": True}

    # Distress: a pledge form instead of the hand-over fails; the hand-over passes.
    call = await _start(hotline, headers, "distress")
    await _pledge(hotline, headers, call["id"])
    ended = await _end(hotline, headers, call["id"])
    assert _score(ended) == {"handover_used": False}
    assert _score(await _play_well(hotline, headers, "distress")) == {"handover_used": True}


async def test_practice_rules_who_when_and_what(hotline: Hotline) -> None:
    setup = await _volunteer(hotline)
    headers, agent_id = setup["headers"], setup["agent_id"]
    # An available volunteer is paused for practice, in the same transaction.
    assert (await hotline.http.post(f"/agents/{agent_id}/ready")).status_code == 200
    call = await _start(hotline, headers, "prank")
    agent = (await hotline.http.get(f"/agents/{agent_id}")).json()
    assert (agent["state"], agent["pause_reason"]) == ("paused", "practice")
    # One practice call at a time.
    again = await hotline.http.post("/practice/calls", json={"scenario": "card"}, headers=headers)
    assert (again.status_code, again.json()["code"]) == (409, "practice_open")
    unknown = await hotline.http.post("/practice/calls", json={"scenario": "nope"}, headers=headers)
    assert (unknown.status_code, unknown.json()["field"]) == (422, "scenario")
    # Another volunteer's practice call is not theirs; a supervisor and an admin read it.
    other = await user_headers(
        hotline, Role.AGENT, campaign_id=setup["campaign_id"], agent_id=setup["agent_ids"][1]
    )
    r = await hotline.http.post(f"/practice/calls/{call['id']}/end", headers=other)
    assert (r.status_code, r.json()["code"]) == (403, "not_yours")
    supervisor = await user_headers(hotline, Role.SUPERVISOR, campaign_id=setup["campaign_id"])
    r = await hotline.http.get(f"/practice/calls/{call['id']}", headers=supervisor)
    assert r.status_code == 200 and r.json()["scenario"]["name"] == "prank"
    listed = await hotline.http.get("/practice/calls", headers=supervisor)
    assert [c["id"] for c in listed.json()] == [call["id"]]
    assert (await hotline.http.get("/practice/calls", headers=other)).json() == []
    # An admin has no agent: no practice call of their own.
    r = await hotline.http.post("/practice/calls", json={"scenario": "card"})
    assert (r.status_code, r.json()["code"]) == (403, "volunteers_only")
    await _end(hotline, headers, call["id"])
    r = await hotline.http.post(f"/practice/calls/{call['id']}/end", headers=headers)
    assert (r.status_code, r.json()["code"]) == (409, "practice_ended")

    # A volunteer on a real call cannot start a practice call.
    await connected_call(hotline, agent_id, "real-busy")
    r = await hotline.http.post("/practice/calls", json={"scenario": "card"}, headers=headers)
    assert (r.status_code, r.json()["code"]) == (409, "on_a_call")


async def test_a_volunteer_is_trained_after_enough_passes(hotline: Hotline) -> None:
    hotline.settings.practice_passes_to_train = 2
    setup = await _volunteer(hotline)
    headers, agent_id = setup["headers"], setup["agent_id"]
    await hotline.http.patch(f"/agents/{agent_id}", json={"trained": False})
    failed = await _start(hotline, headers, "distress")
    assert (await _end(hotline, headers, failed["id"]))["passed"] is False
    first = await _play_well(hotline, headers, "prank")
    assert (first["passed"], first["trained"], first["passes"]) == (True, False, 1)
    assert (await hotline.http.get(f"/agents/{agent_id}")).json()["trained"] is False
    second = await _play_well(hotline, headers, "card")
    assert (second["trained"], second["passes"], second["passes_needed"]) == (True, 2, 2)
    assert (await hotline.http.get(f"/agents/{agent_id}")).json()["trained"] is True
    events = await hotline.sql(
        "SELECT COUNT(*) FROM events WHERE type = 'agent.trained' AND agent_id = :a", a=agent_id
    )
    assert events[0][0] == 1


async def offered_to(hotline: Hotline, call_id: int, agent_id: int) -> bool:
    rows = await hotline.sql("SELECT state, agent_id FROM calls WHERE id = :c", c=call_id)
    return tuple(rows[0]) == ("offered", agent_id)


async def test_a_trained_only_queue_refuses_untrained_volunteers(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=2, queue={"trained_only": True})
    queue = (await hotline.http.get("/queues", params={"campaign_id": setup["campaign_id"]})).json()
    assert queue[0]["trained_only"] is True
    untrained, trained = setup["agent_ids"]
    await hotline.http.patch(f"/agents/{untrained}", json={"trained": False})
    await hotline.http.patch(f"/agents/{trained}", json={"trained": True})
    # The untrained volunteer is free (and free the longest): the call waits for them not.
    assert (await hotline.http.post(f"/agents/{untrained}/ready")).status_code == 200
    r = await hotline.incoming("trained-1", caller="0611111111")
    call = r.json()["call"]
    assert (call["state"], call["agent_id"]) == ("queued", None)
    # The trained volunteer going ready takes it (the agent's side of the matching;
    # on PostgreSQL the offer may come from the dispatcher a moment later).
    assert (await hotline.http.post(f"/agents/{trained}/ready")).status_code == 200
    await wait_for(lambda: offered_to(hotline, call["id"], trained))
    # A second call, the trained volunteer busy: it waits rather than go to the untrained.
    r = await hotline.incoming("trained-2", caller="0622222222")
    second = r.json()["call"]
    assert (second["state"], second["agent_id"]) == ("queued", None)
    # Switched off, the queue offers it to anyone (the agent's side again).
    r = await hotline.http.patch(f"/queues/{queue[0]['id']}", json={"trained_only": False})
    assert r.status_code == 200 and r.json()["trained_only"] is False
    await hotline.http.post(f"/agents/{untrained}/pause", json={})
    assert (await hotline.http.post(f"/agents/{untrained}/ready")).status_code == 200
    await wait_for(lambda: offered_to(hotline, second["id"], untrained))
