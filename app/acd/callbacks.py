"""Expected-wait announcements and callbacks that keep the caller's place.

A waiting caller hears the expected wait (app/acd/expected_wait.py) when the call
joins the queue and every ``wait_announce_seconds`` after, and, when that wait is
over the queue's ``callback_offer_seconds``, is offered a callback: "press 1 to be
called back". Pressing it (``call.dtmf``) ends the inbound call
(``callback_requested``) and queues a *callback*: a ``calls`` row of kind
``callback`` that keeps the original call's rank and queued time, so the router's
one ordered query serves it in the caller's place, ahead of calls that came later.

Its life cycle (docs/surge.md#callbacks): queued -> offered to a volunteer like a
call (same ring timeout, screen pop and form) -> the volunteer accepts: dialing
(a ``dial`` command) -> ``dial.answered``: connected, then as any call; or
``dial.unanswered``: the volunteer is free again, the callback waits
(``retry_wait``) and is queued again in its place after ``callback_retry_seconds``,
until ``callback_retries`` more attempts failed (``failed``) or its
``callback_expiry_seconds`` ran out (``expired``); both are reported to
supervisors. Every function here runs inside the caller's unit of work.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from app.acd import config_cache, expected_wait, hooks, lifecycle, repository, timers
from app.acd.models import CALL_KIND_CALLBACK, CALL_KIND_INBOUND, Agent, Call, Queue
from app.acd.states import AgentState, CallState, IllegalTransition, next_call_state
from app.acd.timers import TimerKind
from app.db import UnitOfWork
from app.errors import Conflict
from app.outbox import CommandName, emit
from app.outbox import issue as issue_command

# Prompts of the ``play`` commands (docs/telephony.md#commands).
PROMPT_EXPECTED_WAIT = "expected_wait"
PROMPT_WAIT_UNKNOWN = "expected_wait_unknown"
PROMPT_CALLBACK_OFFER = "callback_offer"
PROMPT_CALLBACK_CONFIRMED = "callback_confirmed"
# The platform says whether a dialled caller answered; if it never does, the
# attempt counts as unanswered after this long.
DIAL_TIMEOUT_SECONDS = 60
# An expiry that falls while its callback is being offered or dialled looks again
# this much later: the attempt under way is let finish.
EXPIRY_RECHECK_SECONDS = 30
CALLBACK_ID_PREFIX = "callback-"


def _emit(uow: UnitOfWork, call: Call, type: str, **data: Any) -> None:
    lifecycle.emit_call(uow, call, type, kind=call.kind, **data)


def _alert(uow: UnitOfWork, call: Call, reason: str, text: str) -> None:
    emit(
        uow,
        "supervisor.alert",
        campaign_id=call.campaign_id,
        queue_id=call.queue_id,
        call_id=call.id,
        data={"text": text, "reason": reason, "caller": call.caller_number},
    )


def wait_prompt(seconds: float | None) -> dict[str, Any]:
    """The ``play`` arguments announcing a wait: the figure, or that it is unknown."""
    if seconds is None:
        return {"prompt": PROMPT_WAIT_UNKNOWN}
    whole = round(seconds)
    return {"prompt": PROMPT_EXPECTED_WAIT, "seconds": whole, "minutes": math.ceil(whole / 60)}


# --- announcements and the offer ------------------------------------------------------


async def announce(uow: UnitOfWork, call: Call, queue: Queue, now: dt.datetime) -> None:
    """Tell a waiting caller the expected wait, offer a callback if it is long, and
    plan the next announcement. Calls only (a callback has no line to play to)."""
    if call.kind != CALL_KIND_INBOUND or call.state != CallState.QUEUED:
        return
    seconds = await expected_wait.call_wait(uow.session, call, now)
    if queue.wait_announce_seconds > 0:
        issue_command(uow, CommandName.PLAY, call.provider_call_id, **wait_prompt(seconds))
        _emit(
            uow,
            call,
            "call.expected_wait",
            expected_wait_seconds=expected_wait.rounded(seconds),
        )
        due = now + dt.timedelta(seconds=queue.wait_announce_seconds)
        timers.schedule(uow, TimerKind.WAIT_ANNOUNCE, due, call_id=call.id)
    threshold = queue.callback_offer_seconds
    if threshold is not None and (seconds is None or seconds > threshold):
        offer_callback(uow, call, queue, by="queue")


def offer_callback(uow: UnitOfWork, call: Call, queue: Queue, *, by: str) -> bool:
    """Offer a waiting caller a callback (once); False when it cannot be offered:
    not a waiting call, offered already, or no number to call back."""
    if (
        call.kind != CALL_KIND_INBOUND
        or call.state != CallState.QUEUED
        or call.callback_digit is not None
        or call.caller_number is None
    ):
        return False
    call.callback_digit = queue.callback_digit
    issue_command(
        uow,
        CommandName.PLAY,
        call.provider_call_id,
        prompt=PROMPT_CALLBACK_OFFER,
        digit=queue.callback_digit,
    )
    _emit(uow, call, "callback.offered", digit=queue.callback_digit, by=by)
    return True


async def wait_announce_due(uow: UnitOfWork, call: Call, now: dt.datetime) -> None:
    """The ``wait_announce`` timer: announce again while the call waits. A call being
    offered right now is not told; its next announcement is planned anyway (a ring
    timeout puts it back in the queue)."""
    if call.queue_id is None:
        return
    queue = (await config_cache.snapshot(uow)).queues.get(call.queue_id)
    if queue is None or queue.wait_announce_seconds <= 0:
        return
    if call.state == CallState.QUEUED:
        await announce(uow, call, queue, now)
    elif call.state == CallState.OFFERED:
        due = now + dt.timedelta(seconds=queue.wait_announce_seconds)
        timers.schedule(uow, TimerKind.WAIT_ANNOUNCE, due, call_id=call.id)


# --- the caller presses the digit -----------------------------------------------------


async def digit_pressed(uow: UnitOfWork, call: Call, digit: str, now: dt.datetime) -> Call | None:
    """``call.dtmf`` on a live call: the offered digit on a waiting call that was
    offered a callback requests it; the new callback, else None (nothing changes)."""
    if (
        call.kind != CALL_KIND_INBOUND
        or call.state != CallState.QUEUED
        or call.callback_digit is None
        or digit != call.callback_digit
        or call.queue_id is None
    ):
        return None
    queue = (await config_cache.snapshot(uow)).queue(call.queue_id)
    return await request_callback(uow, call, queue, now)


async def request_callback(uow: UnitOfWork, call: Call, queue: Queue, now: dt.datetime) -> Call:
    """End the waiting call and queue its callback in the same place."""
    call.state = next_call_state(call.state, "request_callback")
    call.hangup_at = call.ended_at = now
    call.end_reason = "callback_requested"
    call.wait_seconds = round(max(0.0, (now - (call.queued_at or now)).total_seconds()), 3)
    await timers.cancel_all_for_call(uow, call.id)
    issue_command(uow, CommandName.PLAY, call.provider_call_id, prompt=PROMPT_CALLBACK_CONFIRMED)
    issue_command(uow, CommandName.HANGUP, call.provider_call_id)
    expires = now + dt.timedelta(seconds=queue.callback_expiry_seconds)
    callback = Call(
        campaign_id=call.campaign_id,
        provider_call_id=f"{CALLBACK_ID_PREFIX}{call.id}",
        leg=0,
        kind=CALL_KIND_CALLBACK,
        parent_call_id=call.id,
        caller_raw=call.caller_raw,
        caller_number=call.caller_number,
        caller_number_issue=call.caller_number_issue,
        dialled=call.dialled,
        queue_id=queue.id,
        state=CallState.QUEUED,
        priority=call.priority,
        # The caller's place: the same rank (and queued time) as the call it replaces.
        rank_key=call.rank_key,
        received_at=now,
        queued_at=call.queued_at or now,
        dial_attempts=0,
        tags=list(call.tags or []),
        context={
            **(call.context or {}),
            "callback": {"from_call_id": call.id, "expires_at": expires.isoformat()},
        },
    )
    uow.session.add(callback)
    await uow.session.flush()
    _emit(
        uow,
        call,
        "call.callback_requested",
        callback_id=callback.id,
        wait_seconds=call.wait_seconds,
    )
    await hooks.step(uow, "call_ended", call, now)
    _emit(
        uow,
        callback,
        "callback.requested",
        from_call_id=call.id,
        caller=callback.caller_number,
        queue=queue.name,
        expires_at=expires.isoformat(),
    )
    timers.schedule(uow, TimerKind.CALLBACK_EXPIRY, expires, call_id=callback.id)
    if not await hooks.leg_created(uow, call, callback):
        lifecycle.committed_call(uow, callback)  # nothing carried over: look the caller up
    await _route(uow, callback, queue, now)
    return callback


async def _route(uow: UnitOfWork, callback: Call, queue: Queue, now: dt.datetime) -> None:
    if not await lifecycle.match_call(uow, callback, queue, now) and uow.db.is_postgres:
        lifecycle.request_dispatch(uow, callback.campaign_id)


# --- the volunteer accepts; the platform dials ---------------------------------------


async def accept(uow: UnitOfWork, call: Call, agent: Agent, now: dt.datetime) -> None:
    """The volunteer takes the callback offered to them: the platform dials the caller
    and bridges the volunteer's seat; the volunteer stays reserved meanwhile."""
    if call.state != CallState.OFFERED or call.agent_id != agent.id:
        raise IllegalTransition("call", "dial", call.state)
    if agent.state != AgentState.RESERVED:
        raise IllegalTransition("agent", "dial", agent.state)
    if call.caller_number is None:
        raise Conflict("this callback has no number to dial", code="no_number")
    call.state = next_call_state(call.state, "dial")
    call.dial_attempts += 1
    await timers.cancel(uow, TimerKind.RING_TIMEOUT, call_id=call.id)
    config = await config_cache.snapshot(uow)
    queue = config.queues.get(call.queue_id or 0)
    issue_command(
        uow,
        CommandName.DIAL,
        call.provider_call_id,
        number=call.caller_number,
        callback_id=call.id,
        seat=config.seat_address(agent.seat_id, agent.id),
        agent_id=agent.id,
        ring_seconds=queue.ring_timeout_seconds if queue else None,
    )
    due = now + dt.timedelta(seconds=DIAL_TIMEOUT_SECONDS)
    timers.schedule(uow, TimerKind.DIAL_TIMEOUT, due, call_id=call.id, agent_id=agent.id)
    _emit(uow, call, "callback.dialing", attempt=call.dial_attempts, number=call.caller_number)


async def dial_answered(uow: UnitOfWork, call: Call, now: dt.datetime) -> bool:
    """The caller picked up: connected with the volunteer, then as any call."""
    if call.state != CallState.DIALING or call.agent_id is None:
        return False
    agent = await repository.get_agent(uow.session, call.agent_id, lock=True)
    call.state = next_call_state(call.state, "dial_answered")
    await lifecycle.connect_callback(uow, call, agent, now)
    return True


async def dial_unanswered(uow: UnitOfWork, call: Call, now: dt.datetime, *, reason: str) -> bool:
    """Nobody answered: the volunteer is free again at once (nothing was said, so
    there is nothing to wrap up, and in a wave a seat in wrap-up is a seat lost);
    the callback waits for its next attempt, or has failed or expired."""
    if call.state != CallState.DIALING or call.agent_id is None:
        return False
    agent = await repository.get_agent(uow.session, call.agent_id, lock=True)
    queue = (await config_cache.snapshot(uow)).queue(call.queue_id or 0)
    await timers.cancel(uow, TimerKind.DIAL_TIMEOUT, call_id=call.id)
    attempt = call.dial_attempts
    call.state = next_call_state(call.state, "dial_unanswered")
    retry_at = now + dt.timedelta(seconds=queue.callback_retry_seconds)
    if attempt > queue.callback_retries:
        outcome = "failed"
    elif retry_at >= _expires_at(call, now):
        outcome = "expired"
    else:
        outcome = "retry"
    # Still naming the volunteer: their screen hears of it.
    _emit(uow, call, "callback.unanswered", attempt=attempt, reason=reason, next=outcome)
    call.agent_id = None
    if outcome == "failed":
        call.state = next_call_state(call.state, "fail")
        call.ended_at = now
        call.end_reason = "callback_unanswered"
        await timers.cancel_all_for_call(uow, call.id)
        _emit(uow, call, "callback.failed", attempts=attempt)
        _alert(
            uow,
            call,
            "callback_failed",
            f"Callback to {call.caller_number} failed: no answer after {attempt} attempts.",
        )
    elif outcome == "expired":
        await _expire(uow, call, now)
    else:
        timers.schedule(uow, TimerKind.CALLBACK_RETRY, retry_at, call_id=call.id)
        _emit(uow, call, "callback.retry_scheduled", attempt=attempt, retry_at=retry_at.isoformat())
    if agent.current_call_id == call.id and agent.state == AgentState.RESERVED:
        await lifecycle.free_agent(uow, agent, "release", now)
    return True


def _expires_at(call: Call, now: dt.datetime) -> dt.datetime:
    stamp = ((call.context or {}).get("callback") or {}).get("expires_at")
    return dt.datetime.fromisoformat(stamp) if stamp else now


async def retry_due(uow: UnitOfWork, call: Call, now: dt.datetime) -> None:
    """The ``callback_retry`` timer: back in the queue, in its place."""
    if call.state != CallState.RETRY_WAIT or call.queue_id is None:
        return
    queue = (await config_cache.snapshot(uow)).queue(call.queue_id)
    call.state = next_call_state(call.state, "retry")
    _emit(uow, call, "callback.requeued", attempt=call.dial_attempts + 1)
    await _route(uow, call, queue, now)


async def expiry_due(uow: UnitOfWork, call: Call, now: dt.datetime) -> None:
    """The ``callback_expiry`` timer: a callback not yet done ends ``expired``; one
    being offered or dialled right now is let finish and looked at again later."""
    if call.state in (CallState.OFFERED, CallState.DIALING):
        due = now + dt.timedelta(seconds=EXPIRY_RECHECK_SECONDS)
        timers.schedule(uow, TimerKind.CALLBACK_EXPIRY, due, call_id=call.id)
    elif call.state in (CallState.QUEUED, CallState.RETRY_WAIT):
        await _expire(uow, call, now)


async def _expire(uow: UnitOfWork, call: Call, now: dt.datetime) -> None:
    call.state = next_call_state(call.state, "expire")
    call.ended_at = now
    call.end_reason = "callback_expired"
    await timers.cancel_all_for_call(uow, call.id)
    _emit(uow, call, "callback.expired", attempts=call.dial_attempts)
    _alert(
        uow,
        call,
        "callback_expired",
        f"Callback to {call.caller_number} expired after {call.dial_attempts} attempts.",
    )


async def dial_outcome(uow: UnitOfWork, callback_id: int, provider_call_id: str) -> Call | None:
    """The callback a ``dial.*`` event names, locked; None if there is none."""
    call = await uow.session.get(Call, callback_id, with_for_update=True, populate_existing=True)
    if call is None or call.kind != CALL_KIND_CALLBACK or call.provider_call_id != provider_call_id:
        return None
    return call
