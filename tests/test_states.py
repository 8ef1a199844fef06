"""The agent and call state machines: every transition, legal or not.

The unit tests walk the full cartesian product (state x action) of both tables, so
adding a state or an action is covered without touching this file. The API tests
check that a refused transition answers 409 ``{code, message, field}`` and writes
nothing at all (no event, no command, no state change).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from app.acd.states import (
    AGENT_BUSY_STATES,
    AGENT_TRANSITIONS,
    CALL_END_STATES,
    CALL_LIVE_STATES,
    CALL_TRANSITIONS,
    AgentState,
    CallState,
    IllegalTransition,
    next_agent_state,
    next_call_state,
)
from tests.conftest import Hotline, setup_campaign, wait_for

AGENT_PAIRS = list(itertools.product(list(AgentState), sorted(AGENT_TRANSITIONS)))
CALL_PAIRS = list(itertools.product(list(CallState), sorted(CALL_TRANSITIONS)))


def _ids(pairs: list[tuple[Any, str]]) -> list[str]:
    return [f"{state.value}-{action}" for state, action in pairs]


# --- the tables themselves ---------------------------------------------------------


def test_states_are_the_designed_ones() -> None:
    assert {s.value for s in AgentState} == {
        "logged_out",
        "available",
        "reserved",
        "on_call",
        "wrap_up",
        "paused",
        # The warm hand-over (docs/telephony.md#the-warm-hand-over).
        "consulting",
    }
    assert {s.value for s in CallState} == {
        "received",
        "queued",
        "offered",
        "connected",
        "wrap_up",
        "completed",
        "abandoned",
        "rejected",
        "overflowed",
        "transferred",
        "failed",
        # Callbacks (docs/surge.md#callbacks).
        "callback_requested",
        "dialing",
        "retry_wait",
        "expired",
        # A consult leg taken back (no specialist in time, or the caller gone).
        "withdrawn",
    }
    assert {s.value for s in CALL_END_STATES} == {
        "completed",
        "abandoned",
        "rejected",
        "overflowed",
        "transferred",
        "failed",
        "callback_requested",
        "expired",
        "withdrawn",
    }
    assert frozenset(CallState) - CALL_END_STATES == CALL_LIVE_STATES
    assert {s.value for s in AGENT_BUSY_STATES} == {"reserved", "on_call", "consulting", "wrap_up"}


def test_tables_only_name_known_states() -> None:
    for allowed, target in AGENT_TRANSITIONS.values():
        assert allowed, "an action nobody can take"
        assert allowed <= set(AgentState)
        assert target in set(AgentState)
    for allowed, target in CALL_TRANSITIONS.values():
        assert allowed, "an action nobody can take"
        assert allowed <= set(CallState)
        assert target in set(CallState)


def test_an_ended_call_never_moves_again() -> None:
    for action, (allowed, _target) in CALL_TRANSITIONS.items():
        assert not (allowed & CALL_END_STATES), f"{action} starts from an end state"


def test_every_end_state_is_reachable() -> None:
    targets = {target for _allowed, target in CALL_TRANSITIONS.values()}
    assert targets >= CALL_END_STATES


def test_every_agent_state_is_reachable_and_left() -> None:
    targets = {target for _allowed, target in AGENT_TRANSITIONS.values()}
    sources = set().union(*(allowed for allowed, _target in AGENT_TRANSITIONS.values()))
    assert targets == set(AgentState)
    assert sources == set(AgentState)


# --- every (state, action) pair --------------------------------------------------


@pytest.mark.parametrize(("state", "action"), AGENT_PAIRS, ids=_ids(AGENT_PAIRS))
def test_agent_transition(state: AgentState, action: str) -> None:
    allowed, target = AGENT_TRANSITIONS[action]
    if state in allowed:
        assert next_agent_state(state, action) is target
        # The rows hold plain strings: the same answer for the stored value.
        assert next_agent_state(str(state.value), action) is target
    else:
        with pytest.raises(IllegalTransition) as info:
            next_agent_state(state, action)
        err = info.value
        assert err.code == "illegal_agent_transition"
        assert (err.entity, err.action, err.state) == ("agent", action, state)
        assert str(err) == f"cannot {action} a agent that is {state.value}"
        with pytest.raises(IllegalTransition):
            next_agent_state(str(state.value), action)


@pytest.mark.parametrize(("state", "action"), CALL_PAIRS, ids=_ids(CALL_PAIRS))
def test_call_transition(state: CallState, action: str) -> None:
    allowed, target = CALL_TRANSITIONS[action]
    if state in allowed:
        assert next_call_state(state, action) is target
        assert next_call_state(str(state.value), action) is target
    else:
        with pytest.raises(IllegalTransition) as info:
            next_call_state(state, action)
        err = info.value
        assert err.code == "illegal_call_transition"
        assert (err.entity, err.action, err.state) == ("call", action, state)
        assert str(err) == f"cannot {action} a call that is {state.value}"
        with pytest.raises(IllegalTransition):
            next_call_state(str(state.value), action)


def test_the_product_has_both_outcomes() -> None:
    """Guard for the parametrisation above: it really mixes legal and illegal pairs."""
    legal = sum(state in AGENT_TRANSITIONS[action][0] for state, action in AGENT_PAIRS)
    assert 0 < legal < len(AGENT_PAIRS) == len(AgentState) * len(AGENT_TRANSITIONS)
    legal = sum(state in CALL_TRANSITIONS[action][0] for state, action in CALL_PAIRS)
    assert 0 < legal < len(CALL_PAIRS) == len(CallState) * len(CALL_TRANSITIONS)


@pytest.mark.parametrize(
    ("current", "action", "expected"),
    [
        ("logged_out", "login", "paused"),
        ("paused", "ready", "available"),
        ("available", "reserve", "reserved"),
        ("reserved", "connect", "on_call"),
        ("reserved", "miss", "paused"),
        ("reserved", "release", "available"),
        ("on_call", "start_wrap_up", "wrap_up"),
        ("wrap_up", "end_wrap_up", "available"),
        ("available", "logout", "logged_out"),
        # Needs support: consulting, then handed over, back on the call, or hung up on.
        ("on_call", "consult", "consulting"),
        ("consulting", "hand_over", "wrap_up"),
        ("consulting", "resume", "on_call"),
        ("consulting", "end_consult", "wrap_up"),
    ],
)
def test_agent_path_of_a_shift(current: str, action: str, expected: str) -> None:
    """Spelled out by hand, independently of the table: a volunteer's shift."""
    assert next_agent_state(current, action) == expected


@pytest.mark.parametrize(
    ("current", "action", "expected"),
    [
        ("received", "enqueue", "queued"),
        ("queued", "offer", "offered"),
        ("offered", "requeue", "queued"),
        ("queued", "move", "received"),
        ("offered", "connect", "connected"),
        ("connected", "start_wrap_up", "wrap_up"),
        ("wrap_up", "complete", "completed"),
        ("queued", "abandon", "abandoned"),
        ("offered", "abandon", "abandoned"),
        ("received", "reject", "rejected"),
        ("queued", "overflow", "overflowed"),
        ("connected", "transfer", "transferred"),
        ("wrap_up", "fail", "failed"),
        # A callback's life cycle.
        ("queued", "request_callback", "callback_requested"),
        ("offered", "dial", "dialing"),
        ("dialing", "dial_answered", "connected"),
        ("dialing", "dial_unanswered", "retry_wait"),
        ("retry_wait", "retry", "queued"),
        ("retry_wait", "expire", "expired"),
        ("queued", "expire", "expired"),
        ("dialing", "fail", "failed"),
        # A consult leg taken back, waiting or ringing.
        ("queued", "withdraw", "withdrawn"),
        ("offered", "withdraw", "withdrawn"),
    ],
)
def test_call_path_by_hand(current: str, action: str, expected: str) -> None:
    assert next_call_state(current, action) == expected


@pytest.mark.parametrize(
    ("current", "action"),
    [
        ("logged_out", "ready"),
        ("on_call", "pause"),
        ("reserved", "logout"),
        ("available", "connect"),
        ("wrap_up", "ready"),
        ("paused", "reserve"),
        # A volunteer whose caller is on hold neither hangs up nor consults again.
        ("consulting", "start_wrap_up"),
        ("consulting", "consult"),
    ],
)
def test_agent_refusals_by_hand(current: str, action: str) -> None:
    with pytest.raises(IllegalTransition, match=f"cannot {action} a agent that is {current}"):
        next_agent_state(current, action)


@pytest.mark.parametrize(
    ("current", "action"),
    [
        ("completed", "fail"),
        ("connected", "abandon"),
        ("offered", "offer"),
        ("queued", "connect"),
        ("wrap_up", "requeue"),
        ("abandoned", "enqueue"),
        ("offered", "request_callback"),
        ("queued", "dial"),
        ("offered", "dial_answered"),
        ("dialing", "expire"),
        ("callback_requested", "enqueue"),
    ],
)
def test_call_refusals_by_hand(current: str, action: str) -> None:
    with pytest.raises(IllegalTransition, match=f"cannot {action} a call that is {current}"):
        next_call_state(current, action)


# --- through the API: 409 and nothing written --------------------------------------


async def _footprint(hotline: Hotline, agent_id: int) -> tuple[Any, ...]:
    """Everything a refused request must leave untouched."""
    events = (await hotline.sql("select count(*), max(seq) from events"))[0]
    commands = (await hotline.sql("select count(*) from telephony_commands"))[0][0]
    calls = await hotline.sql("select id, state, agent_id from calls order by id")
    agent = await hotline.sql(
        "select state, pause_reason, state_since, pending_state, current_call_id, session_id "
        "from agents where id = :id",
        id=agent_id,
    )
    sessions = await hotline.sql("select id, ended_at from agent_sessions order by id")
    return (tuple(events), commands, calls, agent, sessions)


def _assert_conflict(response: Any, code: str) -> None:
    assert response.status_code == 409, response.text
    body = response.json()
    assert set(body) == {"code", "message", "field"}
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]


async def _new_agent(hotline: Hotline, campaign_id: int, login: str) -> int:
    r = await hotline.http.post(
        "/agents",
        json={
            "campaign_id": campaign_id,
            "login": login,
            "display_name": login,
            "skills": {"pledges": 1},
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "logged_out"
    agent_id: int = r.json()["id"]
    return agent_id


@pytest.mark.parametrize(
    ("path", "body", "action"),
    [
        ("ready", None, "ready"),
        ("pause", {"reason": "break"}, "pause"),
        ("logout", None, "logout"),
    ],
)
async def test_api_refuses_illegal_agent_transition(
    hotline: Hotline, path: str, body: dict[str, Any] | None, action: str
) -> None:
    setup = await setup_campaign(hotline, agents=0)
    agent_id = await _new_agent(hotline, setup["campaign_id"], "late-volunteer")
    before = await _footprint(hotline, agent_id)
    assert before[0][0] > 0  # the configuration itself wrote events

    r = await hotline.http.post(f"/agents/{agent_id}/{path}", json=body)

    _assert_conflict(r, "illegal_agent_transition")
    assert r.json()["message"] == f"impossible de faire {action} sur un agent à l'état logged_out"
    assert r.json()["field"] is None
    assert await _footprint(hotline, agent_id) == before
    assert (await hotline.http.get(f"/agents/{agent_id}")).json()["state"] == "logged_out"


async def test_api_refuses_second_login(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    before = await _footprint(hotline, agent_id)

    r = await hotline.http.post(f"/agents/{agent_id}/login", json={})

    _assert_conflict(r, "illegal_agent_transition")
    assert r.json()["message"] == "impossible de faire login sur un agent à l'état paused"
    # No second session was opened and no event written.
    assert await _footprint(hotline, agent_id) == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("hangup", None),
        ("answer", None),
        ("wrap-up/end", {"disposition": "pledge"}),
    ],
)
async def test_api_refuses_call_actions_without_a_call(
    hotline: Hotline, path: str, body: dict[str, Any] | None
) -> None:
    setup = await setup_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    assert (await hotline.http.post(f"/agents/{agent_id}/ready")).status_code == 200
    before = await _footprint(hotline, agent_id)

    r = await hotline.http.post(f"/agents/{agent_id}/{path}", json=body)

    _assert_conflict(r, "no_current_call")
    assert await _footprint(hotline, agent_id) == before
    assert (await hotline.http.get(f"/agents/{agent_id}")).json()["state"] == "available"


async def test_api_refuses_wrap_up_extend_when_not_in_wrap_up(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    before = await _footprint(hotline, agent_id)

    r = await hotline.http.post(f"/agents/{agent_id}/wrap-up/extend", json={"seconds": 30})

    _assert_conflict(r, "illegal_agent_transition")
    assert r.json()["message"] == "impossible de faire extend_wrap_up sur un agent à l'état paused"
    assert await _footprint(hotline, agent_id) == before


async def test_api_refuses_illegal_call_transition_and_rolls_back(hotline: Hotline) -> None:
    """Answering a call already connected: the call refuses, the agent row is untouched."""
    setup = await setup_campaign(hotline, agents=1)
    agent_id = setup["agent_ids"][0]
    assert (await hotline.http.post(f"/agents/{agent_id}/ready")).status_code == 200
    call_id = (await hotline.incoming("st-1")).json()["call"]["id"]

    async def offered() -> bool:
        return bool((await hotline.http.get(f"/calls/{call_id}")).json()["state"] == "offered")

    await wait_for(offered)
    r = await hotline.http.post(f"/agents/{agent_id}/answer")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "on_call"
    before = await _footprint(hotline, agent_id)

    r = await hotline.http.post(f"/agents/{agent_id}/answer")

    _assert_conflict(r, "illegal_call_transition")
    assert r.json()["message"] == "impossible de faire connect sur un call à l'état connected"
    assert await _footprint(hotline, agent_id) == before
    agent = (await hotline.http.get(f"/agents/{agent_id}")).json()
    assert (agent["state"], agent["current_call_id"], agent["calls_taken"]) == (
        "on_call",
        call_id,
        1,
    )
