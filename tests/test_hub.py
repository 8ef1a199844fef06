"""The hub: bounded per-screen queues, so one slow screen never stalls the others."""

from __future__ import annotations

import json
from typing import Any

from app.realtime.hub import CloseCode, Hub, Screen, dumps


def _event(seq: int, agent_id: int, campaign_id: int = 1) -> dict[str, Any]:
    return {
        "type": "agent.state",
        "seq": seq,
        "at": "",
        "data": {"agent_id": agent_id, "campaign_id": campaign_id, "state": "available"},
    }


async def test_a_full_screen_is_cut_and_the_others_keep_receiving() -> None:
    hub = Hub()
    slow = Screen(kind="supervisor", campaign_id=1, agent_id=None, session_id=1, queue_size=3)
    fast = Screen(kind="supervisor", campaign_id=1, agent_id=None, session_id=2, queue_size=100)
    hub.add(slow)
    hub.add(fast)
    hub.publish([_event(n, agent_id=7) for n in range(1, 11)])
    assert slow.closing == CloseCode.SLOW_CONSUMER
    drained = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
    assert drained[-1].type == "__close__"  # the writer closes with 4008
    assert fast.closing is None
    assert [fast.queue.get_nowait().seq for _ in range(10)] == list(range(1, 11))


async def test_screens_receive_only_what_concerns_them() -> None:
    hub = Hub()
    mine = Screen(kind="agent", campaign_id=1, agent_id=7, session_id=1)
    other = Screen(kind="agent", campaign_id=1, agent_id=8, session_id=2)
    elsewhere = Screen(kind="supervisor", campaign_id=2, agent_id=None, session_id=3)
    for screen in (mine, other, elsewhere):
        hub.add(screen)
    broadcast = {
        "type": "supervisor.broadcast",
        "seq": 2,
        "at": "",
        "data": {"campaign_id": 1, "agent_id": None, "text": "hi"},
    }
    hub.publish([_event(1, agent_id=7), broadcast])
    assert [mine.queue.get_nowait().seq for _ in range(2)] == [1, 2]
    assert [other.queue.get_nowait().seq] == [2]
    assert elsewhere.queue.empty()


async def test_a_revoked_session_closes_its_screens_only() -> None:
    hub = Hub()
    revoked = Screen(kind="agent", campaign_id=1, agent_id=7, session_id=10)
    kept = Screen(kind="agent", campaign_id=1, agent_id=7, session_id=11)
    hub.add(revoked)
    hub.add(kept)
    hub.publish(
        [
            {
                "type": "auth.revoked",
                "seq": 5,
                "at": "",
                "data": {"session_id": 10, "agent_id": 7, "campaign_id": 1},
            }
        ]
    )
    assert revoked.closing == CloseCode.REVOKED
    assert kept.closing is None and kept.queue.empty()


async def test_a_message_is_encoded_once_per_kind_of_screen() -> None:
    hub = Hub()
    supervisors = [
        Screen(kind="supervisor", campaign_id=1, agent_id=None, session_id=20 + n) for n in range(3)
    ]
    agent = Screen(kind="agent", campaign_id=1, agent_id=7, session_id=30)
    for screen in (*supervisors, agent):
        hub.add(screen)
    pop = {"status": "found", "fields": {"last_name": {"value": "Dupont"}}}
    message = _event(5, agent_id=7)
    message = {**message, "type": "call.cti_ready", "data": {**message["data"], **pop}}

    hub.publish([message])

    seen = [s.queue.get_nowait() for s in supervisors]
    assert seen[0] is seen[1] is seen[2]  # one encoding shared by every supervisor
    assert "Dupont" not in seen[0].text  # their view leaves the caller's details out
    mine = agent.queue.get_nowait()
    assert json.loads(mine.text)["data"]["fields"]["last_name"]["value"] == "Dupont"
    assert (mine.type, mine.seq) == ("call.cti_ready", 5)


def test_the_audience_of_an_event_is_exactly_the_screens_that_want_it() -> None:
    hub = Hub()
    screens = [
        Screen(kind=kind, campaign_id=campaign, agent_id=agent, session_id=n)
        for n, (kind, campaign, agent) in enumerate(
            [
                ("supervisor", None, None),
                ("supervisor", 1, None),
                ("supervisor", 2, None),
                ("agent", 1, 7),
                ("agent", 1, 7),
                ("agent", 1, 8),
                ("agent", 2, 9),
            ]
        )
    ]
    for screen in screens:
        hub.add(screen)
    hub.remove(screens[4])
    hub.remove(screens[4])  # twice: harmless
    for type_ in ("agent.state", "supervisor.broadcast", "auth.revoked"):
        for campaign in (None, 1, 2, 3):
            for agent in (None, 7, 8, 9):
                for session in (0, 3, 4, 6):
                    message = {
                        "type": type_,
                        "seq": 1,
                        "at": "",
                        "data": {"campaign_id": campaign, "agent_id": agent, "session_id": session},
                    }
                    expected = {s.id for s in hub.screens if s.wants(message)}
                    audience = [s.id for s in hub.audience(message)]
                    assert sorted(audience) == sorted(expected), message
    assert {s.id for s in hub.supervisors()} == {s.id for s in screens[:3]}


def test_the_wire_text_is_the_json_screens_always_got() -> None:
    """orjson for speed, with the same text as ``json.dumps`` (compact, UTF-8, str keys)."""
    message = {
        "type": "snapshot",
        "seq": 12,
        "at": "2026-12-06T11:00:00.123456+00:00",
        "data": {"queues": {3: "dons", 4: "spécialistes"}, "agent": None, "ok": True, "n": [1, 2]},
    }
    assert dumps(message) == json.dumps(message, separators=(",", ":"), ensure_ascii=False)
