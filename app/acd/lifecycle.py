"""What happens to calls and agents: each function is one step of a call's path.

Every function runs inside the caller's unit of work, changes rows through the
checked transitions in ``states``, writes the events, timers and telephony
commands of the step, and asks for a dispatch after commit where a match may
have become possible. Nothing here commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, case, func, select, update

from app.acd import callbacks, config_cache, hooks, hours, matching, repository, timers
from app.acd.models import CALL_KIND_CALLBACK, Agent, AgentSession, Call, Campaign, Queue
from app.acd.states import (
    AGENT_BUSY_STATES,
    AgentState,
    CallState,
    IllegalTransition,
    next_agent_state,
    next_call_state,
)
from app.acd.timers import TimerKind
from app.db import UnitOfWork, UTCDateTime, built_once, utcnow
from app.errors import Conflict, NotFound
from app.outbox import CommandName, emit
from app.outbox import issue as issue_command
from app.phone_numbers import normalise
from app.settings import settings_of

# Requeued calls (ring timeout, screen gone) go ahead of every normally queued call.
HEAD_OF_QUEUE_BOOST = 1e9


request_dispatch = hooks.request_dispatch


# --- agent state -----------------------------------------------------------------


def _set_agent_state(
    uow: UnitOfWork, agent: Agent, action: str, now: dt.datetime, reason: str | None = None
) -> None:
    agent.state = next_agent_state(agent.state, action)
    agent.pause_reason = reason if agent.state == AgentState.PAUSED else None
    agent.state_since = now
    _announce_agent(uow, agent, action, agent.state, agent.pause_reason)


async def login(uow: UnitOfWork, agent: Agent, seat_id: int | None, now: dt.datetime) -> None:
    session = AgentSession(agent_id=agent.id, seat_id=seat_id, started_at=now)
    uow.session.add(session)
    await uow.session.flush()
    agent.seat_id = seat_id
    agent.session_id = session.id
    agent.missed_in_row = 0
    _set_agent_state(uow, agent, "login", now, reason="not_ready")


async def ready(uow: UnitOfWork, agent: Agent, now: dt.datetime) -> None:
    if agent.state in AGENT_BUSY_STATES:
        # Asked during a call: cancel a pending pause or logout instead.
        if agent.pending_state is not None:
            agent.pending_state = None
            agent.pending_reason = None
            _emit_pending(uow, agent)
        return
    _set_agent_state(uow, agent, "ready", now)
    agent.missed_in_row = 0
    if not await match_agent(uow, agent, now) and uow.db.is_postgres:
        request_dispatch(uow, agent.campaign_id)


def _emit_pending(uow: UnitOfWork, agent: Agent) -> None:
    """A pause or logout asked for during a call: screens show it is coming."""
    emit(
        uow,
        "agent.pending",
        campaign_id=agent.campaign_id,
        agent_id=agent.id,
        call_id=agent.current_call_id,
        data={
            "state": agent.state,
            "pending_state": agent.pending_state,
            "reason": agent.pending_reason,
        },
    )


async def pause(uow: UnitOfWork, agent: Agent, reason: str, now: dt.datetime) -> None:
    if agent.state in AGENT_BUSY_STATES:
        agent.pending_state = AgentState.PAUSED
        agent.pending_reason = reason
        _emit_pending(uow, agent)
        return
    _set_agent_state(uow, agent, "pause", now, reason=reason)


async def logout(uow: UnitOfWork, agent: Agent, now: dt.datetime) -> None:
    if agent.state in AGENT_BUSY_STATES:
        agent.pending_state = AgentState.LOGGED_OUT
        agent.pending_reason = None
        _emit_pending(uow, agent)
        return
    _set_agent_state(uow, agent, "logout", now)
    await _end_session(uow, agent, now)


async def _end_session(uow: UnitOfWork, agent: Agent, now: dt.datetime) -> None:
    if agent.session_id is not None:
        session = await uow.session.get(AgentSession, agent.session_id)
        if session is not None:
            session.ended_at = now
    agent.session_id = None
    agent.seat_id = None


async def _free_agent(
    uow: UnitOfWork, agent: Agent, action: str, now: dt.datetime, *, match: bool = True
) -> None:
    """The agent's call is over: available, or the pause/logout they asked for.

    An available agent takes the first waiting call they may, in this transaction
    (``match``); the router is asked to look again only where this transaction
    could not see everything (another process's uncommitted call, PostgreSQL).
    """
    agent.current_call_id = None
    _set_agent_state(uow, agent, action, now)
    pending, reason = agent.pending_state, agent.pending_reason
    agent.pending_state = agent.pending_reason = None
    if pending == AgentState.PAUSED:
        _set_agent_state(uow, agent, "pause", now, reason=reason)
    elif pending == AgentState.LOGGED_OUT:
        _set_agent_state(uow, agent, "logout", now)
        await _end_session(uow, agent, now)
    elif not match or (not await match_agent(uow, agent, now) and uow.db.is_postgres):
        request_dispatch(uow, agent.campaign_id)


async def free_agent(uow: UnitOfWork, agent: Agent, action: str, now: dt.datetime) -> None:
    """The agent's call is over without wrap-up (a callback nobody answered)."""
    await _free_agent(uow, agent, action, now)


async def match_agent(uow: UnitOfWork, agent: Agent, now: dt.datetime) -> bool:
    """Offer the first waiting call this available agent may take; True if offered.

    On PostgreSQL only that first call: when another transaction holds it (often
    the router, looking at it for an agent it cannot see yet), False, and the
    caller's dispatch request after commit lets the router pair them (it looks
    again at a call it found held). Taking the second call instead would break
    first-come-first-served.
    """
    if agent.screen_seen_at is not None and agent.screens_open <= 0:
        return False  # no screen to show the offer on
    if uow.session.dirty:
        # The agent's last call must be written as ended before another is offered
        # (one live call per agent is a unique index, checked at each statement).
        await uow.session.flush()
    config = await config_cache.snapshot(uow)
    with uow.session.no_autoflush:
        call = await matching.best_call_for(
            uow.session, agent, config, now, head_only=uow.db.is_postgres
        )
    if call is None or call.queue_id is None:
        return False
    queue = config.queue(call.queue_id)
    await offer_pair(uow, call, agent, queue, now, config=config)
    return True


async def match_call(
    uow: UnitOfWork, call: Call, queue: Queue, now: dt.datetime, *, pop_may_exist: bool = True
) -> bool:
    """Offer a call that has just joined its queue to the best free agent, unless an
    earlier call of the queue is waiting; True if offered."""
    waited = (now - (call.queued_at or call.received_at)).total_seconds()
    with uow.session.no_autoflush:
        agent = await matching.best_agent(
            uow.session,
            queue,
            matching.eligible_level(queue, waited),
            call=call,
            site_id=matching.preferred_site(queue, waited),
        )
    if agent is None:
        return False
    await offer_pair(uow, call, agent, queue, now, pop_may_exist=pop_may_exist)
    return True


async def offer_pair(
    uow: UnitOfWork,
    call: Call,
    agent: Agent,
    queue: Queue,
    now: dt.datetime,
    *,
    config: config_cache.ConfigSnapshot | None = None,
    pop_may_exist: bool = True,
) -> None:
    """Both rows are locked: the seat, the round-robin mark, then the offer.

    The offer is stamped now, with both locks held, not when the step began: an
    audit never sees an agent offered a call before their previous one ended.
    """
    now = max(now, utcnow())
    config = config or await config_cache.snapshot(uow)
    if queue.strategy == matching.Strategy.ROUND_ROBIN:
        await uow.session.execute(
            update(Queue).where(Queue.id == queue.id).values(rr_last_agent_id=agent.id)
        )
    seat_address = config.seat_address(agent.seat_id, agent.id)
    await offer(uow, call, agent, queue, seat_address, now, pop_may_exist=pop_may_exist)


# --- call path -------------------------------------------------------------------


def emit_call(uow: UnitOfWork, call: Call, type: str, **data: object) -> None:
    emit(
        uow,
        type,
        campaign_id=call.campaign_id,
        queue_id=call.queue_id,
        call_id=call.id,
        agent_id=call.agent_id,
        data={"state": call.state, **data},
    )


def _wait(call: Call, now: dt.datetime) -> float:
    start = call.queued_at or call.received_at
    return round(max(0.0, (now - start).total_seconds()), 3)


async def receive(
    uow: UnitOfWork,
    *,
    provider_call_id: str,
    caller: str | None,
    dialled: str,
    now: dt.datetime,
    known: bool = False,
    route: bool = True,
) -> Call:
    """A call reported by the platform; accepted once per provider call id.

    ``route=False``: queue it but offer it to nobody (its caller has hung up already).
    ``known``: a call of this provider id may exist already (a second delivery that
    lost an insert race); without it the unique (provider call id, leg) index is
    what catches a repeat, and the caller retries with ``known=True``.
    """
    if known:
        existing = await repository.live_call_by_provider_id(uow.session, provider_call_id)
        if existing is not None:
            return existing
    config = await config_cache.snapshot(uow)
    campaign = config.campaign_for_dialled(dialled)
    if campaign is None:
        raise NotFound("no campaign answers {dialled}", field="dialled", dialled=dialled)
    number = normalise(caller, campaign.default_region)
    dialled = normalise(dialled, campaign.default_region).e164 or dialled
    call = Call(
        campaign_id=campaign.id,
        provider_call_id=provider_call_id,
        caller_raw=caller,
        caller_number=number.e164,
        caller_number_issue=number.issue,
        dialled=dialled,
        state=CallState.RECEIVED,
        received_at=now,
        tags=[],
        context={},
    )
    uow.session.add(call)
    await uow.session.flush()
    uow.memo.setdefault("calls_received", set()).add(call.id)
    emit_call(uow, call, "call.received", caller=number.e164, caller_issue=number.issue)
    decided = await hooks.received(uow, call, campaign, now)
    if decided.rejected:
        return call
    if not hours.is_open(campaign.opening_hours, campaign.timezone, now):
        await reject(uow, call, campaign, "closed", now)
        return call
    queue = config.queue_for_call(campaign, dialled)
    if decided.queue is not None:
        queue = config.queue_named(campaign.id, decided.queue) or queue
    issue_command(uow, CommandName.ANSWER, provider_call_id)
    _committed(uow, call)
    await enqueue(uow, call, queue, now, priority=decided.priority or 0, route=route)
    return call


def committed_call(uow: UnitOfWork, call: Call) -> None:
    """Once committed, the plugins hear of ``call`` (a callback with no carried pop)."""
    _committed(uow, call)


def _committed(uow: UnitOfWork, call: Call) -> None:
    """Once committed, the plugins hear of the new call (the caller look-up starts)."""
    committed = hooks.CommittedCall(
        call_id=call.id,
        campaign_id=call.campaign_id,
        number=call.caller_number,
        issue=call.caller_number_issue,
        received_at=call.received_at,
    )
    hooks.committed(uow, committed)


async def reject(
    uow: UnitOfWork,
    call: Call,
    campaign: Campaign,
    reason: str,
    now: dt.datetime,
    *,
    message: str | None = None,
) -> None:
    """Turn a waiting call away: a message (the closed message by default), then hang up."""
    call.state = next_call_state(call.state, "reject")
    call.end_reason = reason
    call.ended_at = now
    if message is None:
        message = campaign.closed_message
        if reason == "closed":
            message = f"{message} Opening hours: {hours.describe(campaign.opening_hours)}."
    issue_command(uow, CommandName.ANSWER, call.provider_call_id)  # to play the message
    issue_command(uow, CommandName.PLAY, call.provider_call_id, message=message)
    issue_command(uow, CommandName.HANGUP, call.provider_call_id)
    emit_call(uow, call, "call.rejected", reason=reason)


async def enqueue(
    uow: UnitOfWork,
    call: Call,
    queue: Queue,
    now: dt.datetime,
    priority: int = 0,
    *,
    tried: frozenset[int] = frozenset(),
    route: bool = True,
    consult: bool = False,
) -> None:
    """``consult``: a consult leg (the caller on hold: docs/telephony.md, the warm hand-over).
    It is never overflowed, announced or offered a callback: its fallback timer
    decides when the caller stops waiting for a specialist."""
    if (
        not consult
        and queue.max_length is not None
        and (await repository.queue_length(uow.session, queue.id) >= queue.max_length)
    ):
        call.queue_id = queue.id
        await overflow(uow, call, queue, now, reason="queue_full", tried=tried)
        return
    call.state = next_call_state(call.state, "enqueue")
    call.queue_id = queue.id
    call.priority = priority
    call.queued_at = now
    call.rank_key = now.timestamp() - priority * queue.ageing_seconds
    if not consult:
        issue_command(uow, CommandName.PLAY, call.provider_call_id, message="hold")
    if queue.max_wait_seconds is not None and not consult:
        due = now + dt.timedelta(seconds=queue.max_wait_seconds)
        timers.schedule(uow, TimerKind.MAX_WAIT, due, call_id=call.id)
    widen_after = [after_seconds for after_seconds, _level in queue.tiers or []]
    if queue.site_id is not None:
        widen_after.append(queue.site_widen_seconds)  # the site preference ends
    for after_seconds in widen_after:
        due = now + dt.timedelta(seconds=after_seconds)
        timers.schedule(uow, TimerKind.TIER_WIDEN, due, call_id=call.id)
    emit_call(uow, call, "call.queued", queue=queue.name, priority=priority)
    await hooks.step(uow, "call_queued", call, now)
    if call.state != CallState.QUEUED or call.queue_id != queue.id or not route:
        return  # a rule moved or ended it, or nobody is to be offered it
    # A call received in this transaction has no stored pop: its look-up starts
    # after the commit.
    fresh = call.id in uow.memo.get("calls_received", ())
    if await match_call(uow, call, queue, now, pop_may_exist=not fresh):
        return
    if consult:
        if uow.db.is_postgres:
            request_dispatch(uow, call.campaign_id)
        return  # no announcement nor callback offer: the caller is on hold
    # The caller waits: tell them how long (and offer a callback if it is long).
    await callbacks.announce(uow, call, queue, now)
    if uow.db.is_postgres:
        # Another process may be freeing an agent this transaction cannot see yet.
        request_dispatch(uow, call.campaign_id)


async def overflow(
    uow: UnitOfWork,
    call: Call,
    queue: Queue,
    now: dt.datetime,
    *,
    reason: str,
    tried: frozenset[int] = frozenset(),
) -> None:
    """Too long a wait or too long a queue: another queue, or a message and hang-up.

    ``tried`` holds the queues this call already overflowed from in this step, so a
    cycle of full queues (A to B to A) ends in the message instead of recursing.
    """
    tried = tried | {queue.id}
    if queue.overflow_queue_id is not None and queue.overflow_queue_id not in tried:
        target = (await config_cache.snapshot(uow)).queue(queue.overflow_queue_id)
        if call.state == CallState.QUEUED:
            await move_queued(uow, call, target, now, reason=reason, tried=tried)
        else:
            await enqueue(uow, call, target, now, priority=call.priority, tried=tried)
        return
    call.state = next_call_state(call.state, "overflow")
    call.end_reason = reason
    call.ended_at = now
    call.wait_seconds = _wait(call, now)
    await timers.cancel_all_for_call(uow, call.id)
    issue_command(uow, CommandName.PLAY, call.provider_call_id, message=queue.overflow_message)
    issue_command(uow, CommandName.HANGUP, call.provider_call_id)
    emit_call(uow, call, "call.overflowed", reason=reason, wait_seconds=call.wait_seconds)


async def move_queued(
    uow: UnitOfWork,
    call: Call,
    target: Queue,
    now: dt.datetime,
    *,
    reason: str,
    priority: int | None = None,
    tried: frozenset[int] = frozenset(),
) -> None:
    """A waiting call goes to another queue (overflow, a rule): its wait timers start
    afresh there, with its priority unless another is given."""
    await timers.cancel_all_for_call(uow, call.id)
    emit_call(uow, call, "call.moved", reason=reason, to_queue=target.name)
    call.state = next_call_state(call.state, "move")  # re-enters through enqueue
    chosen = call.priority if priority is None else priority
    await enqueue(uow, call, target, now, priority=chosen, tried=tried)


async def offer(
    uow: UnitOfWork,
    call: Call,
    agent: Agent,
    queue: Queue,
    seat_address: str,
    now: dt.datetime,
    *,
    pop_may_exist: bool = True,
) -> None:
    """Claim a (call, agent) pair: both rows are already locked by the caller.

    ``pop_may_exist=False`` when the call's look-up cannot have stored a pop yet
    (it starts after this transaction commits): the pop is not read.
    """
    call.state = next_call_state(call.state, "offer")
    agent.current_call_id = call.id
    _set_agent_state(uow, agent, "reserve", now)
    call.agent_id = agent.id
    call.offered_at = now
    call.offers += 1
    due = now + dt.timedelta(seconds=queue.ring_timeout_seconds)
    timers.schedule(uow, TimerKind.RING_TIMEOUT, due, call_id=call.id, agent_id=agent.id)
    # A callback has no caller on the line: the volunteer accepts it on the screen
    # (never automatically), then the platform dials (app/acd/callbacks.py).
    callback = call.kind == CALL_KIND_CALLBACK
    consult_of = consult_parent_id(call)
    if consult_of is not None:
        # A consult leg: the specialist's seat rings; the caller stays on hold until
        # the answer (then ``bridge``, in consult_answered).
        issue_command(
            uow,
            CommandName.CONSULT,
            call.provider_call_id,
            seat=seat_address,
            agent_id=agent.id,
            auto_answer=queue.auto_answer,
            ring_seconds=queue.ring_timeout_seconds,
            leg=call.leg,
            consult_call_id=call.id,
        )
    elif not callback:
        issue_command(
            uow,
            CommandName.BRIDGE,
            call.provider_call_id,
            seat=seat_address,
            agent_id=agent.id,
            auto_answer=queue.auto_answer,
            auto_answer_seconds=queue.auto_answer_seconds,
            ring_seconds=queue.ring_timeout_seconds,
        )
    pop = await hooks.pop_for_offer(uow, call.id) if pop_may_exist else None
    emit_call(
        uow,
        call,
        "call.offered",
        wait_seconds=_wait(call, now),
        queue=queue.name,
        caller=call.caller_number,
        caller_issue=call.caller_number_issue,
        auto_answer=queue.auto_answer and not callback,
        # The screen's breath before it answers: it flashes, rings and shows the caller.
        auto_answer_seconds=queue.auto_answer_seconds,
        kind=call.kind,
        ring_until=due.isoformat(),
        # The caller's details when the look-up has finished; else call.cti_ready follows.
        screen_pop=pop,
        **({"consult": consult_view(call)} if consult_of is not None else {}),
    )
    # Its rules, then its script on the screen (filled in with the pop when there is one).
    await hooks.offered(uow, call, agent.id, now, pop)


async def _requeue_at_head(uow: UnitOfWork, call: Call, now: dt.datetime, reason: str) -> None:
    """Back to the head of its queue; offered at once to another free agent if any
    (the agent it rang for is still reserved here, so never to them)."""
    call.state = next_call_state(call.state, "requeue")
    call.agent_id = None
    call.rank_key = min(call.rank_key, now.timestamp()) - HEAD_OF_QUEUE_BOOST
    emit_call(uow, call, "call.requeued", reason=reason)
    queue = (await config_cache.snapshot(uow)).queues.get(call.queue_id or 0)
    if queue is None or not await match_call(uow, call, queue, now):
        request_dispatch(uow, call.campaign_id)


async def ring_timeout(uow: UnitOfWork, call: Call, agent: Agent, now: dt.datetime) -> None:
    """The offer was not taken in time: call back to the head, agent paused after N misses."""
    if call.state != CallState.OFFERED or call.agent_id != agent.id:
        return  # answered or ended meanwhile
    await _requeue_at_head(uow, call, now, reason="ring_timeout")
    agent.current_call_id = None
    agent.missed_in_row += 1
    settings = settings_of(uow.db)
    if agent.missed_in_row >= settings.missed_offers_before_pause:
        _set_agent_state(uow, agent, "miss", now, reason="missed")
        agent.pending_state = agent.pending_reason = None
    else:
        await _free_agent(uow, agent, "release", now, match=False)


async def screen_gone(uow: UnitOfWork, call: Call, agent: Agent, now: dt.datetime) -> None:
    """The agent's screen vanished while reserved: the call goes back to the head."""
    await timers.cancel(uow, TimerKind.RING_TIMEOUT, call_id=call.id)
    await ring_timeout(uow, call, agent, now)


async def screen_opened(uow: UnitOfWork, agent: Agent, now: dt.datetime) -> None:
    """A softphone screen connected: the agent can be offered calls again."""
    agent.screens_open += 1
    agent.screen_seen_at = now
    await timers.cancel(uow, TimerKind.SCREEN_GRACE, agent_id=agent.id)
    if agent.state == AgentState.AVAILABLE:
        request_dispatch(uow, agent.campaign_id)


async def screen_closed(
    uow: UnitOfWork, agent: Agent, now: dt.datetime, grace_seconds: float
) -> None:
    """A screen went away. A call ringing on it goes back to the head of the queue
    at once; if no screen is back within the grace period the agent is paused."""
    agent.screens_open = max(0, agent.screens_open - 1)
    agent.screen_seen_at = now
    if agent.screens_open:
        return
    if agent.state == AgentState.RESERVED and agent.current_call_id is not None:
        call = await repository.lock_call(uow.session, agent.current_call_id)
        if call.state == CallState.OFFERED and call.agent_id == agent.id:
            await timers.cancel(uow, TimerKind.RING_TIMEOUT, call_id=call.id)
            await _requeue_at_head(uow, call, now, reason="screen_gone")
            await _free_agent(uow, agent, "release", now, match=False)
    if agent.state != AgentState.LOGGED_OUT:
        due = now + dt.timedelta(seconds=grace_seconds)
        timers.schedule(uow, TimerKind.SCREEN_GRACE, due, agent_id=agent.id)


async def screen_grace_over(uow: UnitOfWork, agent: Agent, now: dt.datetime) -> None:
    if agent.screens_open or agent.state in (AgentState.LOGGED_OUT, AgentState.PAUSED):
        return
    await pause(uow, agent, "disconnected", now)


async def connect(uow: UnitOfWork, call: Call, agent: Agent, now: dt.datetime) -> None:
    call.state = next_call_state(call.state, "connect")
    _set_agent_state(uow, agent, "connect", now)
    call.answered_at = now
    call.wait_seconds = _wait(call, now)
    agent.missed_in_row = 0
    agent.calls_taken += 1
    await _connected(uow, call, agent, now)


async def connect_callback(uow: UnitOfWork, call: Call, agent: Agent, now: dt.datetime) -> None:
    """A dialled callback answered (its call state set by the caller): the volunteer
    is on the call, which goes on as any connected call. Its wait is counted from
    the original call's queued time."""
    _set_agent_state(uow, agent, "connect", now)
    call.answered_at = now
    call.wait_seconds = _wait(call, now)
    agent.missed_in_row = 0
    agent.calls_taken += 1
    await _connected(uow, call, agent, now)


async def _connected(uow: UnitOfWork, call: Call, agent: Agent, now: dt.datetime) -> None:
    await timers.cancel_all_for_call(uow, call.id)
    emit_call(uow, call, "call.connected", wait_seconds=call.wait_seconds)
    if consult_parent_id(call) is not None:
        await consult_answered(uow, call, agent, now)
    await hooks.step(uow, "call_connected", call, now, agent.id)


# --- the same steps as conditional statements (the hot path) ------------------------
#
# Each is an UPDATE ... WHERE state = <expected> ... RETURNING: the state check is in
# the SQL, the row is locked and changed in one statement, and no row back means
# "not in that state" (the caller then takes the general path above, which says
# why). Rows are taken in the global lock order: the call, then its agent.


_RETURNING = {"synchronize_session": False, "populate_existing": True}

# The statements of the hot steps are built once per dialect, with bound parameters
# (``p_*``): building a statement costs more than running a cached one.
_NOW = bindparam("p_now", type_=UTCDateTime())
_LATEST_LEG = (
    select(Call.id)
    .where(Call.provider_call_id == bindparam("p_provider_call_id"))
    .order_by(Call.leg.desc())
    .limit(1)
    .scalar_subquery()
)


def _statement(uow: UnitOfWork, name: str) -> Any:
    return built_once(("lifecycle step", uow.db.dialect, name), lambda: _build(uow, name))


def _step_of_latest_leg(expected: CallState, **values: Any) -> Any:
    """The provider call's latest leg, if in ``expected`` with an agent: changed, returned."""
    return (
        update(Call)
        .where(Call.id == _LATEST_LEG, Call.state == expected, Call.agent_id.is_not(None))
        .values(**values)
        .returning(Call)
    )


def _step_of_agent_on_call(expected: AgentState, **values: Any) -> Any:
    """The agent (``p_agent_id``), if in ``expected`` holding ``p_call_id``: changed, returned."""
    return (
        update(Agent)
        .where(
            Agent.id == bindparam("p_agent_id"),
            Agent.state == expected,
            Agent.current_call_id == bindparam("p_call_id"),
        )
        .values(**values)
        .returning(Agent)
    )


def _build(uow: UnitOfWork, name: str) -> Any:
    if name == "connect_call":
        waited = uow.db.seconds_since(func.coalesce(Call.queued_at, Call.received_at), _NOW)
        return _step_of_latest_leg(
            CallState.OFFERED, state=CallState.CONNECTED, answered_at=_NOW, wait_seconds=waited
        )
    if name == "connect_agent":
        return _step_of_agent_on_call(
            AgentState.RESERVED,
            state=AgentState.ON_CALL,
            state_since=_NOW,
            missed_in_row=0,
            calls_taken=Agent.calls_taken + 1,
        )
    if name == "wrap_up_call":
        return _step_of_latest_leg(
            CallState.CONNECTED,
            state=CallState.WRAP_UP,
            hangup_at=_NOW,
            end_reason=bindparam("p_end_reason"),
        )
    if name == "wrap_up_agent":
        return _step_of_agent_on_call(
            AgentState.ON_CALL, state=AgentState.WRAP_UP, state_since=_NOW
        )
    if name == "complete_call":
        holding = (
            select(Agent.current_call_id)
            .where(Agent.id == bindparam("p_agent_id"), Agent.state == AgentState.WRAP_UP)
            .scalar_subquery()
        )
        in_wrap_up = Call.state == CallState.WRAP_UP
        return (
            update(Call)
            .where(Call.id == holding)
            .values(
                state=case((in_wrap_up, CallState.COMPLETED), else_=Call.state),
                ended_at=case((in_wrap_up, _NOW), else_=Call.ended_at),
                disposition=func.coalesce(bindparam("p_disposition"), Call.disposition),
            )
            .returning(Call)
        )
    if name == "free_agent":
        pending = Agent.pending_state
        return (
            update(Agent)
            .where(Agent.id == bindparam("p_agent_id"), Agent.state == AgentState.WRAP_UP)
            .values(
                state=case((pending.is_(None), AgentState.AVAILABLE), else_=pending),
                pause_reason=case((pending == AgentState.PAUSED, Agent.pending_reason), else_=None),
                pending_state=None,
                pending_reason=None,
                current_call_id=None,
                state_since=_NOW,
            )
            .returning(Agent)
        )
    raise KeyError(name)


async def _run_call(uow: UnitOfWork, name: str, params: dict[str, Any]) -> Call | None:
    stmt = _statement(uow, name)
    result = await uow.session.execute(stmt, params, execution_options=_RETURNING)
    return result.scalars().one_or_none()


async def _run_agent(uow: UnitOfWork, name: str, params: dict[str, Any]) -> Agent | None:
    stmt = _statement(uow, name)
    result = await uow.session.execute(stmt, params, execution_options=_RETURNING)
    return result.scalars().one_or_none()


def _announce_agent(
    uow: UnitOfWork, agent: Agent, action: str, state: str, reason: str | None
) -> None:
    hooks.agent_state_changed(uow, agent, action)
    emit(
        uow,
        "agent.state",
        campaign_id=agent.campaign_id,
        agent_id=agent.id,
        call_id=agent.current_call_id,
        data={"state": state, "reason": reason, "action": action},
    )


async def connect_answered(uow: UnitOfWork, provider_call_id: str, now: dt.datetime) -> Call | None:
    """``seat.answered`` for a ringing call: connected; None if it is not ringing."""
    call = await _run_call(
        uow, "connect_call", {"p_provider_call_id": provider_call_id, "p_now": now}
    )
    if call is None:
        return None
    agent = await _run_agent(
        uow, "connect_agent", {"p_agent_id": call.agent_id, "p_call_id": call.id, "p_now": now}
    )
    if agent is None:
        raise IllegalTransition("agent", "connect", "not reserved for this call")
    _announce_agent(uow, agent, "connect", AgentState.ON_CALL, None)
    await _connected(uow, call, agent, now)
    return call


async def wrap_up_connected(
    uow: UnitOfWork, provider_call_id: str, now: dt.datetime, *, by: str
) -> Call | None:
    """A hang-up during the conversation: wrap-up; None if the call is not connected."""
    params = {"p_provider_call_id": provider_call_id, "p_now": now, "p_end_reason": f"{by}_hangup"}
    call = await _run_call(uow, "wrap_up_call", params)
    if call is None:
        return None
    agent = await _run_agent(
        uow, "wrap_up_agent", {"p_agent_id": call.agent_id, "p_call_id": call.id, "p_now": now}
    )
    if agent is None:
        raise IllegalTransition("agent", "start_wrap_up", "not on this call")
    _announce_agent(uow, agent, "start_wrap_up", AgentState.WRAP_UP, None)
    await _wrap_up_started(uow, call, agent, now, by=by)
    return call


async def finish_wrap_up(
    uow: UnitOfWork,
    agent_id: int,
    now: dt.datetime,
    disposition: str | None,
    authorize: Callable[[Agent], None] | None = None,
) -> Agent:
    """The agent ends their wrap-up: the call completes (a transferred leg has ended
    already) and the agent is free, or paused or logged out as they asked."""
    params = {"p_agent_id": agent_id, "p_now": now, "p_disposition": disposition or None}
    call = await _run_call(uow, "complete_call", params)
    agent = await _run_agent(uow, "free_agent", {"p_agent_id": agent_id, "p_now": now})
    if agent is None:
        current = await repository.get_agent(uow.session, agent_id)
        if authorize is not None:
            authorize(current)  # a refusal says nothing about the agent's state
        if current.current_call_id is None:
            raise Conflict(
                "agent {agent_id} holds no call", code="no_current_call", agent_id=agent_id
            )
        raise IllegalTransition("agent", "end_wrap_up", current.state)
    if authorize is not None:
        authorize(agent)  # before anything is committed
    if call is not None and call.state == CallState.COMPLETED:
        emit_call(uow, call, "call.completed", disposition=call.disposition)
    await timers.cancel(uow, TimerKind.WRAPUP_END, agent_id=agent.id)
    _announce_agent(uow, agent, "end_wrap_up", AgentState.AVAILABLE, None)
    if agent.state == AgentState.PAUSED:
        _announce_agent(uow, agent, "pause", AgentState.PAUSED, agent.pause_reason)
    elif agent.state == AgentState.LOGGED_OUT:
        _announce_agent(uow, agent, "logout", AgentState.LOGGED_OUT, None)
        await _end_session(uow, agent, now)
    elif not await match_agent(uow, agent, now) and uow.db.is_postgres:
        request_dispatch(uow, agent.campaign_id)
    return agent


async def _agent_wrap_up(
    uow: UnitOfWork, call: Call, agent: Agent, now: dt.datetime
) -> dt.datetime:
    """The agent's conversation is over: wrap-up until a timer (or the agent) ends it."""
    _set_agent_state(uow, agent, "start_wrap_up", now)
    return await _schedule_wrap_up_end(uow, call, agent, now)


async def _schedule_wrap_up_end(
    uow: UnitOfWork, call: Call, agent: Agent, now: dt.datetime
) -> dt.datetime:
    config = await config_cache.snapshot(uow)
    queue = config.queues.get(call.queue_id) if call.queue_id else None
    due = now + dt.timedelta(seconds=queue.wrapup_seconds if queue else 30)
    timers.schedule(uow, TimerKind.WRAPUP_END, due, call_id=call.id, agent_id=agent.id)
    return due


async def start_wrap_up(
    uow: UnitOfWork, call: Call, agent: Agent, now: dt.datetime, *, by: str
) -> None:
    """The conversation is over (``by`` caller or agent): wrap-up with a timer."""
    call.state = next_call_state(call.state, "start_wrap_up")
    call.hangup_at = now
    call.end_reason = f"{by}_hangup"
    _set_agent_state(uow, agent, "start_wrap_up", now)
    await _wrap_up_started(uow, call, agent, now, by=by)


async def _wrap_up_started(
    uow: UnitOfWork, call: Call, agent: Agent, now: dt.datetime, *, by: str
) -> None:
    due = await _schedule_wrap_up_end(uow, call, agent, now)
    if by == "agent":
        issue_command(uow, CommandName.HANGUP, call.provider_call_id)
    talk = round((now - (call.answered_at or now)).total_seconds(), 3)
    emit_call(uow, call, "call.wrap_up", by=by, talk_seconds=talk, wrapup_until=due.isoformat())
    await hooks.step(uow, "call_ended", call, now, agent.id)


async def transfer_to_queue(
    uow: UnitOfWork, call: Call, agent: Agent, target: Queue, now: dt.datetime
) -> Call:
    """Hand a connected caller to another queue (specialists, say) with the context kept.

    This leg ends ``transferred`` and the agent goes to wrap-up; a new leg of the
    same provider call enters the target queue, carrying tags and context.
    """
    if target.campaign_id != call.campaign_id:
        raise Conflict("the target queue belongs to another campaign", field="queue_id")
    call.state = next_call_state(call.state, "transfer")
    call.hangup_at = call.ended_at = now
    call.end_reason = "transferred"
    await _agent_wrap_up(uow, call, agent, now)
    leg = await _new_leg(
        uow,
        call,
        now,
        next_leg(call),
        {**(call.context or {}), "transferred_from_call_id": call.id},
    )
    emit_call(uow, call, "call.transferred", to_queue=target.name, next_call_id=leg.id)
    emit_call(uow, leg, "call.received", caller=leg.caller_number, parent_call_id=call.id)
    if not await hooks.leg_created(uow, call, leg):
        _committed(uow, leg)  # nothing carried over (no finished look-up): look up anew
    await enqueue(uow, leg, target, now, priority=call.priority)
    return leg


async def transfer_out(
    uow: UnitOfWork, call: Call, agent: Agent, number: str, now: dt.datetime
) -> None:
    """Hand a connected caller to an outside number (a partner helpline)."""
    call.state = next_call_state(call.state, "transfer")
    call.hangup_at = call.ended_at = now
    call.end_reason = "transferred_out"
    await _agent_wrap_up(uow, call, agent, now)
    issue_command(uow, CommandName.TRANSFER, call.provider_call_id, number=number)
    emit_call(uow, call, "call.transferred", to_number=number)


async def end_wrap_up(
    uow: UnitOfWork, call: Call, agent: Agent, now: dt.datetime, disposition: str | None
) -> None:
    """Wrap-up is over: the call completes (a transferred leg has ended already)."""
    if agent.state != AgentState.WRAP_UP:
        raise IllegalTransition("agent", "end_wrap_up", agent.state)
    if disposition:
        call.disposition = disposition
    if call.state == CallState.WRAP_UP:
        call.state = next_call_state(call.state, "complete")
        call.ended_at = now
        emit_call(uow, call, "call.completed", disposition=call.disposition)
    await timers.cancel(uow, TimerKind.WRAPUP_END, agent_id=agent.id)
    await _free_agent(uow, agent, "end_wrap_up", now)


async def extend_wrap_up(
    uow: UnitOfWork, agent: Agent, seconds: int, now: dt.datetime
) -> dt.datetime:
    if agent.state != AgentState.WRAP_UP:
        raise IllegalTransition("agent", "extend_wrap_up", agent.state)
    due_at = await timers.get_due_at(uow, TimerKind.WRAPUP_END, agent.id)
    new_due = max(due_at or now, now) + dt.timedelta(seconds=seconds)
    await timers.cancel(uow, TimerKind.WRAPUP_END, agent_id=agent.id)
    timers.schedule(
        uow, TimerKind.WRAPUP_END, new_due, call_id=agent.current_call_id, agent_id=agent.id
    )
    emit(
        uow,
        "agent.wrap_up_extended",
        campaign_id=agent.campaign_id,
        agent_id=agent.id,
        call_id=agent.current_call_id,
        data={"wrapup_until": new_due.isoformat()},
    )
    return new_due


async def free_stranded(uow: UnitOfWork, agent: Agent, now: dt.datetime) -> None:
    """The agent is reserved or on a call that is no longer live (app/acd/stale.py):
    freed as the end of a call frees them (available, or the pause or logout asked for)."""
    if agent.state == AgentState.ON_CALL:
        _set_agent_state(uow, agent, "start_wrap_up", now)
        await _free_agent(uow, agent, "end_wrap_up", now)
    else:
        await _free_agent(uow, agent, "release", now)


async def abandon(uow: UnitOfWork, call: Call, now: dt.datetime) -> None:
    """The caller hung up before reaching a volunteer."""
    was_offered_to = call.agent_id if call.state == CallState.OFFERED else None
    call.state = next_call_state(call.state, "abandon")
    call.hangup_at = call.ended_at = now
    call.end_reason = "caller_hangup"
    call.wait_seconds = _wait(call, now)
    await timers.cancel_all_for_call(uow, call.id)
    emit_call(uow, call, "call.abandoned", wait_seconds=call.wait_seconds)
    if was_offered_to is not None:
        agent = await repository.get_agent(uow.session, was_offered_to, lock=True)
        if agent.current_call_id == call.id and agent.state == AgentState.RESERVED:
            await _free_agent(uow, agent, "release", now)
    await hooks.step(uow, "call_ended", call, now)


async def caller_hangup(uow: UnitOfWork, call: Call, now: dt.datetime) -> None:
    """``call.hangup`` from the platform, in whatever state the call is."""
    if consult_parent_id(call) is not None and call.state in _CONSULT_WAITING:
        await _consult_party_gone(uow, call, now, by="caller")
    elif call.state in (CallState.RECEIVED, CallState.QUEUED, CallState.OFFERED):
        await abandon(uow, call, now)
    elif call.state == CallState.CONNECTED and call.agent_id is not None:
        agent = await repository.get_agent(uow.session, call.agent_id, lock=True)
        await start_wrap_up(uow, call, agent, now, by="caller")
    # In wrap-up or ended already: a late or repeated hang-up changes nothing.


async def seat_answered(uow: UnitOfWork, call: Call, now: dt.datetime) -> None:
    """The seat picked up. Late (after a ring timeout or the caller left): ignored.
    A callback is connected by ``dial.answered``, never by a seat."""
    if call.state != CallState.OFFERED or call.agent_id is None or call.kind == CALL_KIND_CALLBACK:
        return
    agent = await repository.get_agent(uow.session, call.agent_id, lock=True)
    await connect(uow, call, agent, now)


async def seat_hangup(
    uow: UnitOfWork, call: Call, now: dt.datetime, seat: str | None = None
) -> None:
    """The volunteer's side hung up: ends the conversation, or refuses a ringing offer.

    ``seat`` (when the platform names it) tells the seats of a warm hand-over apart:
    the consulting volunteer's seat hanging up ends the call and withdraws the
    consult leg; a seat that is not the call's agent's changes nothing."""
    volunteer_seat = (call.context or {}).get("volunteer_seat")
    if (
        consult_parent_id(call) is not None
        and call.state in _CONSULT_WAITING
        and seat is not None
        and seat == volunteer_seat
    ):
        await _consult_party_gone(uow, call, now, by="agent")
        return
    if call.agent_id is None:
        return
    agent = await repository.get_agent(uow.session, call.agent_id, lock=True)
    if seat is not None and (call.context or {}).get("consulted"):
        config = await config_cache.snapshot(uow)
        if seat != config.seat_address(agent.seat_id, agent.id):
            return  # a specialist's seat whose consult ring was taken back
    if call.state == CallState.CONNECTED:
        await start_wrap_up(uow, call, agent, now, by="agent")
    elif call.state == CallState.OFFERED:
        await screen_gone(uow, call, agent, now)


async def agent_call(
    uow: UnitOfWork, agent_id: int, authorize: Callable[[Agent], None] | None = None
) -> tuple[Call, Agent]:
    """Lock an agent's current call then the agent (the global lock order)."""
    holding = select(Agent.current_call_id).where(Agent.id == agent_id).scalar_subquery()
    stmt = select(Call).where(Call.id == holding).with_for_update()
    result = await uow.session.execute(stmt, execution_options={"populate_existing": True})
    call = result.scalar_one_or_none()
    if call is None:
        agent = await repository.get_agent(uow.session, agent_id)  # NotFound if unknown
        if authorize is not None:
            authorize(agent)  # a refusal says nothing about the agent's call
        raise Conflict("agent {agent_id} holds no call", code="no_current_call", agent_id=agent_id)
    agent = await repository.get_agent(uow.session, agent_id, lock=True)
    if authorize is not None:
        authorize(agent)
    if agent.current_call_id != call.id:
        raise Conflict(
            "agent {agent_id} call changed meanwhile", code="no_current_call", agent_id=agent_id
        )
    return call, agent


# --- the warm hand-over (Needs support) ------------------------------------------------
#
# The volunteer's call (the first leg) stays ``connected`` with the caller on hold
# and the volunteer ``consulting``; a consult leg of the same provider call joins the
# specialists' queue and is offered there as any call (its offer rings the
# specialist's seat with ``consult`` instead of ``bridge``). Its context names the
# first leg (``consult_of``), the first leg's names the consult leg (``consult``).
# Locks: the consult leg, then the first leg, then the agents (the timer and the
# webhook take the consult leg first, so neither waits on the other in a cycle).

_CONSULT_WAITING = (CallState.RECEIVED, CallState.QUEUED, CallState.OFFERED)


def consult_parent_id(call: Call) -> int | None:
    """The first leg a consult leg consults for; None for any other call."""
    parent = (call.context or {}).get("consult_of")
    return int(parent) if parent is not None else None


def consult_view(call: Call) -> dict[str, Any]:
    """What the specialist's screen shows of a consult leg besides the screen pop."""
    context = call.context or {}
    return {
        "from_call_id": context.get("consult_of"),
        "from_agent_id": context.get("handed_over_by"),
        "from_agent_name": context.get("handed_over_by_name"),
        "tags": list(call.tags or []),
        "fallback_until": context.get("fallback_until"),
    }


async def _new_leg(
    uow: UnitOfWork, call: Call, now: dt.datetime, number: int, context: dict[str, Any]
) -> Call:
    """A new leg of ``call``'s provider call (a transfer or a consult): the same caller
    and tags, its own context, received now; flushed so that it has its id."""
    leg = Call(
        campaign_id=call.campaign_id,
        provider_call_id=call.provider_call_id,
        leg=number,
        parent_call_id=call.id,
        caller_raw=call.caller_raw,
        caller_number=call.caller_number,
        caller_number_issue=call.caller_number_issue,
        dialled=call.dialled,
        state=CallState.RECEIVED,
        received_at=now,
        tags=list(call.tags or []),
        context=context,
    )
    uow.session.add(leg)
    await uow.session.flush()
    return leg


def next_leg(call: Call) -> int:
    """The number of a new leg of ``call``'s provider call (a consult leg counts too)."""
    return max(call.leg, int((call.context or {}).get("last_leg", 0))) + 1


async def consult(
    uow: UnitOfWork,
    call: Call,
    agent: Agent,
    target: Queue,
    now: dt.datetime,
    *,
    fallback_seconds: int,
    timer: str = "",
) -> Call:
    """Needs support: the caller on hold, a consult leg for ``target`` with the call's
    context, the volunteer ``consulting`` until a specialist answers
    (``consult_answered``) or ``fallback_seconds`` pass (``consult_fallback``,
    which then fires the plugins' timer ``timer``, the rules' ``timer.<name>``)."""
    if target.campaign_id != call.campaign_id:
        raise Conflict("the target queue belongs to another campaign", field="queue_id")
    if call.state != CallState.CONNECTED or call.agent_id != agent.id:
        raise IllegalTransition("call", "consult", call.state)
    _set_agent_state(uow, agent, "consult", now)  # only from on_call
    config = await config_cache.snapshot(uow)
    due = now + dt.timedelta(seconds=fallback_seconds)
    number = next_leg(call)
    context = {k: v for k, v in (call.context or {}).items() if k not in ("script", "consult")}
    leg = await _new_leg(
        uow,
        call,
        now,
        number,
        {
            **context,
            "consult_of": call.id,
            "handed_over_by": agent.id,
            "handed_over_by_name": agent.display_name,
            "volunteer_seat": config.seat_address(agent.seat_id, agent.id),
            "fallback_until": due.isoformat(),
        },
    )
    call.context = {
        **(call.context or {}),
        "last_leg": number,
        "consulted": True,
        "consult": {"leg_id": leg.id, "queue": target.name, "until": due.isoformat()},
    }
    issue_command(uow, CommandName.HOLD, call.provider_call_id, message="hold", leg=call.leg)
    emit_call(
        uow,
        call,
        "call.consulting",
        to_queue=target.name,
        consult_call_id=leg.id,
        fallback_until=due.isoformat(),
    )
    timers.schedule(
        uow,
        TimerKind.CONSULT_FALLBACK,
        due,
        call_id=leg.id,
        agent_id=agent.id,
        data={"timer": timer},
    )
    emit_call(uow, leg, "call.received", caller=leg.caller_number, parent_call_id=call.id)
    if not await hooks.leg_created(uow, call, leg):
        _committed(uow, leg)  # nothing carried over (no finished look-up): look up anew
    await enqueue(uow, leg, target, now, priority=call.priority, consult=True)
    return leg


def _end_consult_context(call: Call) -> None:
    call.context = {k: v for k, v in (call.context or {}).items() if k != "consult"}


async def _consulting_pair(uow: UnitOfWork, leg: Call) -> tuple[Call, Agent]:
    """The first leg and its consulting volunteer, locked (after the consult leg)."""
    parent = await repository.lock_call(uow.session, consult_parent_id(leg) or 0)
    if parent.agent_id is None:
        raise IllegalTransition("call", "consult", parent.state)
    agent = await repository.get_agent(uow.session, parent.agent_id, lock=True)
    if (
        parent.state != CallState.CONNECTED
        or agent.state != AgentState.CONSULTING
        or agent.current_call_id != parent.id
    ):
        raise IllegalTransition("agent", "hand_over", agent.state)
    return parent, agent


async def _withdraw(uow: UnitOfWork, leg: Call, now: dt.datetime, reason: str) -> None:
    """A consult leg taken back: never left queued, its ringing seat (if any) released."""
    offered_to = leg.agent_id if leg.state == CallState.OFFERED else None
    leg.state = next_call_state(leg.state, "withdraw")
    leg.hangup_at = leg.ended_at = now
    leg.end_reason = reason
    leg.wait_seconds = _wait(leg, now)
    await timers.cancel_all_for_call(uow, leg.id)
    issue_command(
        uow, CommandName.CONSULT_CANCEL, leg.provider_call_id, leg=leg.leg, consult_call_id=leg.id
    )
    emit_call(uow, leg, "call.withdrawn", reason=reason, wait_seconds=leg.wait_seconds)
    if offered_to is not None:
        specialist = await repository.get_agent(uow.session, offered_to, lock=True)
        if specialist.current_call_id == leg.id and specialist.state == AgentState.RESERVED:
            await _free_agent(uow, specialist, "release", now)


async def consult_answered(uow: UnitOfWork, leg: Call, specialist: Agent, now: dt.datetime) -> None:
    """A specialist took the consult leg (already connected to them): the caller is
    bridged to their seat, the first leg ends ``transferred``, the volunteer wraps up."""
    parent, volunteer = await _consulting_pair(uow, leg)
    parent.state = next_call_state(parent.state, "transfer")
    parent.hangup_at = parent.ended_at = now
    parent.end_reason = "transferred"
    _end_consult_context(parent)
    _set_agent_state(uow, volunteer, "hand_over", now)
    due = await _schedule_wrap_up_end(uow, parent, volunteer, now)
    config = await config_cache.snapshot(uow)
    issue_command(
        uow,
        CommandName.BRIDGE,
        leg.provider_call_id,
        seat=config.seat_address(specialist.seat_id, specialist.id),
        agent_id=specialist.id,
        consult=True,
        leg=leg.leg,
    )
    queue = config.queues.get(leg.queue_id or 0)
    emit_call(
        uow,
        parent,
        "call.transferred",
        to_queue=queue.name if queue else None,
        next_call_id=leg.id,
        to_agent_id=specialist.id,
        by="consult",
        wrapup_until=due.isoformat(),
    )


async def consult_fallback(uow: UnitOfWork, leg: Call, timer: str, now: dt.datetime) -> None:
    """No specialist in time: the consult leg is withdrawn, the caller comes off hold
    back to the volunteer (on the call again), then the plugins' ``timer`` fires on
    the first leg (the rules show the partner-helpline script). A leg answered or
    ended meanwhile: nothing."""
    if consult_parent_id(leg) is None or leg.state not in _CONSULT_WAITING:
        return
    parent, volunteer = await _consulting_pair(uow, leg)
    await _withdraw(uow, leg, now, "no_specialist")
    _end_consult_context(parent)
    issue_command(uow, CommandName.UNHOLD, parent.provider_call_id, leg=parent.leg)
    _set_agent_state(uow, volunteer, "resume", now)
    emit_call(uow, parent, "call.consult_ended", outcome="no_specialist", consult_call_id=leg.id)
    if timer:
        await hooks.timer_fired(uow, parent, timer, now)


async def _consult_party_gone(uow: UnitOfWork, leg: Call, now: dt.datetime, *, by: str) -> None:
    """The caller (or the volunteer's seat) hung up during the consult: the consult
    leg is withdrawn and the volunteer wraps the call up."""
    parent, volunteer = await _consulting_pair(uow, leg)
    await _withdraw(uow, leg, now, f"{by}_hangup")
    _end_consult_context(parent)
    parent.state = next_call_state(parent.state, "start_wrap_up")
    parent.hangup_at = now
    parent.end_reason = f"{by}_hangup"
    _set_agent_state(uow, volunteer, "end_consult", now)
    emit_call(uow, parent, "call.consult_ended", outcome=f"{by}_hangup", consult_call_id=leg.id)
    await _wrap_up_started(uow, parent, volunteer, now, by=by)
