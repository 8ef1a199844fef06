"""What happens to calls and agents: each function is one step of a call's path.

Every function runs inside the caller's unit of work, changes rows through the
checked transitions in ``states``, writes the events, timers and telephony
commands of the step, and asks for a dispatch after commit where a match may
have become possible. Nothing here commits.
"""

from __future__ import annotations

import datetime as dt

from app.acd import hours, repository, timers
from app.acd.models import Agent, AgentSession, Call, Campaign, Queue
from app.acd.states import (
    AGENT_BUSY_STATES,
    AgentState,
    CallState,
    IllegalTransition,
    next_agent_state,
    next_call_state,
)
from app.acd.timers import TimerKind
from app.cti.numbers import CallerNumber, normalise
from app.cti.service import carry_pop, stored_pop
from app.db import UnitOfWork
from app.errors import Conflict, NotFound
from app.realtime.outbox import emit
from app.settings import get_settings
from app.telephony import commands
from app.telephony.commands import CommandName

# Requeued calls (ring timeout, screen gone) go ahead of every normally queued call.
HEAD_OF_QUEUE_BOOST = 1e9


def request_dispatch(uow: UnitOfWork, campaign_id: int) -> None:
    """Ask the router to look for matches once this transaction has committed."""
    uow.dispatch_campaigns.add(campaign_id)


# --- agent state -----------------------------------------------------------------


def _set_agent_state(
    uow: UnitOfWork, agent: Agent, action: str, now: dt.datetime, reason: str | None = None
) -> None:
    agent.state = next_agent_state(agent.state, action)
    agent.pause_reason = reason if agent.state == AgentState.PAUSED else None
    agent.state_since = now
    emit(
        uow,
        "agent.state",
        campaign_id=agent.campaign_id,
        agent_id=agent.id,
        call_id=agent.current_call_id,
        data={"state": agent.state, "reason": agent.pause_reason, "action": action},
    )


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


async def _free_agent(uow: UnitOfWork, agent: Agent, action: str, now: dt.datetime) -> None:
    """The agent's call is over: available, or the pause/logout they asked for."""
    agent.current_call_id = None
    _set_agent_state(uow, agent, action, now)
    pending, reason = agent.pending_state, agent.pending_reason
    agent.pending_state = agent.pending_reason = None
    if pending == AgentState.PAUSED:
        _set_agent_state(uow, agent, "pause", now, reason=reason)
    elif pending == AgentState.LOGGED_OUT:
        _set_agent_state(uow, agent, "logout", now)
        await _end_session(uow, agent, now)
    else:
        request_dispatch(uow, agent.campaign_id)


# --- call path -------------------------------------------------------------------


def _emit_call(uow: UnitOfWork, call: Call, type: str, **data: object) -> None:
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
) -> Call:
    """A call reported by the platform; accepted once per provider call id."""
    existing = await repository.live_call_by_provider_id(uow.session, provider_call_id)
    if existing is not None:
        return existing
    campaign = await repository.campaign_for_dialled(uow.session, dialled)
    if campaign is None:
        raise NotFound(f"no campaign answers {dialled}", field="dialled")
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
    _emit_call(uow, call, "call.received", caller=number.e164, caller_issue=number.issue)
    from app.rules import service as rules  # the rules drive these steps back: import late

    if await rules.refuse_if_blocked(uow, call, campaign, now):
        return call
    decided = await rules.call_event(uow, "call.received", call, now, campaign=campaign)
    if decided.rejected:
        return call
    if not hours.is_open(campaign.opening_hours, campaign.timezone, now):
        await reject(uow, call, campaign, "closed", now)
        return call
    queue = await repository.queue_for_call(uow.session, campaign, dialled)
    if decided.queue is not None:
        queue = await repository.queue_named(uow.session, campaign.id, decided.queue) or queue
    commands.issue(uow, CommandName.ANSWER, provider_call_id)
    await enqueue(uow, call, queue, now, priority=decided.priority or 0)
    _start_caller_lookup(uow, call.id, number)
    return call


def _start_caller_lookup(uow: UnitOfWork, call_id: int, number: CallerNumber) -> None:
    """Look the caller up once the call is committed, while the router offers it."""
    caller_lookup = uow.db.caller_lookup
    if caller_lookup is None:
        return  # no CTI in this process (tools, some tests)
    if number.e164 is None:
        return  # withheld or invalid: nothing to look up; the reason is on the call

    async def start() -> None:
        caller_lookup.spawn(uow.db, call_id, number)

    uow.after_commit(start)


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
    commands.issue(uow, CommandName.ANSWER, call.provider_call_id)  # to play the message
    commands.issue(uow, CommandName.PLAY, call.provider_call_id, message=message)
    commands.issue(uow, CommandName.HANGUP, call.provider_call_id)
    _emit_call(uow, call, "call.rejected", reason=reason)


async def enqueue(
    uow: UnitOfWork,
    call: Call,
    queue: Queue,
    now: dt.datetime,
    priority: int = 0,
    *,
    tried: frozenset[int] = frozenset(),
) -> None:
    if queue.max_length is not None and (
        await repository.queue_length(uow.session, queue.id) >= queue.max_length
    ):
        call.queue_id = queue.id
        await overflow(uow, call, queue, now, reason="queue_full", tried=tried)
        return
    call.state = next_call_state(call.state, "enqueue")
    call.queue_id = queue.id
    call.priority = priority
    call.queued_at = now
    call.rank_key = now.timestamp() - priority * queue.ageing_seconds
    commands.issue(uow, CommandName.PLAY, call.provider_call_id, message="hold")
    if queue.max_wait_seconds is not None:
        due = now + dt.timedelta(seconds=queue.max_wait_seconds)
        timers.schedule(uow, TimerKind.MAX_WAIT, due, call_id=call.id)
    for after_seconds, _level in queue.tiers or []:
        due = now + dt.timedelta(seconds=after_seconds)
        timers.schedule(uow, TimerKind.TIER_WIDEN, due, call_id=call.id)
    _emit_call(uow, call, "call.queued", queue=queue.name, priority=priority)
    request_dispatch(uow, call.campaign_id)
    from app.rules import service as rules

    await rules.call_event(uow, "call.queued", call, now)


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
        target = await repository.get_queue(uow.session, queue.overflow_queue_id)
        if call.state == CallState.QUEUED:
            await timers.cancel_all_for_call(uow, call.id)
            _emit_call(uow, call, "call.moved", reason=reason, to_queue=target.name)
            call.state = next_call_state(call.state, "move")  # re-enters through enqueue
        await enqueue(uow, call, target, now, priority=call.priority, tried=tried)
        return
    call.state = next_call_state(call.state, "overflow")
    call.end_reason = reason
    call.ended_at = now
    call.wait_seconds = _wait(call, now)
    await timers.cancel_all_for_call(uow, call.id)
    commands.issue(uow, CommandName.PLAY, call.provider_call_id, message=queue.overflow_message)
    commands.issue(uow, CommandName.HANGUP, call.provider_call_id)
    _emit_call(uow, call, "call.overflowed", reason=reason, wait_seconds=call.wait_seconds)


async def offer(
    uow: UnitOfWork, call: Call, agent: Agent, queue: Queue, seat_address: str, now: dt.datetime
) -> None:
    """Claim a (call, agent) pair: both rows are already locked by the router."""
    call.state = next_call_state(call.state, "offer")
    agent.current_call_id = call.id
    _set_agent_state(uow, agent, "reserve", now)
    call.agent_id = agent.id
    call.offered_at = now
    call.offers += 1
    due = now + dt.timedelta(seconds=queue.ring_timeout_seconds)
    timers.schedule(uow, TimerKind.RING_TIMEOUT, due, call_id=call.id, agent_id=agent.id)
    commands.issue(
        uow,
        CommandName.BRIDGE,
        call.provider_call_id,
        seat=seat_address,
        agent_id=agent.id,
        auto_answer=queue.auto_answer,
    )
    pop = await stored_pop(uow.session, call.id)
    _emit_call(
        uow,
        call,
        "call.offered",
        wait_seconds=_wait(call, now),
        queue=queue.name,
        caller=call.caller_number,
        caller_issue=call.caller_number_issue,
        auto_answer=queue.auto_answer,
        ring_until=due.isoformat(),
        # The caller's details when the look-up has finished; else call.cti_ready follows.
        screen_pop=pop,
    )
    from app.rules import service as rules

    # Its rules, then its script on the screen (filled in with the pop when there is one).
    await rules.offered(uow, call, agent.id, now, pop=pop)


async def _requeue_at_head(uow: UnitOfWork, call: Call, now: dt.datetime, reason: str) -> None:
    call.state = next_call_state(call.state, "requeue")
    call.agent_id = None
    call.rank_key = min(call.rank_key, now.timestamp()) - HEAD_OF_QUEUE_BOOST
    _emit_call(uow, call, "call.requeued", reason=reason)
    request_dispatch(uow, call.campaign_id)


async def ring_timeout(uow: UnitOfWork, call: Call, agent: Agent, now: dt.datetime) -> None:
    """The offer was not taken in time: call back to the head, agent paused after N misses."""
    if call.state != CallState.OFFERED or call.agent_id != agent.id:
        return  # answered or ended meanwhile
    await _requeue_at_head(uow, call, now, reason="ring_timeout")
    agent.current_call_id = None
    agent.missed_in_row += 1
    settings = uow.db.settings or get_settings()
    if agent.missed_in_row >= settings.missed_offers_before_pause:
        _set_agent_state(uow, agent, "miss", now, reason="missed")
        agent.pending_state = agent.pending_reason = None
    else:
        await _free_agent(uow, agent, "release", now)


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
            await _free_agent(uow, agent, "release", now)
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
    await timers.cancel_all_for_call(uow, call.id)
    _emit_call(uow, call, "call.connected", wait_seconds=call.wait_seconds)
    from app.rules import service as rules

    await rules.call_event(uow, "call.connected", call, now, agent_id=agent.id)


async def _agent_wrap_up(
    uow: UnitOfWork, call: Call, agent: Agent, now: dt.datetime
) -> dt.datetime:
    """The agent's conversation is over: wrap-up until a timer (or the agent) ends it."""
    _set_agent_state(uow, agent, "start_wrap_up", now)
    queue = await repository.get_queue(uow.session, call.queue_id) if call.queue_id else None
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
    due = await _agent_wrap_up(uow, call, agent, now)
    if by == "agent":
        commands.issue(uow, CommandName.HANGUP, call.provider_call_id)
    talk = round((now - (call.answered_at or now)).total_seconds(), 3)
    _emit_call(uow, call, "call.wrap_up", by=by, talk_seconds=talk, wrapup_until=due.isoformat())
    from app.rules import service as rules

    await rules.call_event(uow, "call.ended", call, now, agent_id=agent.id)


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
    leg = Call(
        campaign_id=call.campaign_id,
        provider_call_id=call.provider_call_id,
        leg=call.leg + 1,
        parent_call_id=call.id,
        caller_raw=call.caller_raw,
        caller_number=call.caller_number,
        caller_number_issue=call.caller_number_issue,
        dialled=call.dialled,
        state=CallState.RECEIVED,
        received_at=now,
        tags=list(call.tags or []),
        context={**(call.context or {}), "transferred_from_call_id": call.id},
    )
    uow.session.add(leg)
    await uow.session.flush()
    _emit_call(uow, call, "call.transferred", to_queue=target.name, next_call_id=leg.id)
    _emit_call(uow, leg, "call.received", caller=leg.caller_number, parent_call_id=call.id)
    if not await carry_pop(uow.session, call.id, leg.id):
        # The first leg's look-up never finished: look up for this leg.
        _start_caller_lookup(uow, leg.id, CallerNumber(leg.caller_number, leg.caller_number_issue))
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
    commands.issue(uow, CommandName.TRANSFER, call.provider_call_id, number=number)
    _emit_call(uow, call, "call.transferred", to_number=number)


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
        _emit_call(uow, call, "call.completed", disposition=call.disposition)
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


async def abandon(uow: UnitOfWork, call: Call, now: dt.datetime) -> None:
    """The caller hung up before reaching a volunteer."""
    was_offered_to = call.agent_id if call.state == CallState.OFFERED else None
    call.state = next_call_state(call.state, "abandon")
    call.hangup_at = call.ended_at = now
    call.end_reason = "caller_hangup"
    call.wait_seconds = _wait(call, now)
    await timers.cancel_all_for_call(uow, call.id)
    _emit_call(uow, call, "call.abandoned", wait_seconds=call.wait_seconds)
    if was_offered_to is not None:
        agent = await repository.get_agent(uow.session, was_offered_to, lock=True)
        if agent.current_call_id == call.id and agent.state == AgentState.RESERVED:
            await _free_agent(uow, agent, "release", now)
    from app.rules import service as rules

    await rules.call_event(uow, "call.ended", call, now)


async def caller_hangup(uow: UnitOfWork, call: Call, now: dt.datetime) -> None:
    """``call.hangup`` from the platform, in whatever state the call is."""
    if call.state in (CallState.RECEIVED, CallState.QUEUED, CallState.OFFERED):
        await abandon(uow, call, now)
    elif call.state == CallState.CONNECTED and call.agent_id is not None:
        agent = await repository.get_agent(uow.session, call.agent_id, lock=True)
        await start_wrap_up(uow, call, agent, now, by="caller")
    # In wrap-up or ended already: a late or repeated hang-up changes nothing.


async def seat_answered(uow: UnitOfWork, call: Call, now: dt.datetime) -> None:
    """The seat picked up. Late (after a ring timeout or the caller left): ignored."""
    if call.state != CallState.OFFERED or call.agent_id is None:
        return
    agent = await repository.get_agent(uow.session, call.agent_id, lock=True)
    await connect(uow, call, agent, now)


async def seat_hangup(uow: UnitOfWork, call: Call, now: dt.datetime) -> None:
    """The volunteer's side hung up: ends the conversation, or refuses a ringing offer."""
    if call.agent_id is None:
        return
    agent = await repository.get_agent(uow.session, call.agent_id, lock=True)
    if call.state == CallState.CONNECTED:
        await start_wrap_up(uow, call, agent, now, by="agent")
    elif call.state == CallState.OFFERED:
        await screen_gone(uow, call, agent, now)


async def agent_call(uow: UnitOfWork, agent_id: int) -> tuple[Call, Agent]:
    """Lock an agent's current call then the agent (the global lock order)."""
    snapshot = await repository.get_agent(uow.session, agent_id)
    if snapshot.current_call_id is None:
        raise Conflict(f"agent {agent_id} holds no call", code="no_current_call")
    call = await repository.lock_call(uow.session, snapshot.current_call_id)
    agent = await repository.get_agent(uow.session, agent_id, lock=True)
    if agent.current_call_id != call.id:
        raise Conflict(f"agent {agent_id} call changed meanwhile", code="no_current_call")
    return call, agent
