"""What a rule's actions do, through the ACD's own steps (``app.acd.lifecycle``).

Each action acts on the event's call (a transfer moves the following actions to
the new leg) within the event's unit of work. An action that does not fit the
call's state raises ``ActionError``: the rule is skipped, the call goes on.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from app.acd import callbacks, lifecycle, repository, timers
from app.acd.models import Agent, Call, Queue
from app.acd.states import AgentState, CallState
from app.acd.timers import TimerKind
from app.realtime.outbox import emit
from app.rules import blocklist, scripts
from app.rules.engine import Run, render_for
from app.rules.loader import Action
from app.surge import paging
from app.telephony import commands
from app.telephony.commands import CommandName

RULE_TIMER = TimerKind.RULE
_WITH_AGENT = (CallState.OFFERED, CallState.CONNECTED, CallState.WRAP_UP)


class ActionError(Exception):
    pass


async def _values(run: Run) -> dict[str, Any]:
    if run.values is None:
        agent = await run.uow.session.get(Agent, run.agent_id) if run.agent_id else None
        pop = await scripts.pop_of(run.uow.session, run.call)
        run.values = scripts.placeholder_values(
            run.facts, run.campaign, run.settings, agent=agent, pop=pop
        )
        extra = run.facts.get("pledge", {})
        for name in ("reference", "amount_display"):
            if name in extra:
                run.values[f"pledge.{name}"] = extra[name]
        run.values["rule.name"] = run.rule
    return run.values


async def _text(run: Run, template: str) -> str:
    return scripts.fill(template, await _values(run))


def _call(run: Run) -> Call:
    if run.call is None:
        raise ActionError(f"{run.event} has no call to act on")
    return run.call


async def _queue(run: Run, name: str) -> Queue:
    stmt = select(Queue).where(Queue.campaign_id == run.campaign.id, Queue.name == name)
    queue = (await run.uow.session.execute(stmt)).scalar_one_or_none()
    if queue is None:
        raise ActionError(f"campaign {run.campaign.id} has no queue {name!r}")
    return queue


async def _move(run: Run, call: Call, queue: Queue, priority: int) -> None:
    """A waiting call goes to another queue (its wait timers start afresh)."""
    await lifecycle.move_queued(
        run.uow, call, queue, run.now, reason=f"rule:{run.rule}", priority=priority
    )


async def route_to(run: Run, queue: str, priority: int) -> None:
    call = _call(run)
    if call.state == CallState.RECEIVED:
        await _queue(run, queue)  # refused now if it does not exist
        run.outcome.queue, run.outcome.priority = queue, priority
    elif call.state == CallState.QUEUED:
        await _move(run, call, await _queue(run, queue), priority)
    else:
        raise ActionError(f"route_to needs a waiting call, this one is {call.state}")


async def set_priority(run: Run, priority: int) -> None:
    call = _call(run)
    if call.state == CallState.RECEIVED:
        run.outcome.priority = priority
    elif call.state == CallState.QUEUED and call.queue_id is not None:
        queue = await repository.get_queue(run.uow.session, call.queue_id)
        start = call.queued_at or run.now
        call.priority = priority
        call.rank_key = start.timestamp() - priority * queue.ageing_seconds
    else:
        raise ActionError(f"set_priority needs a waiting call, this one is {call.state}")


async def show_script(run: Run, name: str) -> None:
    call = _call(run)
    script = run.ruleset.scripts.get(name)
    if script is None:
        raise ActionError(f"no script named {name!r}")
    handed_over_by = (call.context or {}).get("handed_over_by")
    target = call.agent_id if call.state in _WITH_AGENT else handed_over_by
    if target is None:
        # Not with a volunteer yet: shown when the call is offered.
        call.context = {**(call.context or {}), "script": name}
        return
    rendered = await render_for(
        run.uow.session,
        run.settings,
        run.ruleset,
        script,
        run.campaign,
        call,
        int(target),
        run.now,
        known_facts=run.facts,
    )
    scripts.show(run.uow, call, int(target), rendered)
    run.outcome.script_shown = True


async def reject(run: Run, message: str, reason: str | None) -> None:
    call = _call(run)
    if call.state not in (CallState.RECEIVED, CallState.QUEUED):
        raise ActionError(f"reject needs a waiting call, this one is {call.state}")
    if call.state == CallState.QUEUED:
        await timers.cancel_all_for_call(run.uow, call.id)
    text = await _text(run, message)
    why = reason or f"rule:{run.rule}"
    await lifecycle.reject(run.uow, call, run.campaign, why, run.now, message=text)
    run.outcome.rejected = True


async def play(run: Run, message: str) -> None:
    call = _call(run)
    text = await _text(run, message)
    commands.issue(run.uow, CommandName.PLAY, call.provider_call_id, message=text)


async def strike(run: Run, number: str, block_after: int, duration: int) -> None:
    target = await _text(run, number)
    if not target:
        return  # withheld: nothing to strike
    await blocklist.strike(
        run.uow,
        run.campaign.id,
        target,
        run.now,
        by=f"rule:{run.rule}",
        block_after=block_after,
        block_seconds=duration,
    )


async def block(run: Run, duration: int, number: str) -> None:
    target = await _text(run, number)
    if not target:
        return
    await blocklist.block(
        run.uow,
        run.campaign.id,
        target,
        run.now,
        by=f"rule:{run.rule}",
        seconds=duration,
        reason="prank",
    )


async def alert_supervisors(run: Run, text: str) -> None:
    call = run.call
    emit(
        run.uow,
        "supervisor.alert",
        campaign_id=run.campaign.id,
        call_id=call.id if call is not None else None,
        # No agent_id on the event: it goes to the supervisors, not the volunteer.
        data={
            "text": await _text(run, text),
            "rule": run.rule,
            "event": run.event,
            "about_agent_id": run.agent_id,
        },
    )


async def tag(run: Run, label: str) -> None:
    call = _call(run)
    if label not in (call.tags or []):
        call.tags = [*(call.tags or []), label]


async def transfer(run: Run, queue: str) -> None:
    call = _call(run)
    target = await _queue(run, queue)
    if call.state == CallState.CONNECTED and call.agent_id is not None:
        agent = await repository.get_agent(run.uow.session, call.agent_id, lock=True)
        leg = await lifecycle.transfer_to_queue(run.uow, call, agent, target, run.now)
        context = {k: v for k, v in (leg.context or {}).items() if k != "script"}
        leg.context = {**context, "handed_over_by": agent.id}
        run.call = leg
    elif call.state == CallState.QUEUED:
        await _move(run, call, target, call.priority)
    else:
        raise ActionError(f"transfer needs a connected or waiting call, this one is {call.state}")


async def consult(run: Run, queue: str, fallback: int, timer: str) -> None:
    """A warm hand-over (Needs support): the caller on hold, the ``queue`` rung with a
    consult leg carrying the context; the volunteer stays on the call until a
    specialist answers or ``fallback`` seconds pass (then the rules on
    ``timer.<timer>`` run for the volunteer's call). Later actions act on that call."""
    call = _call(run)
    target = await _queue(run, queue)
    if call.state != CallState.CONNECTED or call.agent_id is None:
        raise ActionError(f"consult needs a connected call, this one is {call.state}")
    agent = await repository.get_agent(run.uow.session, call.agent_id, lock=True)
    if agent.state != AgentState.ON_CALL:
        raise ActionError(f"consult needs a volunteer on the call, this one is {agent.state}")
    await lifecycle.consult(
        run.uow, call, agent, target, run.now, fallback_seconds=fallback, timer=timer
    )


async def start_timer(run: Run, name: str, seconds: int) -> None:
    call = _call(run)
    due = run.now + dt.timedelta(seconds=seconds)
    timers.schedule(run.uow, RULE_TIMER, due, call_id=call.id, data={"name": name})


async def hangup(run: Run) -> None:
    call = _call(run)
    if call.state != CallState.CONNECTED or call.agent_id is None:
        raise ActionError(f"hangup needs a connected call, this one is {call.state}")
    agent = await repository.get_agent(run.uow.session, call.agent_id, lock=True)
    await lifecycle.start_wrap_up(run.uow, call, agent, run.now, by="agent")


async def page_standby(run: Run, limit: int) -> None:
    """Page the standby volunteers of the event's queue (app/surge/paging.py)."""
    queue_id = int(run.facts.get("queue", {}).get("id") or 0)
    if not queue_id:
        raise ActionError(f"{run.event} has no queue to page standby volunteers for")
    queue = await repository.get_queue(run.uow.session, queue_id)
    await paging.page_standby(run.uow, queue, by=f"rule:{run.rule}", now=run.now, limit=limit)


async def offer_callback(run: Run) -> None:
    """Offer the waiting caller a callback, whatever the expected wait (surge mode)."""
    call = _call(run)
    if call.state != CallState.QUEUED or call.queue_id is None:
        raise ActionError(f"offer_callback needs a waiting call, this one is {call.state}")
    queue = await repository.get_queue(run.uow.session, call.queue_id)
    callbacks.offer_callback(run.uow, call, queue, by=f"rule:{run.rule}")


_ACTIONS: dict[str, Any] = {
    "route_to": route_to,
    "set_priority": set_priority,
    "show_script": show_script,
    "reject": reject,
    "play": play,
    "strike": strike,
    "block": block,
    "alert_supervisors": alert_supervisors,
    "tag": tag,
    "transfer": transfer,
    "consult": consult,
    "start_timer": start_timer,
    "hangup": hangup,
    "page_standby": page_standby,
    "offer_callback": offer_callback,
}


async def apply(run: Run, action: Action) -> None:
    await _ACTIONS[action.name](run, **action.args)
