"""Expected-wait announcements and callbacks that keep the caller's place, end to end:
signed webhook in, REST for the volunteer, tables and the statistics endpoint out.

Background work is off: matches are made in the steps' own transactions, and the
timers (announcements, retries, expiry) are driven by moving their due time to the
past and running the timer worker's own pass (``fire_due_timers``), so every test
is deterministic and asserts no timing. Both databases.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import textwrap
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.acd.models import Timer
from app.acd.worker import fire_due_timers
from app.db import utcnow
from tests.conftest import Hotline, setup_campaign

Factory = Callable[..., Awaitable[Hotline]]


@pytest.fixture
async def line(hotline_factory: Factory) -> Hotline:
    return await hotline_factory(background_workers=False)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def ready(h: Hotline, agent_id: int) -> None:
    ok(await h.http.post(f"/agents/{agent_id}/ready"))


_callers = itertools.count(1)


async def arrive(h: Hotline, provider_id: str) -> dict[str, Any]:
    """A call comes in from a caller of its own (the shipped rules turn repeat callers
    away); its row as the webhook answered it."""
    caller = f"01{next(_callers):08d}"
    call: dict[str, Any] = ok(await h.incoming(provider_id, caller=caller))["call"]
    return call


async def call_row(h: Hotline, call_id: int) -> dict[str, Any]:
    row: dict[str, Any] = ok(await h.http.get(f"/calls/{call_id}"))
    return row


async def plays(h: Hotline, provider_id: str) -> list[dict[str, Any]]:
    rows = await h.sql(
        "select args from telephony_commands where provider_call_id = :p and command = 'play'"
        " order by id",
        p=provider_id,
    )
    return [_json(r[0]) for r in rows]


async def commands(h: Hotline, provider_id: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await h.sql(
        "select command, args from telephony_commands where provider_call_id = :p order by id",
        p=provider_id,
    )
    return [(r[0], _json(r[1])) for r in rows]


async def events(h: Hotline, type: str, call_id: int | None = None) -> list[dict[str, Any]]:
    query = "select data from events where type = :t"
    if call_id is not None:
        query += " and call_id = :c"
    rows = await h.sql(query + " order by seq", t=type, c=call_id)
    return [_json(r[0]) for r in rows]


async def timer_kinds(h: Hotline, call_id: int) -> list[str]:
    rows = await h.sql("select kind from timers where call_id = :c order by id", c=call_id)
    return [r[0] for r in rows]


async def fire(h: Hotline, kind: str, call_id: int | None = None) -> int:
    """Make the timers of ``kind`` (of one call) due now and run the worker's pass."""
    async with h.db.unit_of_work() as uow:
        stmt = update(Timer).where(Timer.kind == kind)
        if call_id is not None:
            stmt = stmt.where(Timer.call_id == call_id)
        await uow.session.execute(stmt.values(due_at=utcnow() - dt.timedelta(seconds=1)))
    fired, _next = await fire_due_timers(h.db)
    return fired


async def stats(h: Hotline, queue_id: int) -> dict[str, Any]:
    figures: dict[str, Any] = ok(await h.http.get(f"/queues/{queue_id}/stats"))
    return figures


async def press(h: Hotline, provider_id: str, digit: str, **extra: Any) -> httpx.Response:
    return await h.telephony({"type": "call.dtmf", "call_id": provider_id, "digit": digit, **extra})


async def offered_to(h: Hotline, agent_id: int) -> dict[str, Any] | None:
    rows = await h.sql("select id from calls where agent_id = :a and state = 'offered'", a=agent_id)
    return await call_row(h, rows[0][0]) if rows else None


async def agent_state(h: Hotline, agent_id: int) -> str:
    state: str = ok(await h.http.get(f"/agents/{agent_id}"))["state"]
    return state


async def talk_and_finish(h: Hotline, agent_id: int, call: dict[str, Any]) -> None:
    """The volunteer takes the call offered to them (a callback: accepts it and the
    caller answers the platform's dial), talks, hangs up and ends the wrap-up."""
    call = await call_row(h, call["id"])
    provider_id = call["provider_call_id"]
    if call["kind"] == "callback":
        ok(await h.http.post(f"/agents/{agent_id}/answer"))
        answered = await h.telephony(
            {"type": "dial.answered", "call_id": provider_id, "callback_id": call["id"]}
        )
        assert ok(answered)["call"]["state"] == "connected"
    else:
        ok(await h.telephony({"type": "seat.answered", "call_id": provider_id}))
    ok(await h.telephony({"type": "call.hangup", "call_id": provider_id}))
    ok(await h.http.post(f"/agents/{agent_id}/wrap-up/end", json={}))


async def callback_of(h: Hotline, call_id: int) -> dict[str, Any]:
    rows = await h.sql(
        "select id from calls where parent_call_id = :c and kind = 'callback'", c=call_id
    )
    assert len(rows) == 1, rows
    return await call_row(h, rows[0][0])


# --- announcements ----------------------------------------------------------------


async def test_the_wait_is_announced_on_entry_and_at_the_interval(line: Hotline) -> None:
    setup = await setup_campaign(line, agents=2, queue={"wait_announce_seconds": 45})
    for agent_id in setup["agent_ids"]:
        await ready(line, agent_id)
    assert (await arrive(line, "w-1"))["state"] == "offered"
    assert (await arrive(line, "w-2"))["state"] == "offered"
    # Both volunteers are serving (reserved), none is free; no handle time measured
    # yet: 180 s. First in line: (1 - 0) x 180 / 2 = 90 s; second: 180 s.
    third = await arrive(line, "w-3")
    fourth = await arrive(line, "w-4")
    assert third["state"] == fourth["state"] == "queued"
    assert await plays(line, "w-3") == [
        {"message": "hold"},
        {"prompt": "expected_wait", "seconds": 90, "minutes": 2},
    ]
    assert await plays(line, "w-4") == [
        {"message": "hold"},
        {"prompt": "expected_wait", "seconds": 180, "minutes": 3},
    ]
    # Calls put through at once hear no wait.
    assert await plays(line, "w-1") == [{"message": "hold"}]
    assert await timer_kinds(line, third["id"]) == ["wait_announce"]
    announced = await events(line, "call.expected_wait", third["id"])
    assert [e["expected_wait_seconds"] for e in announced] == [90.0]

    # The interval: announced again, and the next announcement planned.
    assert await fire(line, "wait_announce") == 2
    assert (await plays(line, "w-3"))[-1] == {
        "prompt": "expected_wait",
        "seconds": 90,
        "minutes": 2,
    }
    assert len(await plays(line, "w-3")) == 3
    assert len(await plays(line, "w-4")) == 3
    assert await timer_kinds(line, third["id"]) == ["wait_announce"]

    # The first caller in line hangs up: the second is first now, and hears so.
    ok(await line.telephony({"type": "call.hangup", "call_id": "w-3"}))
    assert await timer_kinds(line, third["id"]) == []
    assert await fire(line, "wait_announce") == 1
    assert (await plays(line, "w-4"))[-1] == {
        "prompt": "expected_wait",
        "seconds": 90,
        "minutes": 2,
    }

    figures = await stats(line, setup["queue_id"])
    assert figures["expected_wait_seconds"] == 180.0  # E(waiting + 1) = 2 x 180 / 2
    assert figures["serving_agents"] == 2 and figures["free_agents"] == 0
    assert figures["handle_seconds"] == 180.0
    assert figures["waiting_list"] == [
        {"call_id": fourth["id"], "kind": "inbound", "position": 1, "expected_wait_seconds": 90.0}
    ]


async def test_an_unknown_wait_gets_its_own_prompt(line: Hotline) -> None:
    setup = await setup_campaign(line, agents=1)  # logged in but paused: not serving
    call = await arrive(line, "u-1")
    assert call["state"] == "queued"
    assert await plays(line, "u-1") == [{"message": "hold"}, {"prompt": "expected_wait_unknown"}]
    figures = await stats(line, setup["queue_id"])
    assert figures["expected_wait_seconds"] is None
    assert figures["waiting_list"] == [
        {"call_id": call["id"], "kind": "inbound", "position": 1, "expected_wait_seconds": None}
    ]


async def test_announcements_can_be_turned_off(line: Hotline) -> None:
    await setup_campaign(line, agents=0, queue={"wait_announce_seconds": 0})
    call = await arrive(line, "off-1")
    assert await plays(line, "off-1") == [{"message": "hold"}]
    assert await timer_kinds(line, call["id"]) == []
    assert await events(line, "call.expected_wait") == []


async def test_the_handle_time_is_measured_from_recent_calls(line: Hotline) -> None:
    setup = await setup_campaign(line, agents=1)
    (agent_id,) = setup["agent_ids"]
    await ready(line, agent_id)
    for n in range(5):
        call = await arrive(line, f"h-{n}")
        await talk_and_finish(line, agent_id, call)
    # Five finished calls: their mean talk + wrap-up replaces the default 180 s.
    async with line.db.unit_of_work() as uow:
        from app.acd.models import Call

        answered = utcnow() - dt.timedelta(minutes=5)
        await uow.session.execute(
            update(Call)
            .where(Call.provider_call_id.like("h-%"))
            .values(answered_at=answered, ended_at=answered + dt.timedelta(seconds=60))
        )
    figures = await stats(line, setup["queue_id"])
    assert figures["handle_seconds"] == 60.0
    assert figures["expected_wait_seconds"] == 0.0  # the volunteer is free
    busy = await arrive(line, "h-busy")
    assert busy["state"] == "offered"
    waiting = await arrive(line, "h-wait")
    assert (await plays(line, "h-wait"))[-1] == {
        "prompt": "expected_wait",
        "seconds": 60,
        "minutes": 1,
    }
    assert waiting["state"] == "queued"


# --- facts and the rule action -------------------------------------------------------


RULES = textwrap.dedent(
    """\
    rules:
      - name: long-wait
        on: call.queued
        when: >-
          call.expected_wait_seconds == 90.0 && queue.waiting == 1
          && queue.expected_wait_seconds == 180.0
        then:
          - tag: long_wait
          - offer_callback
      - name: nobody-there
        on: call.queued
        when: call.expected_wait_seconds == -1.0 && queue.expected_wait_seconds == -1.0
        then:
          - tag: unknown_wait
    """
)


async def test_the_wait_facts_and_the_offer_callback_action(line: Hotline) -> None:
    setup = await setup_campaign(line, agents=2)
    url = f"/campaigns/{setup['campaign_id']}/rules"
    ok(await line.http.put(url, json={"source": RULES}))
    # Nobody serving yet: the waits are unknown (-1).
    first = await arrive(line, "f-0")
    assert (await call_row(line, first["id"]))["tags"] == ["unknown_wait"]
    ok(await line.telephony({"type": "call.hangup", "call_id": "f-0"}))
    for agent_id in setup["agent_ids"]:
        await ready(line, agent_id)
    one, two = await arrive(line, "f-1"), await arrive(line, "f-2")
    assert one["state"] == two["state"] == "offered"
    assert "long_wait" not in (await call_row(line, one["id"]))["tags"]
    third = await arrive(line, "f-3")  # first in line, both volunteers busy
    row = await call_row(line, third["id"])
    assert "long_wait" in row["tags"]
    # The queue offers no callback (no threshold): the rule did, once.
    assert row["callback_digit"] == "1"
    offers = [p for p in await plays(line, "f-3") if p.get("prompt") == "callback_offer"]
    assert offers == [{"prompt": "callback_offer", "digit": "1"}]
    assert [e["by"] for e in await events(line, "callback.offered", third["id"])] == [
        "rule:long-wait"
    ]
    # The second in line waits 180 s: the rule's exact figures do not hold.
    fourth = await arrive(line, "f-4")
    assert "long_wait" not in (await call_row(line, fourth["id"]))["tags"]


# --- the callback offer and the caller's place --------------------------------------


async def test_a_long_wait_is_offered_a_callback_and_a_short_one_is_not(line: Hotline) -> None:
    setup = await setup_campaign(
        line, agents=2, queue={"callback_offer_seconds": 120, "callback_digit": "9"}
    )
    for agent_id in setup["agent_ids"]:
        await ready(line, agent_id)
    await arrive(line, "o-1")
    await arrive(line, "o-2")
    short = await arrive(line, "o-3")  # 90 s: not offered
    long = await arrive(line, "o-4")  # 180 s: offered
    assert (await call_row(line, short["id"]))["callback_digit"] is None
    assert (await call_row(line, long["id"]))["callback_digit"] == "9"
    assert await plays(line, "o-4") == [
        {"message": "hold"},
        {"prompt": "expected_wait", "seconds": 180, "minutes": 3},
        {"prompt": "callback_offer", "digit": "9"},
    ]
    # Offered once: the next announcement does not offer again.
    await fire(line, "wait_announce")
    assert [p.get("prompt") for p in await plays(line, "o-4")].count("callback_offer") == 1


async def test_a_callback_keeps_the_callers_place(line: Hotline) -> None:
    """A callback requested at position 5 is offered fifth, ahead of later calls."""
    setup = await setup_campaign(line, agents=1, queue={"callback_offer_seconds": 0})
    (agent_id,) = setup["agent_ids"]
    await ready(line, agent_id)
    busy = await arrive(line, "p-0")
    ok(await line.telephony({"type": "seat.answered", "call_id": "p-0"}))
    waiting = [await arrive(line, f"p-{n}") for n in range(1, 6)]
    assert all(c["state"] == "queued" for c in waiting)
    fifth = waiting[4]
    requested = ok(await press(line, "p-5", "1"))
    callback = await callback_of(line, fifth["id"])
    assert requested["callback_id"] == callback["id"]
    later = [await arrive(line, f"p-{n}") for n in (6, 7)]

    # The call ended as its own kind; its callback took its place (same queued time).
    ended = await call_row(line, fifth["id"])
    assert ended["state"] == "callback_requested"
    assert ended["end_reason"] == "callback_requested"
    assert callback["state"] == "queued" and callback["queued_at"] == ended["queued_at"]
    assert callback["caller_number"] == ended["caller_number"] is not None
    assert (await commands(line, "p-5"))[-2:] == [
        ("play", {"prompt": "callback_confirmed"}),
        ("hangup", {}),
    ]
    expected_order = [c["id"] for c in waiting[:4]] + [callback["id"]] + [c["id"] for c in later]
    figures = await stats(line, setup["queue_id"])
    assert [w["call_id"] for w in figures["waiting_list"]] == expected_order
    assert figures["waiting_list"][4] == {
        "call_id": callback["id"],
        "kind": "callback",
        "position": 5,
        "expected_wait_seconds": 900.0,  # 5 x 180 / 1
    }
    assert figures["calls_waiting"] == 6  # callers on the line
    assert figures["callbacks"]["requested"] == 1 and figures["callbacks"]["waiting"] == 1

    # Served one by one: the callback comes fifth.
    served = []
    await talk_and_finish(line, agent_id, busy)
    while (offer := await offered_to(line, agent_id)) is not None:
        served.append(offer["id"])
        await talk_and_finish(line, agent_id, offer)
    assert served == expected_order

    done = await call_row(line, callback["id"])
    assert done["state"] == "completed" and done["dial_attempts"] == 1
    (dial,) = [c for c in await commands(line, callback["provider_call_id"]) if c[0] == "dial"]
    assert dial[1]["number"] == ended["caller_number"]
    assert dial[1]["callback_id"] == callback["id"]
    assert dial[1]["agent_id"] == agent_id
    assert dial[1]["ring_seconds"] == 15  # the queue's ring timeout, for the seat
    figures = await stats(line, setup["queue_id"])
    # The requested call is neither answered nor abandoned; the callback is its own kind.
    assert figures["answered"] == 7 and figures["abandoned"] == 0
    assert figures["callbacks"] == {
        "requested": 1,
        "waiting": 0,
        "in_progress": 0,
        "completed": 1,
        "failed": 0,
        "expired": 0,
        "not_completed": [],
    }


# --- DTMF: idempotent, and bad input changes nothing -------------------------------


async def _footprint(h: Hotline) -> tuple[Any, ...]:
    return (
        await h.sql("select id, state, callback_digit from calls order by id"),
        await h.sql("select count(*) from events"),
        await h.sql("select count(*) from telephony_commands"),
        await h.sql("select count(*) from timers"),
    )


async def test_dtmf_is_idempotent_and_bad_input_changes_nothing(line: Hotline) -> None:
    await setup_campaign(line, agents=0, queue={"callback_offer_seconds": 0})
    call = await arrive(line, "d-1")
    assert (await call_row(line, call["id"]))["callback_digit"] == "1"
    before = await _footprint(line)

    for body in (
        {"type": "call.dtmf", "call_id": "d-1", "digit": "x"},
        {"type": "call.dtmf", "call_id": "d-1", "digit": "12"},
        {"type": "call.dtmf", "call_id": "d-1"},
        {"type": "call.dtmf", "call_id": "d-1", "digit": "1", "extra": True},
    ):
        r = await line.telephony(body)
        assert r.status_code == 422, r.text
        assert {"code", "message", "field"} <= set(r.json())
    unknown = await press(line, "nobody", "1")
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_call"
    unsigned = await line.telephony(
        {"type": "call.dtmf", "call_id": "d-1", "digit": "1"}, sign=False
    )
    assert unsigned.status_code == 401
    assert await _footprint(line) == before

    # A key that is not the offered one: acknowledged, nothing changes.
    other = ok(await press(line, "d-1", "2"))
    assert other["callback_id"] is None and other["call"]["state"] == "queued"

    first = await press(line, "d-1", "1", event_id="press-once")
    again = await press(line, "d-1", "1", event_id="press-once")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    reused = await press(line, "d-1", "2", event_id="press-once")
    assert reused.status_code == 409 and reused.json()["code"] == "event_id_reused"
    rows = await line.sql("select count(*) from calls where kind = 'callback'")
    assert rows[0][0] == 1
    # The call has ended: a later press (a new event) changes nothing.
    late = ok(await press(line, "d-1", "1"))
    assert late["callback_id"] is None
    assert (await line.sql("select count(*) from calls where kind = 'callback'"))[0][0] == 1


async def test_no_callback_without_an_offer_or_a_number(line: Hotline) -> None:
    setup = await setup_campaign(line, agents=0, queue={"callback_offer_seconds": 0})
    withheld = ok(await line.incoming("n-1", caller=None))["call"]
    assert (await call_row(line, withheld["id"]))["callback_digit"] is None
    assert ok(await press(line, "n-1", "1"))["callback_id"] is None
    ok(await line.http.patch(f"/queues/{setup['queue_id']}", json={"callback_offer_seconds": None}))
    plain = await arrive(line, "n-2")
    assert (await call_row(line, plain["id"]))["callback_digit"] is None
    assert ok(await press(line, "n-2", "1"))["callback_id"] is None
    assert (await line.sql("select count(*) from calls where kind = 'callback'"))[0][0] == 0


# --- dialling outcomes ---------------------------------------------------------------


async def _callback_ready_for(
    line: Hotline, queue: dict[str, Any]
) -> tuple[int, int, dict[str, Any]]:
    """A callback requested while the only volunteer was busy, now offered to them."""
    setup = await setup_campaign(line, agents=1, queue={"callback_offer_seconds": 0, **queue})
    (agent_id,) = setup["agent_ids"]
    await ready(line, agent_id)
    busy = await arrive(line, "x-0")
    ok(await line.telephony({"type": "seat.answered", "call_id": "x-0"}))
    waiting = await arrive(line, "x-1")
    ok(await press(line, "x-1", "1"))
    callback = await callback_of(line, waiting["id"])
    ok(await line.telephony({"type": "call.hangup", "call_id": busy["provider_call_id"]}))
    ok(await line.http.post(f"/agents/{agent_id}/wrap-up/end", json={}))
    offer = await offered_to(line, agent_id)
    assert offer is not None and offer["id"] == callback["id"]
    return setup["queue_id"], agent_id, callback


async def test_an_unanswered_callback_is_retried_then_failed_and_reported(line: Hotline) -> None:
    queue_id, agent_id, callback = await _callback_ready_for(
        line, {"callback_retries": 1, "callback_retry_seconds": 30}
    )
    cb_id, provider_id = callback["id"], callback["provider_call_id"]
    offered = await events(line, "call.offered", cb_id)
    assert offered[-1]["kind"] == "callback" and offered[-1]["auto_answer"] is False
    # No bridge: there is no caller on the line until the platform dials.
    assert [c[0] for c in await commands(line, provider_id)] == []

    ok(await line.http.post(f"/agents/{agent_id}/answer"))
    assert (await call_row(line, cb_id))["state"] == "dialing"
    assert await agent_state(line, agent_id) == "reserved"
    assert sorted(await timer_kinds(line, cb_id)) == ["callback_expiry", "dial_timeout"]
    unanswered = {"type": "dial.unanswered", "call_id": provider_id, "callback_id": cb_id}
    assert ok(await line.telephony(unanswered))["call"]["state"] == "retry_wait"
    # The volunteer is free again at once (nothing to wrap up).
    assert await agent_state(line, agent_id) == "available"
    assert sorted(await timer_kinds(line, cb_id)) == ["callback_expiry", "callback_retry"]
    assert (await events(line, "callback.unanswered", cb_id))[0]["next"] == "retry"

    # The retry: back in its place, offered to the free volunteer, dialled again.
    assert await fire(line, "callback_retry") == 1
    assert (await call_row(line, cb_id))["state"] == "offered"
    ok(await line.http.post(f"/agents/{agent_id}/answer"))
    assert len([c for c in await commands(line, provider_id) if c[0] == "dial"]) == 2
    final = ok(await line.telephony(unanswered))
    assert final["call"]["state"] == "failed"
    row = await call_row(line, cb_id)
    assert row["end_reason"] == "callback_unanswered" and row["dial_attempts"] == 2
    assert await agent_state(line, agent_id) == "available"
    assert await timer_kinds(line, cb_id) == []
    assert [e["attempts"] for e in await events(line, "callback.failed", cb_id)] == [2]
    alerts = await events(line, "supervisor.alert", cb_id)
    assert [a["reason"] for a in alerts] == ["callback_failed"]
    # A repeat (a new delivery of the outcome) changes nothing.
    repeat = ok(await line.telephony(unanswered))
    assert repeat["note"] == "no change: callback is failed"

    figures = (await stats(line, queue_id))["callbacks"]
    assert figures["failed"] == 1 and figures["completed"] == 0 and figures["waiting"] == 0
    assert [(c["callback_id"], c["state"], c["attempts"]) for c in figures["not_completed"]] == [
        (cb_id, "failed", 2)
    ]


async def test_a_dial_the_platform_never_reports_counts_as_unanswered(line: Hotline) -> None:
    _queue_id, agent_id, callback = await _callback_ready_for(line, {"callback_retries": 0})
    ok(await line.http.post(f"/agents/{agent_id}/answer"))
    assert await fire(line, "dial_timeout") == 1
    row = await call_row(line, callback["id"])
    assert row["state"] == "failed"
    (event,) = await events(line, "callback.unanswered", callback["id"])
    assert event["reason"] == "no_answer_from_platform"
    assert await agent_state(line, agent_id) == "available"


async def test_dial_outcomes_for_no_such_callback_are_refused(line: Hotline) -> None:
    _queue_id, agent_id, callback = await _callback_ready_for(line, {})
    ok(await line.http.post(f"/agents/{agent_id}/answer"))
    before = await _footprint(line)
    for body, status in (
        ({"type": "dial.answered", "call_id": "elsewhere", "callback_id": callback["id"]}, 404),
        (
            {
                "type": "dial.answered",
                "call_id": callback["provider_call_id"],
                "callback_id": 99999,
            },
            404,
        ),
        ({"type": "dial.answered", "call_id": callback["provider_call_id"]}, 422),
        ({"type": "dial.unanswered", "call_id": "x", "callback_id": 0}, 422),
        ({"type": "dial.unanswered", "call_id": "x", "callback_id": 1, "reason": "Busy!"}, 422),
    ):
        r = await line.telephony(body)
        assert r.status_code == status, r.text
    assert await _footprint(line) == before
    answered = {
        "type": "dial.answered",
        "call_id": callback["provider_call_id"],
        "callback_id": callback["id"],
    }
    assert ok(await line.telephony(answered))["call"]["state"] == "connected"
    assert await agent_state(line, agent_id) == "on_call"
    assert (await call_row(line, callback["id"]))["answered_at"] is not None


async def test_a_callback_offer_left_ringing_goes_back_to_its_place(line: Hotline) -> None:
    _queue_id, agent_id, callback = await _callback_ready_for(line, {})
    assert await fire(line, "ring_timeout") == 1
    # As a call would: back in the queue (at its head), the volunteer let go.
    assert (await call_row(line, callback["id"]))["state"] == "queued"
    assert (await events(line, "call.requeued", callback["id"]))[0]["reason"] == "ring_timeout"
    assert await agent_state(line, agent_id) in ("available", "paused")
    assert [c[0] for c in await commands(line, callback["provider_call_id"])] == []


# --- expiry ------------------------------------------------------------------------


async def test_a_callback_not_done_in_time_expires_and_is_reported(line: Hotline) -> None:
    setup = await setup_campaign(
        line, agents=0, queue={"callback_offer_seconds": 0, "callback_expiry_seconds": 600}
    )
    call = await arrive(line, "e-1")
    ok(await press(line, "e-1", "1"))
    callback = await callback_of(line, call["id"])
    assert await timer_kinds(line, callback["id"]) == ["callback_expiry"]
    due = await line.sql("select due_at from timers where call_id = :c", c=callback["id"])
    assert due  # set at the request, for the queue's expiry
    figures = (await stats(line, setup["queue_id"]))["callbacks"]
    assert figures["waiting"] == 1 and figures["requested"] == 1

    assert await fire(line, "callback_expiry") == 1
    row = await call_row(line, callback["id"])
    assert row["state"] == "expired" and row["end_reason"] == "callback_expired"
    assert [a["reason"] for a in await events(line, "supervisor.alert", callback["id"])] == [
        "callback_expired"
    ]
    figures = (await stats(line, setup["queue_id"]))["callbacks"]
    assert figures["expired"] == 1 and figures["waiting"] == 0
    assert figures["not_completed"][0]["state"] == "expired"
    assert (await stats(line, setup["queue_id"]))["waiting_list"] == []


async def test_an_expiry_during_a_dial_lets_the_attempt_finish(line: Hotline) -> None:
    _queue_id, agent_id, callback = await _callback_ready_for(line, {})
    ok(await line.http.post(f"/agents/{agent_id}/answer"))
    assert await fire(line, "callback_expiry") == 1
    assert (await call_row(line, callback["id"]))["state"] == "dialing"
    assert "callback_expiry" in await timer_kinds(line, callback["id"])


async def test_rules_know_a_callback_by_its_kind(line: Hotline) -> None:
    rules = textwrap.dedent(
        """\
        rules:
          - name: mark-callbacks
            on: call.offered
            when: call.kind == "callback"
            then:
              - tag: called_back
        """
    )
    _queue_id, _agent_id, callback = await _callback_ready_for_with_rules(line, rules)
    assert "called_back" in (await call_row(line, callback["id"]))["tags"]
    inbound = await line.sql("select tags from calls where kind = 'inbound'")
    assert all("called_back" not in (_json(t[0]) or []) for t in inbound)


async def _callback_ready_for_with_rules(
    line: Hotline, rules: str
) -> tuple[int, int, dict[str, Any]]:
    setup = await setup_campaign(line, agents=1, queue={"callback_offer_seconds": 0})
    ok(await line.http.put(f"/campaigns/{setup['campaign_id']}/rules", json={"source": rules}))
    (agent_id,) = setup["agent_ids"]
    await ready(line, agent_id)
    busy = await arrive(line, "k-0")
    ok(await line.telephony({"type": "seat.answered", "call_id": "k-0"}))
    waiting = await arrive(line, "k-1")
    ok(await press(line, "k-1", "1"))
    callback = await callback_of(line, waiting["id"])
    ok(await line.telephony({"type": "call.hangup", "call_id": busy["provider_call_id"]}))
    ok(await line.http.post(f"/agents/{agent_id}/wrap-up/end", json={}))
    assert (await call_row(line, callback["id"]))["state"] == "offered"
    return setup["queue_id"], agent_id, callback
